"""Merlin throughput at real size (I3D ResNet-152 + Clinical-Longformer shape, random weights):
CT volumes per minute through `medserve gateway` + `medserve worker` versus a direct model call,
at batch 1 and at the manifest's batch size, in one run; preprocessing timed separately; the
worker's peak RSS. Written to JSON.

- preprocessing: `workers.merlin.preprocess.prepare` on the CT file (read, RAS, 1.5x1.5x3 mm,
  HU window, pad/crop to 224x224x160), in this process.
- direct: `compute.encode_images` (features, embedding, phenotype logits) on preprocessed
  tensors, in this process; batch 1 = one volume per call, batch B = B volumes per call.
- platform: POST /v1/merlin/analyze (multipart upload, tasks embedding+phenotypes, i.e. the
  same forward pass), including the worker's preprocessing of each file; batch 1 = one request
  at a time, batch B = B concurrent requests that the worker batches (the queue delay is raised
  so the B requests, still preprocessing, meet in one batch; the JSON records it).

    .venv/bin/python bench/merlin.py [--shape 512,512,600] [--batch1-volumes 2] [--batch B]
        [--device cuda]    # worker and direct side on that device (bash bench/gpu/merlin.sh)
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.net import free_port
from model_store.store import ModelStore
from workers.runtime.families import load_manifests
from workers.runtime.registry import build_tiny

MODEL = "merlin"


def write_ct(path: Path, shape: tuple[int, int, int]) -> None:
    """A smooth int16 abdomen-like phantom (body, organs, spine) with mild noise, 0.7x0.7x1 mm."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    i, j = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    plane = np.full(shape[:2], -1000, np.int16)
    plane[(i / 0.85) ** 2 + (j / 0.65) ** 2 < 1] = 40
    plane[(i + 0.35) ** 2 / 0.09 + (j - 0.1) ** 2 / 0.06 < 1] = 60
    plane[(i - 0.05) ** 2 + (j + 0.45) ** 2 < 0.015] = 700
    volume = np.repeat(plane[:, :, None], shape[2], axis=2)
    volume += rng.integers(-20, 20, size=shape, dtype=np.int16)
    affine = np.diag([-0.7, -0.7, 1.0, 1.0])
    path.write_bytes(gzip.compress(nib.Nifti1Image(volume, affine).to_bytes(), compresslevel=1))


def vm_hwm_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def per_min(count: int, seconds: float) -> float:
    return round(count / seconds * 60.0, 3)


def direct(store: Path, data: bytes, n1: int, batch: int, device: str) -> dict[str, Any]:
    import resource

    import torch

    from workers.merlin import compute
    from workers.merlin.model import load_clip
    from workers.merlin.preprocess import prepare

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(2):
        start = time.perf_counter()
        tensor = prepare(data, 512 * 512 * 1024).tensor
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    model = load_clip(store / MODEL, device=device)  # results come back .cpu(): synced
    load_s = time.perf_counter() - start
    compute.encode_images(model, [tensor])  # warm-up
    start = time.perf_counter()
    for _ in range(n1):
        compute.encode_images(model, [tensor])
    b1 = time.perf_counter() - start
    start = time.perf_counter()
    compute.encode_images(model, [tensor] * batch)
    bb = time.perf_counter() - start
    del model
    gc.collect()
    return {
        "preprocess_s": [round(t, 2) for t in times],
        "preprocess_peak_rss_mib": round(peak),
        "rss_before_preprocess_mib": round(before),
        "load_s": round(load_s, 1),
        "threads": torch.get_num_threads(),
        "batch1": {"volumes": n1, "seconds": round(b1, 1), "volumes_per_min": per_min(n1, b1)},
        "batched": {"batch": batch, "volumes": batch, "seconds": round(bb, 1),
                    "volumes_per_min": per_min(batch, bb)},
    }  # fmt: skip


def start_stack(
    model_dir: Path, home: Path, delay_ms: int, device: str
) -> tuple[str, str, list[Any]]:
    import httpx

    wport, gport = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(
        MEDSERVE_MODEL_DIR=str(model_dir), MEDSERVE_HOME=str(home),
        MEDSERVE_LOG_LEVEL="WARNING", MEDSERVE_ALLOW_RANDOM_WEIGHTS="false",
        MEDSERVE_ROUTES=json.dumps({MODEL: f"http://127.0.0.1:{wport}"}),
        MEDSERVE_UPSTREAM_TIMEOUT_S="3600", MEDSERVE_REQUEST_TIMEOUT_S="3600",
        MEDSERVE_MAX_QUEUE_DELAY_MS=str(delay_ms), PYTHONPATH=str(ROOT), MEDSERVE_DEVICE=device,
    )  # fmt: skip
    log = (home / "stack.log").open("wb")
    cli = [sys.executable, "-m", "cli"]
    procs = [
        subprocess.Popen([*cli, "worker", "--models", MODEL, "--port", str(wport)], env=env,
                         cwd=ROOT, stdout=log, stderr=log),
        subprocess.Popen([*cli, "gateway", "--port", str(gport)], env=env, cwd=ROOT,
                         stdout=log, stderr=log),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{gport}"
    deadline = time.time() + 900
    while time.time() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return url, f"http://127.0.0.1:{wport}", procs
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the stack did not become ready; see {home / 'stack.log'}")


def platform_run(url: str, data: bytes, n1: int, batch: int) -> dict[str, Any]:
    import httpx

    client = httpx.Client(base_url=url, timeout=3600)
    fields = {"tasks": "embedding,phenotypes", "top_k": "5"}

    def post() -> float:
        start = time.perf_counter()
        r = client.post("/v1/merlin/analyze", files={"file": ("ct.nii.gz", data)}, data=fields)
        r.raise_for_status()
        return time.perf_counter() - start

    post()  # warm-up
    start = time.perf_counter()
    latencies = [post() for _ in range(n1)]
    b1 = time.perf_counter() - start
    batched: list[float] = []
    threads = [threading.Thread(target=lambda: batched.append(post())) for _ in range(batch)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bb = time.perf_counter() - start
    client.close()
    return {
        "batch1": {"volumes": n1, "seconds": round(b1, 1), "volumes_per_min": per_min(n1, b1),
                   "latency_s": [round(x, 1) for x in latencies]},
        "batched": {"batch": batch, "volumes": batch, "seconds": round(bb, 1),
                    "volumes_per_min": per_min(batch, bb),
                    "latency_s": sorted(round(x, 1) for x in batched)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="512,512,600")
    parser.add_argument("--batch1-volumes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="Default: the manifest's.")
    parser.add_argument("--tiny", action="store_true", help="Tiny weights (a quick smoke run).")
    parser.add_argument("--device", default="cpu", help="cpu | cuda: the worker and direct side")
    parser.add_argument("--out", default=str(ROOT / "bench/results/merlin.json"))
    args = parser.parse_args()
    manifests = load_manifests()
    batch = args.batch or manifests[MODEL].batching.max_batch_size
    shape = tuple(int(s) for s in args.shape.split(","))
    work = Path(tempfile.mkdtemp(prefix="merlin-bench-"))
    store = ModelStore(work / "models", manifests)
    start = time.time()
    build_tiny(store, MODEL, full_size=not args.tiny, seed=0)
    build_s = time.time() - start
    ct = work / "ct.nii.gz"
    write_ct(ct, shape)  # type: ignore[arg-type]
    data = ct.read_bytes()
    load_before = os.getloadavg()
    ours_direct = direct(store.root, data, args.batch1_volumes, batch, args.device)
    import httpx

    url, worker_url, procs = start_stack(store.root, work, delay_ms=600_000, device=args.device)
    try:
        ours = platform_run(url, data, args.batch1_volumes, batch)
        worker_peak = vm_hwm_mib(procs[0].pid)
        stats = httpx.get(f"{worker_url}/v2/models/{MODEL}/stats", timeout=30).json()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
    result = {
        "bench": "merlin",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "device": args.device,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "model": MODEL,
        "weights": "random-tiny" if args.tiny else "random-full (I3D ResNet-152, 1,692 + 512 "
        "heads, Clinical-Longformer shape)",
        "build_full_size_s": round(build_s, 1),
        "ct": {"shape": list(shape), "spacing_mm": [0.7, 0.7, 1.0], "file": "nii.gz",
               "file_mib": round(len(data) / 2**20, 1)},
        "manifest_batch": manifests[MODEL].batching.max_batch_size,
        "platform_settings": {"max_queue_delay_ms": 600_000, "upload": "multipart",
                              "tasks": ["embedding", "phenotypes"],
                              "preprocess_concurrency":
                                  manifests[MODEL].adapter.get("preprocess_concurrency")},
        "direct": ours_direct,
        "platform": ours,
        "worker_peak_rss_mib": round(worker_peak) if worker_peak else None,
        "worker_batch_stats": stats.get("model_stats", [{}])[0].get("batch_stats"),
    }  # fmt: skip
    for key in ("batch1", "batched"):
        theirs, mine = ours_direct[key]["volumes_per_min"], ours[key]["volumes_per_min"]
        result[f"ratio_platform_over_direct_{key}"] = round(mine / theirs, 3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
