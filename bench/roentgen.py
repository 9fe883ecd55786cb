"""Benchmark: RoentGen-v2 images/s through the platform vs the plain diffusers pipeline call.

Real-size architecture (SD-2.1-base UNet, ~866M parameters), random weights. Platform: a
`medserve worker` process sent n concurrent one-image OIP requests (seeds 0..n-1), which its
batcher groups; plain: `StableDiffusionPipeline(...)(prompts, num_inference_steps,
guidance_scale=3)` loaded the released way, same steps/size/scheduler/dtype/device, a CPU
generator per image (seeds 0..n-1). Per scenario: images/s of both sides, the ratio, whether
every image is the same uint8 array on both sides, and the worker's time split (batch sizes,
compute, queue wait, time outside compute). `batch_B`: B requests vs one plain call of B
images; `single`: one request vs one plain call; `concurrency_N`: N requests vs a plain loop of
N one-image calls (the batcher's gain). The platform returns uint8 tensors, as the plain
pipeline returns arrays (`--files` adds the labelled PNGs). On a GPU: the UNet's FLOPs per call
and fraction of peak bf16. The paper's setting is 512x512 at 75 steps (`--steps 75`).

    .venv/bin/python bench/roentgen.py [--batch 2] [--concurrency 1,4] [--steps 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.net import free_port
from model_store.manifest import load_manifests
from model_store.store import ModelStore

MODEL = "roentgen-v2"
PROMPT = "74 year old BLACK male. No acute cardiopulmonary process."
PAPER_STEPS = 75
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets.
PEAK_BF16 = {"H200": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "A100": 312.0}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def scenarios(args: argparse.Namespace) -> list[tuple[str, int, bool]]:
    """(name, images, plain side makes them in one call) for each comparison asked for."""
    out = [(f"batch_{args.batch}", args.batch, True)] if args.batch else []
    for n in args.concurrency:
        out.append(("single" if n == 1 else f"concurrency_{n}", n, False))
    return out


def micro_batch(args: argparse.Namespace) -> int:
    """The worker's images per network call on this device (1: fixed shapes)."""
    key = "micro_batch_gpu" if args.device.startswith("cuda") else "micro_batch_cpu"
    return int({**load_manifests()[MODEL].adapter, **args.adapter_options}.get(key, 1))


def worker_split(before: dict[str, Any], after: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """Where the platform's time went between two stats snapshots (Triton's shape)."""

    def delta(key: str) -> tuple[int, float]:
        a, b = after["inference_stats"][key], before["inference_stats"][key]
        return a["count"] - b["count"], (a["ns"] - b["ns"]) / 1e9

    sizes_before = {s["batch_size"]: s["compute_infer"]["count"] for s in before["batch_stats"]}
    sizes = {
        str(s["batch_size"]): s["compute_infer"]["count"] - sizes_before.get(s["batch_size"], 0)
        for s in after["batch_stats"]
    }
    _, compute_s = delta("compute_infer")
    queued, queue_s = delta("queue")
    done, request_s = delta("success")
    return {
        "batches": after["execution_count"] - before["execution_count"],
        "batch_sizes": {k: v for k, v in sizes.items() if v},
        "compute_s": round(compute_s, 3),
        "outside_compute_s": round(wall_s - compute_s, 3),
        "queue_s_mean_per_image": round(queue_s / queued, 3) if queued else None,
        "worker_s_mean_per_request": round(request_s / done, 3) if done else None,
        "client_wall_s": round(wall_s, 3),
    }


def platform_run(
    args: argparse.Namespace, model_dir: Path, home: Path
) -> tuple[dict[str, Any], dict[int, Any]]:
    """Worker process + batcher; for each request count n, `repeats` rounds of n concurrent
    single-image requests (seeds 0..n-1). Returns (run facts, results by n)."""
    from workers.runtime.client import OIPClient

    sizes = sorted({n for _, n, _ in scenarios(args)})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(
        MEDSERVE_MODEL_DIR=str(model_dir),
        MEDSERVE_HOME=str(home),
        MEDSERVE_LOG_LEVEL="WARNING",
        MEDSERVE_DEVICE=args.device,
        MEDSERVE_MAX_BATCH_SIZE=str(max(sizes)),
        MEDSERVE_REQUEST_TIMEOUT_S="7200",
        MEDSERVE_ADAPTER_OPTIONS=json.dumps({MODEL: args.adapter_options}),
    )
    log = (home / "worker.log").open("wb")
    argv = [sys.executable, "-m", "cli", "worker", "--models", MODEL, "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    params = {"scheduler": args.scheduler, "guidance_scale": 3.0, "channels": 3}
    outputs = ["image", "seed", "FILE"] if args.files else ["image", "seed"]
    provenance: dict[str, Any] = {}

    def stats() -> dict[str, Any]:
        import httpx

        return httpx.get(f"{url}/v2/models/{MODEL}/stats", timeout=10).json()["model_stats"][0]

    async def measure() -> dict[int, Any]:
        client = OIPClient(url)
        tensor = np.array([PROMPT.encode()], dtype=object)

        async def round_(seed: int, n: int, steps: int, size: int) -> tuple[float, list[Any]]:
            settings = {**params, "steps": steps, "height": size, "width": size}
            start = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    client.infer(MODEL, {"prompt": tensor}, {**settings, "seed": seed + i},
                                 timeout_s=7200, outputs=outputs)
                    for i in range(n)
                )
            )  # fmt: skip
            seconds = time.perf_counter() - start
            provenance.update(json.loads(answers[-1].parameters["provenance"]))
            return seconds, [np.asarray(a.outputs["image"][0]) for a in answers]

        try:
            if args.warmup:  # same shapes, one step (fixed shapes when the adapter micro-batches)
                for n in sizes if micro_batch(args) != 1 else [1]:
                    await round_(1000, n, 1, args.size)
            results: dict[int, Any] = {}
            for n in sizes:
                # Open n pooled connections first (one cheap step; the pool keeps idle ones
                # 4 s), so the n timed requests arrive together, as a busy client's would. On
                # a GPU at the timed size: a new shape would recompile a compiled UNet.
                await round_(2000, n, 1, args.size if args.device.startswith("cuda") else 64)
                before, load = stats(), os.getloadavg()[0]
                times, images = [], []
                for _ in range(args.repeats):
                    seconds, images = await round_(0, n, args.steps, args.size)
                    times.append(seconds)
                results[n] = {
                    "seconds": [round(s, 3) for s in times],
                    "images_per_s": n / min(times),
                    "load_average_at_start": round(load, 2),
                    "worker": worker_split(before, stats(), sum(times)),
                    "_images": images,
                }
            if args.check_invariance and 1 not in results and max(sizes) > 1:
                results[1] = {"_images": (await round_(0, 1, args.steps, args.size))[1]}
            return results
        finally:
            await client.close()

    try:
        import httpx

        t = time.time()
        while True:
            if proc.poll() is not None:
                raise RuntimeError("worker exited; see " + str(home / "worker.log"))
            try:
                if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        facts: dict[str, Any] = {"load_s": round(time.time() - t, 1)}
        results = asyncio.run(measure())
        facts["dtype"] = provenance.get("dtype")
        facts["acceleration"] = provenance.get("acceleration")  # GPU: options, warm-up/compile s
        if args.check_invariance and max(sizes) > 1:
            alone, batched = results[1]["_images"][:1], results[max(sizes)]["_images"][:1]
            facts["batched_vs_alone"] = {"batch": max(sizes), **same_images(alone, batched)}
        return facts, results
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def plain_run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """The plain pipeline call with the repository's settings, in this process."""
    import torch
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel, CLIPTokenizer

    from workers.roentgen.model import DTYPE_KEYWORD, DTYPES, make_scheduler

    dtype = DTYPES[args.dtype]
    t = time.time()
    sub = path / "text_encoder_and_tokenizer"
    pipe = StableDiffusionPipeline.from_pretrained(
        str(path),
        safety_checker=None,
        requires_safety_checker=False,
        local_files_only=True,
        text_encoder=CLIPTextModel.from_pretrained(sub, dtype=dtype),
        tokenizer=CLIPTokenizer.from_pretrained(sub),
        **{DTYPE_KEYWORD: dtype},
    ).to(args.device)
    pipe.scheduler = make_scheduler(args.scheduler, dict(pipe.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    load_s = time.time() - t

    def call(seed: int, n: int, steps: int) -> list[np.ndarray]:
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(n)]
        images = pipe(
            [PROMPT] * n,
            num_inference_steps=steps,
            guidance_scale=3.0,
            height=args.size,
            width=args.size,
            generator=generators,
        ).images
        return [np.asarray(image) for image in images]

    def timed(n: int, one_call: bool, steps: int, seed: int = 0) -> tuple[float, list[np.ndarray]]:
        sync(args.device)
        start = time.perf_counter()
        if one_call:
            images = call(seed, n, steps)
        else:  # a plain loop: one call of one image per seed
            images = [image for i in range(n) for image in call(seed + i, 1, steps)]
        sync(args.device)
        return time.perf_counter() - start, images

    runs = scenarios(args)
    if args.warmup:  # same shapes, one step
        for n in sorted({n if one_call else 1 for _, n, one_call in runs}):
            timed(n, True, 1, seed=1000)
    results: dict[str, Any] = {"load_s": round(load_s, 1)}
    for name, n, one_call in runs:
        load = os.getloadavg()[0]
        times, images = [], []
        for _ in range(args.repeats):
            seconds, images = timed(n, one_call, args.steps)
            times.append(seconds)
        results[name] = {
            "calls": 1 if one_call else n,
            "seconds": [round(s, 3) for s in times],
            "images_per_s": n / min(times),
            "load_average_at_start": round(load, 2),
            "_images": images,
        }
    if args.device.startswith("cuda"):
        results["unet"] = unet_utilisation(pipe, args, max(n for _, n, _ in runs))
    return results


def unet_utilisation(pipe: Any, args: argparse.Namespace, images: int) -> dict[str, Any]:
    """FLOPs of one UNet call on the CFG batch, its time alone, and the fraction of peak bf16."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    rows = 2 * images
    latent = args.size // 8
    x = torch.randn(rows, 4, latent, latent, device=args.device, dtype=pipe.unet.dtype)
    hidden = pipe.text_encoder.config.hidden_size
    emb = torch.randn(rows, 77, hidden, device=args.device, dtype=pipe.unet.dtype)
    t = torch.tensor(500, device=args.device)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            pipe.unet(x, t, encoder_hidden_states=emb)
        flops = counter.get_total_flops()
        for _ in range(3):
            pipe.unet(x, t, encoder_hidden_states=emb)
        sync(args.device)
        calls = 10
        start = time.perf_counter()
        for _ in range(calls):
            pipe.unet(x, t, encoder_hidden_states=emb)
        sync(args.device)
        seconds = (time.perf_counter() - start) / calls
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    achieved = flops / seconds / 1e12
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16.items() if k in name), None)
    return {
        "device_name": name,
        "images_per_call": images,
        "rows_per_call": rows,
        "gflops_per_call": round(flops / 1e9, 1),
        "seconds_per_call": round(seconds, 4),
        "achieved_tflops": round(achieved, 1),
        "peak_bf16_tflops": peak,
        "fraction_of_peak": round(achieved / peak, 3) if peak else None,
    }


def same_images(ours: list[np.ndarray], theirs: list[np.ndarray]) -> dict[str, Any]:
    if [a.shape for a in ours] != [b.shape for b in theirs]:
        return {"identical": False, "shapes": [[list(a.shape) for a in x] for x in (ours, theirs)]}
    diff = np.abs(np.stack(ours).astype(int) - np.stack(theirs).astype(int))
    return {
        "images": len(ours),
        "identical": bool(diff.max() == 0),
        "max_abs_diff": int(diff.max()),
        "equal_fraction": round(float((diff == 0).mean()), 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="float32 on cpu, bfloat16 on cuda")
    parser.add_argument("--batch", type=int, default=2, help="0: no batch-vs-batch scenario")
    parser.add_argument(
        "--concurrency", default="1,4", help="1: single; N: N requests vs N plain calls"
    )
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--scheduler", default="pndm")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1, help="0: no one-step warm-up call")
    parser.add_argument("--files", action="store_true", help="platform also returns PNG files")
    parser.add_argument("--check-invariance", action="store_true", help="image 0 alone vs batched")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument(
        "--adapter-options", type=json.loads, default={}, help='JSON, e.g. {"micro_batch_gpu": 1}'
    )
    parser.add_argument("--tiny", action="store_true", help="tiny weights (a smoke run)")
    parser.add_argument("--model-dir", default=str(ROOT / "var/bench/models"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/roentgen.json"))
    args = parser.parse_args()
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    args.concurrency = [int(n) for n in args.concurrency.split(",") if n.strip()]
    if not scenarios(args):
        parser.error("nothing to run: give --batch B and/or --concurrency N,...")

    from workers.runtime.registry import build_tiny

    store = ModelStore(Path(args.model_dir), load_manifests())
    t = time.time()
    resolved = build_tiny(store, MODEL, full_size=not args.tiny)
    build_s = time.time() - t
    home = Path(tempfile.mkdtemp(prefix="roentgen-bench-"))
    facts, ours = platform_run(args, Path(args.model_dir), home)
    theirs = plain_run(args, resolved.path)
    gc.collect()
    results: dict[str, Any] = {}
    for name, n, _ in scenarios(args):
        mine = {k: v for k, v in ours[n].items() if k != "_images"}
        plain = {k: v for k, v in theirs[name].items() if k != "_images"}
        results[name] = {
            "images": n,
            "platform": mine,
            "plain": plain,
            "ratio": round(mine["images_per_s"] / plain["images_per_s"], 3),
            "platform_vs_plain": same_images(ours[n]["_images"], theirs[name]["_images"]),
        }
    unet = theirs.get("unet")
    if unet and unet["peak_bf16_tflops"]:
        worker, n = ours[unet["images_per_call"]]["worker"], unet["images_per_call"]
        if worker["batch_sizes"] == {str(n): worker["batches"]}:  # full batches only
            # The worker's own UNet (with its GPU options) from its compute time per batch,
            # which also holds the text encoder and VAE: a lower bound on its fraction of peak.
            tflops = unet["gflops_per_call"] * args.steps * worker["batches"] / worker["compute_s"]
            unet["platform_fraction_of_peak_lower_bound"] = round(
                tflops / 1e3 / unet["peak_bf16_tflops"], 3
            )
    result = {
        "benchmark": "roentgen-v2 generate: platform vs plain diffusers",
        "weights": resolved.weights, "device": args.device, "dtype": args.dtype,
        "platform_dtype": facts["dtype"], "platform_micro_batch": micro_batch(args),
        "platform_outputs": "image, seed, FILE" if args.files else "image, seed",
        "steps": args.steps, "size": args.size, "scheduler": args.scheduler,
        "guidance_scale": 3.0, "repeats": args.repeats, "warmup": bool(args.warmup),
        "paper_setting_512px_75_steps": args.steps == PAPER_STEPS and args.size == 512,
        "images_per_s_from": "the fastest repeat",
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "build_s": round(build_s, 1),
        "platform_adapter_options": args.adapter_options,
        "platform_acceleration": facts["acceleration"],
        "load_s": {"platform": facts["load_s"], "plain": theirs["load_s"]},
        "results": results,
        "batched_vs_alone": facts.get("batched_vs_alone"),
        "unet": unet,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
