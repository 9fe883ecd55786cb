"""MedVAE throughput: the platform one item at a time and at concurrency N vs a reference called
one item at a time, real-size random weights, `--repeats` rounds each, in one run, to JSON.

2D: medvae-4-1-2d encoding 512x512 PNGs (images/s). 3D: medvae-8-1-3d encoding int16 CT NIfTI
volumes of `--volume` voxels per side, or X,Y,Z (volumes/min). Platform: `medserve gateway` +
`medserve worker`, multipart POSTs to /v1/medvae/encode, one at a time (`platform_c1`) and from
`--concurrency` clients (`platform_cN`; skipped with one item). Reference: `official` is
`MVAE(...).encode(apply_transform(path))` in .venv-medvae (`make medvae-ref-env`) on the same
checkpoint files; `direct` is this repository's model in this process (file read, released
preprocessing, `compute.encode_batch` / `encode_volume` with the platform's window), also under
bf16 autocast with `--reference-dtypes float32,bfloat16` (the worker runs fp32). Each side:
per-repeat seconds and rates with min/median/max; ratios per repeat pair and their median.
Sides run one after another, each using every core.

Cost on 2 CPU cores (measured per item): a 512x512 image ~45 s here, ~25 s in the official
package; a 64^3 volume ~30 s on either, so a 128^3 one (one 160-voxel window: the encoder, not
the request path, dominates) ~4 min. The defaults (2 images, 1 volume of 128^3, 3 repeats) take
about 35 minutes: 3D alone needs 3 x 2 sides x ~4 min; `--dims 2` takes about 12.

    .venv/bin/python bench/medvae.py [--dims 2,3] [--images 2] [--volumes 1] [--volume 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.net import free_port
from model_store.manifest import load_manifests
from model_store.store import ModelStore
from workers.runtime.registry import build_tiny

REF_PYTHON = ROOT / ".venv-medvae" / "bin" / "python"
MODELS = {2: "medvae-4-1-2d", 3: "medvae-8-1-3d"}
MODALITY = {2: "xray", 3: "ct"}
ROI = 160  # the official package's default `gpu_dim`; the platform's window is set to match

REFERENCE = r"""
import os, sys, time, json
os.environ["HF_HUB_OFFLINE"] = "1"
import torch, medvae.utils.factory as factory
from medvae import MVAE
store, name, key, modality, device, repeats, warm = sys.argv[1:8]
paths = sys.argv[8:]
def local(repo_id=None, filename=None, **_):
    return os.path.join(store, name, filename)
factory.hf_hub_download = local
mvae = MVAE(model_name=key, modality=modality, gpu_dim=160).to(device).eval()
def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()
seconds = []
with torch.no_grad():
    mvae.encode(mvae.apply_transform(warm).to(device))
    for _ in range(int(repeats)):
        sync()
        t = time.perf_counter()
        for p in paths:
            mvae.encode(mvae.apply_transform(p).to(device))
        sync()
        seconds.append(time.perf_counter() - t)
print(json.dumps({"seconds": seconds, "count": len(paths)}))
"""


def write_inputs(
    folder: Path, images: int, side: int, volumes: int, shape: tuple[int, ...]
) -> tuple[dict[int, list[Path]], dict[int, Path]]:
    """PNGs with structure and noise; int16 CT volumes uniform in [-1000, 1000] HU (the whole
    volume is foreground, so the released crop keeps it), uncompressed .nii. Also one small
    item of each kind (64^2, 32^3) for warm-ups on a CPU, where a full-size one costs minutes."""
    import nibabel as nib
    from PIL import Image

    rng = np.random.default_rng(0)

    def png(name: str, n: int, i: int) -> Path:
        yy, xx = np.mgrid[:n, :n] / (n - 1)
        img = 120 + 60 * np.sin(xx * (5 + i)) * np.cos(yy * 7) + rng.normal(0, 8, (n, n))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / name)
        return folder / name

    def nii(name: str, size: tuple[int, ...]) -> Path:
        vol = rng.integers(-1000, 1000, size=size, dtype=np.int16)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / name)
        return folder / name

    inputs = {
        2: [png(f"img{i}.png", side, i) for i in range(images)],
        3: [nii(f"ct{i}.nii", shape) for i in range(volumes)],
    }
    return inputs, {2: png("warm.png", 64, 0), 3: nii("warm.nii", (32, 32, 32))}


def start_stack(
    model_dir: Path, home: Path, models: list[str], device: str
) -> tuple[str, str, list[subprocess.Popen[bytes]]]:
    wport, gport = free_port(), free_port()
    worker_url = f"http://127.0.0.1:{wport}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(
        MEDSERVE_MODEL_DIR=str(model_dir),
        MEDSERVE_HOME=str(home),
        MEDSERVE_LOG_LEVEL="WARNING",
        MEDSERVE_DEVICE=device,
        MEDSERVE_ROUTES=json.dumps({name: worker_url for name in models}),
        MEDSERVE_UPSTREAM_TIMEOUT_S="3600",
        MEDSERVE_REQUEST_TIMEOUT_S="3600",
    )
    cli = [sys.executable, "-m", "cli"]
    log = open(home / "stack.log", "wb")  # noqa: SIM115
    commands = [["worker", "--models", ",".join(models), "--port", str(wport)],
                ["gateway", "--port", str(gport)]]  # fmt: skip
    procs = [
        subprocess.Popen([*cli, *c], env=env, cwd=ROOT, stdout=log, stderr=log) for c in commands
    ]
    import httpx

    url = f"http://127.0.0.1:{gport}"
    deadline = time.time() + 900
    while time.time() < deadline:
        if any(proc.poll() is not None for proc in procs):
            break
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return url, worker_url, procs
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError("the stack did not become ready; see " + str(home / "stack.log"))


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def side(seconds: list[float], count: int, per: float, **extra: Any) -> dict[str, Any]:
    """One side's repeats: seconds and rates (items per second x `per`) with their spread."""
    rates = [count / s * per for s in seconds]
    return {
        "items_per_repeat": count,
        "seconds": [round(s, 3) for s in seconds],
        "seconds_spread": spread(seconds),
        "rate": [round(r, 4) for r in rates],
        "rate_spread": spread(rates, 4),
        **extra,
    }


async def platform_rounds(
    url: str, dims: int, paths: list[Path], warm: Path, concurrencies: list[int], repeats: int
) -> dict[int, dict[str, Any]]:
    """Each repeat: every item once per concurrency (1 = one request at a time)."""
    import httpx

    fields = {"model": MODELS[dims]}
    if dims == 3:
        fields.update(modality="ct", roi_size=str(ROI))
    files = [p.read_bytes() for p in paths]
    seconds: dict[int, list[float]] = {c: [] for c in concurrencies}
    latencies: dict[int, list[float]] = {c: [] for c in concurrencies}
    limits = httpx.Limits(max_connections=max(concurrencies) + 1)
    async with httpx.AsyncClient(base_url=url, timeout=3600, limits=limits) as client:

        async def post(data: bytes) -> float:
            t = time.perf_counter()
            r = await client.post("/v1/medvae/encode", data=fields, files={"file": ("f", data)})
            r.raise_for_status()
            return time.perf_counter() - t

        await post(warm.read_bytes())
        for _ in range(repeats):
            for c in concurrencies:
                queue = list(files)

                async def worker(c: int = c, queue: list[bytes] = queue) -> None:
                    while queue:
                        latencies[c].append(await post(queue.pop()))

                start = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(min(c, len(files)))))
                seconds[c].append(time.perf_counter() - start)
    return {
        c: {"seconds": seconds[c], "p50_latency_s": round(statistics.median(latencies[c]), 3)}
        for c in concurrencies
    }


def worker_batches(worker_url: str, model: str) -> dict[str, Any]:
    """Batch sizes the worker ran (all rounds and warm-ups) and its mean compute per batch."""
    import httpx

    stats = httpx.get(f"{worker_url}/v2/models/{model}/stats", timeout=30).json()
    out = {}
    for row in stats["model_stats"][0]["batch_stats"]:
        count, ns = row["compute_infer"]["count"], row["compute_infer"]["ns"]
        if count:
            out[str(row["batch_size"])] = {
                "batches": count,
                "compute_s_mean": round(ns / 1e9 / count, 3),
            }
    return out


def official_run(
    store: Path, dims: int, paths: list[Path], warm: Path, device: str, repeats: int
) -> dict[str, Any]:
    if not REF_PYTHON.exists():
        return {"error": f"{REF_PYTHON} is missing: run `make medvae-ref-env`"}
    name = MODELS[dims]
    key = name.replace("-", "_")
    argv = [str(REF_PYTHON), "-c", REFERENCE, str(store), name, key, MODALITY[dims], device]
    done = subprocess.run(
        [*argv, str(repeats), str(warm), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if done.returncode != 0:
        return {"error": done.stderr[-800:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def direct_run(
    store: ModelStore,
    dims: int,
    paths: list[Path],
    warm: Path,
    device: str,
    repeats: int,
    dtype: str,
) -> dict[str, Any]:
    """This repository's model, called in this process: read, preprocess, encode."""
    import contextlib

    import torch

    from workers.imaging.readers import read_any
    from workers.medvae import compute
    from workers.medvae.adapter import MedVAEAdapter

    resolved = store.resolve(MODELS[dims])
    adapter = MedVAEAdapter(resolved.manifest)
    adapter.load(resolved, device)
    window = compute.Window(ROI, adapter.window.overlap, adapter.window.sw_batch_size)
    rule = resolved.manifest.input.intensity.get(MODALITY[dims])

    def encode(path: Path) -> np.ndarray:
        decoded = read_any(path.read_bytes(), adapter.max_pixels)
        if dims == 3:
            x, _ = compute.prepare_3d(decoded.array, decoded.affine, rule)
            return compute.encode_volume(adapter.model, x, window, None, "s1")
        from_8bit = decoded.info.get("bits") == 8 or bool(decoded.info.get("from_8bit"))
        x = compute.prepare_2d(decoded.array, adapter.model.in_channels, from_8bit)
        return compute.encode_batch(adapter.model, [x], [None], "s1")[0]

    autocast = (
        torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
        if dtype == "bfloat16"
        else contextlib.nullcontext()
    )
    seconds = []
    with autocast:
        encode(warm)
        for _ in range(repeats):
            t = time.perf_counter()
            for path in paths:
                encode(path)  # returns numpy: the device has finished
            seconds.append(time.perf_counter() - t)
    return {"seconds": seconds, "count": len(paths)}


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    pairs = [a / b for a, b in zip(ours["rate"], theirs["rate"], strict=False)]
    return {
        "per_repeat": [round(r, 3) for r in pairs],
        "median": round(statistics.median(pairs), 3),
    }


def add_ratios(entry: dict[str, Any], levels: list[int]) -> None:
    """Per-repeat ratios of each platform side over each reference, and the goals on medians."""
    for key in [k for k in entry if k.startswith("reference") and "rate" in entry[k]]:
        for c in levels:
            name = f"ratio_c{c}_over_reference{key.removeprefix('reference')}"
            entry[name] = ratios(entry[f"platform_c{c}"], entry[key])
    if "ratio_c1_over_reference" in entry:
        goals = {"c1_at_least_1.0x": entry["ratio_c1_over_reference"]["median"] >= 1.0}
        for c in levels[1:]:
            goals[f"c{c}_above_1.0x"] = entry[f"ratio_c{c}_over_reference"]["median"] > 1.0
        entry["goals_on_medians"] = goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", default="2,3", help="2, 3 or 2,3")
    parser.add_argument("--images", type=int, default=2, help="2D images per repeat and side")
    parser.add_argument("--image", type=int, default=512, help="2D image side in pixels")
    parser.add_argument("--volumes", type=int, default=1, help="3D volumes per repeat and side")
    parser.add_argument("--volume", default="128", help="CT side in voxels, or X,Y,Z")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="worker and reference device")
    parser.add_argument("--reference", choices=("official", "direct"), default="official")
    parser.add_argument(
        "--reference-dtypes",
        default="float32",
        help="direct reference only: float32 and/or bfloat16 (autocast); the first is the "
        "ratios' base",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny weights (a smoke run)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/medvae.json"))
    args = parser.parse_args()
    dims = [int(d) for d in args.dims.split(",")]
    sides = [int(s) for s in args.volume.split(",")]
    shape = tuple(sides * 3 if len(sides) == 1 else sides)
    dtypes = args.reference_dtypes.split(",") if args.reference == "direct" else ["float32"]
    concurrencies = [1, args.concurrency] if args.concurrency > 1 else [1]
    if "bfloat16" in dtypes and not args.device.startswith("cuda"):
        parser.error("bf16 autocast is for a GPU (on a CPU without AMX it is 10-100x slower)")

    work = Path(tempfile.mkdtemp(prefix="medvae-bench-"))
    store = ModelStore(work / "models", load_manifests())
    t = time.time()
    for d in dims:
        build_tiny(store, MODELS[d], full_size=not args.tiny, seed=0)
    build_s = time.time() - t
    inputs, small = write_inputs(
        work, args.images * (2 in dims), args.image, args.volumes * (3 in dims), shape
    )
    warm = small if args.device == "cpu" else {d: inputs[d][0] for d in dims}
    # One item in flight is all a single item allows: no concurrency-N side then.
    levels = {d: concurrencies if len(inputs[d]) > 1 else [1] for d in dims}
    load_before = [round(x, 2) for x in os.getloadavg()]
    url, worker_url, procs = start_stack(store.root, work, [MODELS[d] for d in dims], args.device)
    try:
        ours = {
            d: asyncio.run(platform_rounds(url, d, inputs[d], warm[d], levels[d], args.repeats))
            for d in dims
        }
        batches = {d: worker_batches(worker_url, MODELS[d]) for d in dims}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
    result: dict[str, Any] = {
        "bench": "medvae",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "device": args.device, "load_average_before": load_before},
        "weights": "random-tiny" if args.tiny else "random-full (ch 128, LDM kl-f4 / kl-f8)",
        "build_s": round(build_s, 1),
        "repeats": args.repeats,
        "reference": args.reference,
        "platform_dtype": "float32 (the MedVAE adapter has no dtype option)",
        "window": {"roi": ROI, "note": "3D platform and direct: one roi for every axis; the "
                   "official package sizes its own per axis (gpu_dim 160)"},
        "warm_up": "one small item (64^2 / 32^3) per side" if args.device == "cpu"
                   else "the first item, once per side",
    }  # fmt: skip
    for d in dims:
        per, unit = (1.0, "images/s") if d == 2 else (60.0, "volumes/min")
        sides_text = f"{args.image}x{args.image}" if d == 2 else "x".join(map(str, shape))
        item = f"{sides_text} PNG" if d == 2 else f"{sides_text} int16 CT NIfTI"
        entry = {"model": MODELS[d], "item": item, "unit": unit, "worker_batches": batches[d]}
        for c in concurrencies:
            if c not in levels[d]:
                entry[f"platform_c{c}"] = {"skipped": "one item per repeat: use more items"}
                continue
            run = ours[d][c]
            entry[f"platform_c{c}"] = side(run["seconds"], len(inputs[d]), per,
                                           in_flight=min(c, len(inputs[d])),
                                           p50_latency_s=run["p50_latency_s"])  # fmt: skip
        for dtype in dtypes:
            if args.reference == "official":
                ref = official_run(store.root, d, inputs[d], warm[d], args.device, args.repeats)
            else:
                ref = direct_run(store, d, inputs[d], warm[d], args.device, args.repeats, dtype)
            key = "reference" if dtype == dtypes[0] else f"reference_{dtype}"
            entry[key] = side(ref["seconds"], ref["count"], per) if "seconds" in ref else ref
        add_ratios(entry, levels[d])
        result[f"{d}d"] = entry
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
