"""Whether this worker's device meets a manifest's `resources` (checked before loading).

`cpu_ok: false` refuses a CPU device; `min_gpu_memory_gb` refuses a smaller GPU. The check
applies to released and full-size weights; a `random-tiny` build is small by construction and
is served anywhere (tests and the offline demo), labelled `weights: random-tiny`.
"""

from __future__ import annotations

from typing import Any

from core.errors import Unavailable
from model_store.manifest import Manifest


def gpu_memory_gb(device: str) -> float | None:
    """Total memory of a CUDA device in GB (None when `device` is not a GPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
    return float(torch.cuda.get_device_properties(index).total_memory) / 1e9


def check_resources(manifest: Manifest, device: str, weights: str, gpu_gb: Any = None) -> None:
    """Raise Unavailable, saying how to host the model, when `device` cannot run it."""
    if weights == "random-tiny":
        return
    needs = manifest.resources
    want = f"a GPU with at least {needs.min_gpu_memory_gb:g} GB"
    how = (
        f"host it on a worker with MEDSERVE_DEVICE=cuda and {want} (add {manifest.name} to that "
        "worker's MEDSERVE_MODELS)"
    )
    memory = gpu_memory_gb(device) if gpu_gb is None else float(gpu_gb)
    if memory is None:
        if not needs.cpu_ok:
            raise Unavailable(
                f"model '{manifest.name}' needs {want} and does not run on the CPU (its "
                f"manifest says cpu_ok: false); this worker's device is {device}: {how}"
            )
        return
    if memory < needs.min_gpu_memory_gb:
        raise Unavailable(
            f"model '{manifest.name}' needs {want}; this worker's {device} has {memory:.0f} GB: "
            f"{how}"
        )
