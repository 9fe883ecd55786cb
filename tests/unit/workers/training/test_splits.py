"""The seeded, patient-level train/val/test split."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInput
from workers.training.params import SplitOptions
from workers.training.sources import Table
from workers.training.splits import assign


def table(patients: list[str], split: list[str] | None = None) -> Table:
    n = len(patients)
    return Table(
        paths=[f"{i}.png" for i in range(n)],
        labels=np.zeros((n, 1), np.float32),
        label_names=["x"],
        sex=["male"] * n,
        age=[None] * n,
        race=["A"] * n,
        patient=patients,
        split=split,
    )


def test_patients_stay_in_one_split_and_seed_reproduces() -> None:
    patients = [f"P{i // 3}" for i in range(300)]  # 100 patients, 3 images each
    options = SplitOptions(val_fraction=0.1, test_fraction=0.2)
    split = assign(table(patients), options, seed=5)
    for p in set(patients):
        assert len({s for s, q in zip(split, patients, strict=True) if q == p}) == 1
    counts = {
        s: len({q for s2, q in zip(split, patients, strict=True) if s2 == s})
        for s in ("train", "val", "test")
    }
    assert counts == {"train": 70, "val": 10, "test": 20}
    assert (assign(table(patients), options, seed=5) == split).all()
    assert not (assign(table(patients), options, seed=6) == split).all()


def test_split_column_wins_and_is_checked() -> None:
    split = assign(table(["a", "b", "c"], ["Train", "valid", "TEST"]), SplitOptions(), 0)
    assert split.tolist() == ["train", "val", "test"]
    with pytest.raises(InvalidInput, match="split column value 'holdout'"):
        assign(table(["a", "b", "c"], ["train", "val", "holdout"]), SplitOptions(), 0)
    with pytest.raises(InvalidInput, match="the test split is empty"):
        assign(table(["a", "b"], ["train", "val"]), SplitOptions(), 0)


def test_too_few_patients() -> None:
    with pytest.raises(InvalidInput, match="2 patient"):
        assign(table(["a", "a", "b"]), SplitOptions(), 0)
    assert sorted(assign(table(["a", "b", "c"]), SplitOptions(), 0)) == ["test", "train", "val"]
