"""The GPUs `medserve serve` places workers on: from `MEDSERVE_GPUS`, else torch's view.

Detection runs torch in a child process (the serving process never imports torch, and an
install without torch, or a machine without an NVIDIA/AMD device node, skips it at once).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from cli.placement import Gpu
from core.errors import InvalidInput

_PROBE = (
    "import json, torch\n"
    "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
    "print(json.dumps([torch.cuda.get_device_properties(i).total_memory for i in range(n)]))\n"
)


def parse_gpus(text: str) -> list[tuple[int, float | None]]:
    """`none` -> []; `0,1` -> those GPUs (memory to detect: None); `0:80,1:80` -> with GB."""
    text = text.strip().lower()
    if text in ("none", "cpu", "off", ""):
        return []
    entries = []
    for part in text.split(","):
        index, _, memory = part.strip().partition(":")
        try:
            entries.append((int(index), float(memory) if memory else None))
        except ValueError:
            raise InvalidInput(
                f"MEDSERVE_GPUS={text!r}: write GPU indices (0,1) or index:GB (0:80,1:80), or none"
            ) from None
    return entries


def _has_device_nodes() -> bool:
    if not sys.platform.startswith("linux"):
        return True  # no cheap check elsewhere: ask torch
    dev = Path("/dev")
    return (dev / "nvidiactl").exists() or (dev / "kfd").exists()


def detect_gpus() -> list[Gpu]:
    """The GPUs torch sees (memory in GB), [] without torch or without a GPU."""
    if importlib.util.find_spec("torch") is None or not _has_device_nodes():
        return []
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                             timeout=120, check=True).stdout  # fmt: skip
        sizes = json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return []
    return [Gpu(i, round(size / 1e9, 1)) for i, size in enumerate(sizes)]  # GB, as manifests


def machine_gpus(setting: str | None) -> list[Gpu]:
    """The GPUs to plan for: MEDSERVE_GPUS as given (memory detected where left out)."""
    if setting is None:
        return detect_gpus()
    entries = parse_gpus(setting)
    seen = {g.index: g for g in detect_gpus()} if any(m is None for _, m in entries) else {}
    missing = [i for i, m in entries if m is None and i not in seen]
    if missing:
        raise InvalidInput(
            f"MEDSERVE_GPUS={setting}: torch sees no GPU {missing} here; give the memory as "
            "index:GB (0:80) or check CUDA_VISIBLE_DEVICES"
        )
    return [Gpu(i, m if m is not None else seen[i].memory_gb) for i, m in entries]


def visible_device(index: int) -> str:
    """The CUDA_VISIBLE_DEVICES value for GPU `index` as torch numbers it in this process."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if index < len(ids):
            return ids[index]
    return str(index)
