"""Direct-loop training throughput (images/s): the classifier on latents versus on images.

No data loading: random inputs already on the device, so the figure is the model's
forward + backward + AdamW step alone (what MedVAE's throughput claim is about); the jobs
measure the whole loop, data included, in `metrics.json`.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from workers.training.inputs import latent_stem
from workers.training.loop import amp_dtype, masked_bce, pick_device
from workers.training.models import build, count_parameters
from workers.training.params import ModelOptions


def measure(
    model: torch.nn.Module,
    input_shape: tuple[int, int, int],
    n_labels: int,
    *,
    batch_size: int = 32,
    steps: int = 10,
    warmup: int = 2,
    device: str = "auto",
    amp: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Images/s over `steps` timed training steps after `warmup` untimed ones."""
    dev = pick_device(device)
    dtype = amp_dtype(amp, dev)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch_size, *input_shape), generator=gen).to(dev)
    y = (torch.rand((batch_size, n_labels), generator=gen) < 0.3).float().to(dev)
    model = model.to(dev).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None

    def step() -> None:
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = masked_bce(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elapsed = time.perf_counter() - start
    return {
        "images_per_s": batch_size * steps / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "batch_size": batch_size,
        "steps": steps,
        "input_shape": list(input_shape),
        "parameters": count_parameters(model),
        "device": str(dev),
        "amp": str(dtype).replace("torch.", "") if dtype else "off",
        "threads": torch.get_num_threads(),
    }


def latent_vs_image(
    options: ModelOptions,
    image_side: int,
    factor: int,
    latent_channels: int,
    n_labels: int = 14,
    **kwargs: Any,
) -> dict[str, Any]:
    """The same classifier on a `factor`x latent and on the full-resolution image."""
    side = image_side // factor
    stem = latent_stem(options, side)
    torch.manual_seed(0)
    latent = measure(
        build(options, n_labels, latent_channels, stem=stem),
        (latent_channels, side, side),
        n_labels,
        **kwargs,
    )
    torch.manual_seed(0)
    image = measure(build(options, n_labels, 1), (1, image_side, image_side), n_labels, **kwargs)
    return {
        "latent": {**latent, "stem": stem},
        "image": image,
        "speedup": latent["images_per_s"] / image["images_per_s"],
    }
