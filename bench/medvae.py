"""MedVAE throughput: the platform at concurrency N vs the official `medvae` package called one
image at a time, real-size random weights, in one run, written to JSON with ratios.

2D: medvae-4-1-2d encoding 512x512 PNGs (images/s). 3D: medvae-8-1-3d encoding a CT NIfTI of
`--volume` voxels per side (volumes/min). The platform side is `medserve gateway` + `medserve
worker` processes and HTTP clients posting to /v1/medvae/encode; the reference side is
`MVAE(...).encode(apply_transform(path))` in .venv-medvae (`make medvae-ref-env`), on the same
checkpoint files. Both sides use every core; runs are sequential.

    .venv/bin/python bench/medvae.py [--images 4] [--concurrency 16] [--volume 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.net import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_store.manifest import load_manifests
from model_store.store import ModelStore
from workers.runtime.registry import build_tiny

REF_PYTHON = ROOT / ".venv-medvae" / "bin" / "python"
MODEL_2D, MODEL_3D = "medvae-4-1-2d", "medvae-8-1-3d"

REFERENCE = r"""
import os, sys, time, json
os.environ["HF_HUB_OFFLINE"] = "1"
import torch, medvae.utils.factory as factory
from medvae import MVAE
store, name, key, modality, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def local(repo_id=None, filename=None, **_):
    return os.path.join(store, name, filename)
factory.hf_hub_download = local
mvae = MVAE(model_name=key, modality=modality, gpu_dim=160).eval()
with torch.no_grad():
    mvae.encode(mvae.apply_transform(paths[0]))  # warm-up
    t = time.perf_counter()
    for p in paths:
        mvae.encode(mvae.apply_transform(p))
    print(json.dumps({"seconds": time.perf_counter() - t, "count": len(paths)}))
"""


def write_inputs(folder: Path, images: int, side: int) -> tuple[list[Path], list[Path]]:
    import nibabel as nib
    from PIL import Image

    rng = np.random.default_rng(0)
    pngs = []
    for i in range(images):
        yy, xx = np.mgrid[:512, :512] / 511.0
        img = 120 + 60 * np.sin(xx * (5 + i)) * np.cos(yy * 7) + rng.normal(0, 8, (512, 512))
        path = folder / f"img{i}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        pngs.append(path)
    volumes = []
    for i in range(1):
        vol = rng.uniform(-1000, 1000, (side, side, side)).astype(np.float32)
        path = folder / f"ct{i}.nii.gz"
        nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
        volumes.append(path)
    return pngs, volumes


def start_stack(model_dir: Path, home: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    wport, gport = free_port(), free_port()
    worker_url = f"http://127.0.0.1:{wport}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(
        MEDSERVE_MODEL_DIR=str(model_dir),
        MEDSERVE_HOME=str(home),
        MEDSERVE_LOG_LEVEL="WARNING",
        MEDSERVE_ROUTES=json.dumps({MODEL_2D: worker_url, MODEL_3D: worker_url}),
        MEDSERVE_UPSTREAM_TIMEOUT_S="3600",
        MEDSERVE_REQUEST_TIMEOUT_S="3600",
    )
    cli = [str(Path(sys.executable).with_name("medserve"))]
    log = open(home / "stack.log", "wb")  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [*cli, "worker", "--models", f"{MODEL_2D},{MODEL_3D}", "--port", str(wport)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        ),
        subprocess.Popen(
            [*cli, "gateway", "--port", str(gport)], env=env, cwd=ROOT, stdout=log, stderr=log
        ),
    ]
    import httpx

    url = f"http://127.0.0.1:{gport}"
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return url, procs
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError("the stack did not become ready; see " + str(home / "stack.log"))


async def platform_run(
    url: str, body_for: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    import httpx

    queue = list(body_for)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=3600) as client:

        async def one() -> None:
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                r = await client.post("/v1/medvae/encode", json=body)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)

        await client.post("/v1/medvae/encode", json=body_for[0])  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(min(concurrency, len(body_for)))))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "count": len(body_for), "p50_s": float(np.median(latencies))}


def reference_run(
    store: Path, name: str, modality: str, paths: list[Path]
) -> dict[str, Any] | None:
    if not REF_PYTHON.exists():
        return None
    key = name.replace("-", "_")
    args = [str(REF_PYTHON), "-c", REFERENCE, str(store), name, key, modality, *map(str, paths)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--reference-images", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--volume", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "bench/results/medvae.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medvae-bench-"))
    store = ModelStore(work / "models", load_manifests())
    t = time.time()
    for name in (MODEL_2D, MODEL_3D):
        build_tiny(store, name, full_size=True, seed=0)
    build_s = time.time() - t
    pngs, volumes = write_inputs(work, args.images, args.volume)
    url, procs = start_stack(store.root, work)
    try:
        body2d = [
            {"model": MODEL_2D, "image_b64": base64.b64encode(p.read_bytes()).decode()}
            for p in pngs
        ]
        body3d = [
            {
                "model": MODEL_3D,
                "modality": "ct",
                "roi_size": 160,
                "image_b64": base64.b64encode(p.read_bytes()).decode(),
            }
            for p in volumes
        ]
        p2 = asyncio.run(platform_run(url, body2d, args.concurrency))
        p3 = asyncio.run(platform_run(url, body3d, args.concurrency))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    r2 = reference_run(store.root, MODEL_2D, "xray", pngs[: args.reference_images])
    r3 = reference_run(store.root, MODEL_3D, "ct", volumes)

    def rate(run: dict[str, Any] | None, per: float) -> float | None:
        if not run or "seconds" not in run:
            return None
        return run["count"] / run["seconds"] * per

    result = {
        "bench": "medvae",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "device": "cpu"},
        "weights": "random-full (ch 128, LDM kl-f4 / kl-f8 shapes)",
        "build_full_size_s": round(build_s, 1),
        "concurrency": args.concurrency,
        "2d": {
            "model": MODEL_2D,
            "image": "512x512 PNG",
            "platform": p2,
            "reference": r2,
            "platform_images_per_s": rate(p2, 1),
            "reference_images_per_s": rate(r2, 1),
        },
        "3d": {
            "model": MODEL_3D,
            "volume": f"{args.volume}^3 CT NIfTI",
            "platform": p3,
            "reference": r3,
            "platform_volumes_per_min": rate(p3, 60),
            "reference_volumes_per_min": rate(r3, 60),
        },
    }
    for key, unit in (("2d", "images_per_s"), ("3d", "volumes_per_min")):
        ours, theirs = result[key][f"platform_{unit}"], result[key][f"reference_{unit}"]
        result[key]["ratio_platform_over_reference"] = (
            round(ours / theirs, 3) if ours and theirs else None
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
