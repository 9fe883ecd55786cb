"""Checkpoint bytes: the whole run state (finished strategies, the stage in progress, RNGs).

Written with `torch.save` and read back with `weights_only=True`, so a checkpoint taken from
job artifacts can hold tensors, numbers, strings, lists and dicts but never code. numpy
arrays and RNG states are converted to tensors on the way in and back on the way out.
"""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch

from core.errors import InvalidInput

FORMAT = 1


def _to_torch(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {
            "__ndarray__": torch.from_numpy(np.ascontiguousarray(value)),
            "dtype": str(value.dtype),
        }
    if isinstance(value, dict):
        return {k: _to_torch(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_torch(v) for v in value]
    return value


def _from_torch(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy().astype(value["dtype"])
        return {k: _from_torch(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_torch(v) for v in value]
    return value


def dump(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(_to_torch({"format": FORMAT, **state}), buffer)
    return buffer.getvalue()


def load(data: bytes) -> dict[str, Any]:
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:
        raise InvalidInput("the checkpoint is truncated or not a training checkpoint") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InvalidInput("the checkpoint is not a training checkpoint of this version")
    state: dict[str, Any] = _from_torch(raw)
    return state


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states, as checkpointable values."""
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "key": np_state["state"]["key"].astype(np.int64),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": [version, list(internal), gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
