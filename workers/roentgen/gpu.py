"""RoentGen-v2 on a GPU: channels-last memory, optional `torch.compile` of the UNet (CUDA graphs
with `reduce-overhead`, the shapes being fixed per batch key), and batches bounded by the free
device memory.

`accelerate` applies the manifest's options (`channels_last_gpu`, `compile_gpu`) to a loaded
pipeline. `MemoryBudget` measures one image's peak memory at load (a one-step 512x512 call that
also triggers compilation, whose time is reported) and, per batch, says how many images of a
given size fit in `memory_fraction` of what the device has free; the batcher takes the smaller
of that and `max_batch_size`. Nothing here runs on the CPU: there the adapter skips it all.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("medserve.worker.roentgen")

REFERENCE_PIXELS = 512 * 512


def images_that_fit(free_bytes: int, per_image_bytes: int, pixels: int, fraction: float) -> int:
    """How many images of `pixels` fit in `fraction` of `free_bytes` (at least 1).

    `per_image_bytes` is one 512x512 image's measured peak; activations scale with the pixel
    count, so other sizes are scaled by pixels / 512^2.
    """
    if per_image_bytes <= 0:
        return 1
    need = per_image_bytes * max(pixels, 1) / REFERENCE_PIXELS
    return max(1, math.floor(free_bytes * fraction / need))


def accelerate(pipe: Any, channels_last: bool, compile_mode: str) -> dict[str, Any]:
    """Apply the GPU options to `pipe` in place; what was applied, for logs and provenance."""
    import torch

    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile_mode != "off":
        pipe.unet = torch.compile(pipe.unet, mode=compile_mode, fullgraph=False)
    return {"channels_last": channels_last, "compile": compile_mode}


@dataclass
class MemoryBudget:
    """One image's measured peak device memory and the fraction of free memory batches use."""

    device: str
    fraction: float
    per_image_bytes: int = 0
    warmup_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def measure(self, run_one: Any) -> None:
        """Call `run_one()` (one 512x512 image, one step) and record its peak memory and time;
        with `torch.compile` this first call is the compilation."""
        import torch

        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        start = time.perf_counter()
        run_one()
        torch.cuda.synchronize(self.device)
        self.warmup_s = time.perf_counter() - start
        self.per_image_bytes = max(0, torch.cuda.max_memory_allocated(self.device) - base)
        log.info(
            "roentgen-v2 warm-up (compilation included) %.1f s; one 512x512 image peaks at "
            "%.2f GB", self.warmup_s, self.per_image_bytes / 1e9,
        )  # fmt: skip

    def free_bytes(self) -> int:
        """Free device memory plus what the caching allocator holds but does not use."""
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        idle = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        return int(free + max(0, idle))

    def limit(self, height: int, width: int) -> int:
        return images_that_fit(self.free_bytes(), self.per_image_bytes, height * width,
                               self.fraction)  # fmt: skip
