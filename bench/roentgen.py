"""Benchmark: RoentGen-v2 images/s through the platform vs the plain diffusers pipeline call.

Real-size architecture (SD-2.1-base UNet, ~866M parameters) with random weights: speed does not
depend on weight values. In one run: (1) the platform: a `medserve worker` process with its
dynamic batcher, `batch` concurrent OIP requests of one image each, so the batcher forms one
batch; (2) plain diffusers: `StableDiffusionPipeline(...)(prompts, num_inference_steps,
guidance_scale=3)` loaded the released way, same batch, steps, size, scheduler, dtype and
device, with a generator per image. Writes JSON with images/s and the ratio. On a GPU it also
counts the UNet's FLOPs (torch.utils.flop_counter) and reports the fraction of peak bf16.
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
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets.
PEAK_BF16 = {"H200": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "A100": 312.0}


def load_average() -> float:
    return os.getloadavg()[0]


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16.items():
        if key in device_name:
            return value
    return None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def platform_run(args: argparse.Namespace, model_dir: Path, home: Path) -> dict[str, Any]:
    """Worker process + batcher; `batch` concurrent single-image requests, `repeats` rounds."""
    from workers.runtime.client import OIPClient

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSERVE_")}
    env.update(
        MEDSERVE_MODEL_DIR=str(model_dir),
        MEDSERVE_HOME=str(home),
        MEDSERVE_LOG_LEVEL="WARNING",
        MEDSERVE_DEVICE=args.device,
        MEDSERVE_MAX_BATCH_SIZE=str(args.batch),
        MEDSERVE_REQUEST_TIMEOUT_S="7200",
    )
    log = (home / "worker.log").open("wb")
    argv = [sys.executable, "-m", "cli", "worker", "--models", MODEL, "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    params = {
        "steps": args.steps,
        "height": args.size,
        "width": args.size,
        "scheduler": args.scheduler,
        "guidance_scale": 3.0,
        "channels": 3,
    }

    async def round_(seed: int, n: int, steps: int) -> tuple[float, list[np.ndarray]]:
        client = OIPClient(url)
        try:
            tensor = np.array([PROMPT.encode()], dtype=object)
            start = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    client.infer(
                        MODEL,
                        {"prompt": tensor},
                        {**params, "steps": steps, "seed": seed + i},
                        timeout_s=7200,
                    )
                    for i in range(n)
                )
            )
            return time.perf_counter() - start, [np.asarray(a.outputs["image"][0]) for a in answers]
        finally:
            await client.close()

    def stats() -> dict[str, Any]:
        import httpx

        return httpx.get(f"{url}/v2/models/{MODEL}/stats", timeout=10).json()["model_stats"][0]

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
        load_s = time.time() - t
        if args.warmup:
            asyncio.run(round_(1000, args.batch, 1))  # same shapes, one step
        before = stats()
        load = load_average()
        times, images = [], []
        for _ in range(args.repeats):
            seconds, images = asyncio.run(round_(0, args.batch, args.steps))
            times.append(seconds)
        after = stats()
        result: dict[str, Any] = {
            "load_s": round(load_s, 1),
            "seconds": [round(s, 3) for s in times],
            "images_per_s": args.batch / min(times),
            "batches": after["execution_count"] - before["execution_count"],
            "images": after["inference_count"] - before["inference_count"],
            "load_average_at_start": round(load, 2),
        }
        if args.check_invariance:
            _, alone = asyncio.run(round_(0, 1, args.steps))
            diff = np.abs(alone[0].astype(int) - images[0].astype(int))
            result["batched_vs_alone"] = {
                "max_abs_diff": int(diff.max()),
                "identical": bool(diff.max() == 0),
            }
        return {**result, "_first_image": images[0]}
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def plain_run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """The plain pipeline call with the repository's settings, in this process."""
    import torch
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel, CLIPTokenizer

    from workers.roentgen.compute import DTYPE_KEYWORD, DTYPES, make_scheduler

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

    def call(seed: int, steps: int) -> Any:
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(args.batch)]
        sync(args.device)
        start = time.perf_counter()
        images = pipe(
            [PROMPT] * args.batch,
            num_inference_steps=steps,
            guidance_scale=3.0,
            height=args.size,
            width=args.size,
            generator=generators,
        ).images
        sync(args.device)
        return time.perf_counter() - start, images

    if args.warmup:
        call(1000, 1)  # same shapes, one step
    load = load_average()
    times, images = [], []
    for _ in range(args.repeats):
        seconds, images = call(0, args.steps)
        times.append(seconds)
    result: dict[str, Any] = {
        "load_s": round(load_s, 1),
        "seconds": [round(s, 3) for s in times],
        "images_per_s": args.batch / min(times),
        "load_average_at_start": round(load, 2),
        "_first_image": np.asarray(images[0]),
    }
    if args.device.startswith("cuda"):
        result["unet"] = unet_utilisation(pipe, args)
    return result


def unet_utilisation(pipe: Any, args: argparse.Namespace) -> dict[str, Any]:
    """FLOPs of one UNet call on the CFG batch, its time alone, and the fraction of peak bf16."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    rows = 2 * args.batch
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
    peak = peak_tflops(name, args.peak_tflops)
    return {
        "device_name": name,
        "rows_per_call": rows,
        "gflops_per_call": round(flops / 1e9, 1),
        "seconds_per_call": round(seconds, 4),
        "achieved_tflops": round(achieved, 1),
        "peak_bf16_tflops": peak,
        "fraction_of_peak": round(achieved / peak, 3) if peak else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="float32 on cpu, bfloat16 on cuda")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--scheduler", default="pndm")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1, help="0: no one-step warm-up call")
    parser.add_argument(
        "--check-invariance",
        action="store_true",
        help="also generate image 0 alone and compare with its batched bytes",
    )
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--model-dir", default=str(ROOT / "var/bench/models"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/roentgen.json"))
    args = parser.parse_args()
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")

    from workers.runtime.registry import build_tiny

    store = ModelStore(Path(args.model_dir), load_manifests())
    t = time.time()
    resolved = build_tiny(store, MODEL, full_size=True)
    build_s = time.time() - t
    home = Path(tempfile.mkdtemp(prefix="roentgen-bench-"))
    platform_result = platform_run(args, Path(args.model_dir), home)
    plain_result = plain_run(args, resolved.path)
    gc.collect()
    ours, theirs = platform_result.pop("_first_image"), plain_result.pop("_first_image")
    if ours.shape == theirs.shape:
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        same_image = {"max_abs_diff": int(diff.max()), "equal_fraction": float((diff == 0).mean())}
    else:
        same_image = {"shapes": [list(ours.shape), list(theirs.shape)]}
    result = {
        "benchmark": "roentgen-v2 generate: platform vs plain diffusers",
        "weights": resolved.weights,
        "device": args.device,
        "dtype": args.dtype,
        "batch": args.batch,
        "steps": args.steps,
        "size": args.size,
        "scheduler": args.scheduler,
        "guidance_scale": 3.0,
        "warmup": bool(args.warmup),
        "cpu_count": os.cpu_count(),
        "build_s": round(build_s, 1),
        "platform": platform_result,
        "plain_diffusers": plain_result,
        "ratio_platform_over_plain": round(
            platform_result["images_per_s"] / plain_result["images_per_s"], 3
        ),
        "first_image_platform_vs_plain": same_image,
        "python": platform.python_version(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
