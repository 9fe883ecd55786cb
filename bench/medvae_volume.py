"""MedVAE 3D memory budget: encode and decode one CT volume through the adapter (preprocess,
sliding-window predict, postprocess), in a fresh process per case, recording wall time and peak
RSS. Writes JSON.

    .venv/bin/python bench/medvae_volume.py --model medvae-8-1-3d --shape 512 512 300 --roi 96
    .venv/bin/python bench/medvae_volume.py --model medvae-8-1-3d --full-size --shape 96 96 96
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="medvae-8-1-3d")
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--roi", type=int, default=96)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import nibabel as nib
    import torch

    from model_store.manifest import load_manifests
    from model_store.store import ModelStore
    from workers.medvae.adapter import MedVAEAdapter
    from workers.runtime.oip import InferRequest
    from workers.runtime.registry import build_tiny

    store = ModelStore(Path(tempfile.mkdtemp(prefix="medvae-vol-")), load_manifests())
    resolved = build_tiny(store, args.model, full_size=args.full_size, seed=0)
    adapter = MedVAEAdapter(resolved.manifest)
    adapter.load(resolved, "cpu")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(0)
    volume = rng.uniform(-1000, 1000, args.shape).astype(np.float32)
    data = gzip.compress(nib.Nifti1Image(volume, np.eye(4)).to_bytes(), compresslevel=1)
    del volume
    params = {"modality": "ct", "roi_size": args.roi}

    def run(inputs: dict[str, np.ndarray], **extra: object) -> tuple[object, float]:
        request = InferRequest(inputs=inputs, parameters={**params, **extra})
        t = time.perf_counter()
        items = adapter.preprocess(request)
        out = adapter.postprocess(request, adapter.predict(items))
        return out, time.perf_counter() - t

    encoded, encode_s = run({"IMAGE": np.array([data], dtype=np.object_)}, format="nifti")
    blob = encoded.outputs["FILE"][0]  # type: ignore[attr-defined]
    decoded, decode_s = run({"LATENT_FILE": np.array([blob], dtype=np.object_)}, format="nifti")
    result = {
        "model": args.model,
        "weights": resolved.weights,
        "shape": args.shape,
        "roi": args.roi,
        "overlap": adapter.window.overlap,
        "threads": torch.get_num_threads(),
        "latent_shape": json.loads(encoded.parameters["shape"]),  # type: ignore[attr-defined]
        "image_shape": json.loads(decoded.parameters["shape"]),  # type: ignore[attr-defined]
        "encode_s": round(encode_s, 1),
        "decode_s": round(decode_s, 1),
        "rss_after_load_mib": round(rss0),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
