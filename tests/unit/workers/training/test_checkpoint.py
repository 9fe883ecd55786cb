"""Checkpoint bytes: round trip of state and RNGs; refusal of foreign or unsafe data."""

from __future__ import annotations

import io
import pickle
import random

import numpy as np
import pytest
import torch

from core.errors import InvalidInput
from workers.training import checkpoint


def test_round_trip_with_arrays_and_rng() -> None:
    checkpoint.seed_all(3)
    state = {
        "results": {"real": {"probs": np.arange(6, dtype=np.float32).reshape(2, 3)}},
        "rng": checkpoint.rng_state(),
        "best": float("-inf"),
        "names": ["a", "b"],
    }
    expected = (torch.rand(3), np.random.random(3), random.random())
    back = checkpoint.load(checkpoint.dump(state))
    probs = back["results"]["real"]["probs"]
    assert probs.dtype == np.float32 and probs.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert back["best"] == float("-inf") and back["names"] == ["a", "b"]
    torch.rand(5), np.random.random(5), random.random()  # move every generator on
    checkpoint.set_rng_state(back["rng"])
    again = (torch.rand(3), np.random.random(3), random.random())
    assert torch.equal(again[0], expected[0])
    assert (again[1] == expected[1]).all() and again[2] == expected[2]


class Evil:
    def __reduce__(self) -> tuple:
        return (print, ("code ran",))


def test_refuses_garbage_code_and_other_formats() -> None:
    with pytest.raises(InvalidInput, match="truncated or not a training checkpoint"):
        checkpoint.load(b"not a checkpoint")
    buffer = io.BytesIO()
    torch.save({"format": 1, "x": Evil()}, buffer, pickle_module=pickle)
    with pytest.raises(InvalidInput):
        checkpoint.load(buffer.getvalue())  # weights_only: no objects, no code
    buffer = io.BytesIO()
    torch.save({"format": 99}, buffer)
    with pytest.raises(InvalidInput, match="this version"):
        checkpoint.load(buffer.getvalue())
