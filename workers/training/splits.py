"""Seeded train/val/test split by patient (torch-free), shared by every strategy of a run."""

from __future__ import annotations

import numpy as np

from core.errors import InvalidInput
from workers.training.params import SplitOptions
from workers.training.sources import Table

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def assign(table: Table, options: SplitOptions, seed: int) -> np.ndarray:
    """One of train/val/test per row: the CSV's split column, else patients shuffled by `seed`.

    A patient's images all land in one split; the test and val shares are of patients.
    """
    if table.split is not None:
        try:
            out = np.array([SPLIT_NAMES[s.strip().lower()] for s in table.split], dtype=object)
        except KeyError as exc:
            raise InvalidInput(
                f"split column value {exc.args[0]!r}: use train, val (valid) or test"
            ) from None
    else:
        groups = sorted(set(table.patient))
        if len(groups) < 3:
            raise InvalidInput(f"{len(groups)} patient(s): a train/val/test split needs at least 3")
        order = np.random.default_rng([seed, 1]).permutation(len(groups))
        n_test = max(1, round(options.test_fraction * len(groups)))
        n_val = max(1, round(options.val_fraction * len(groups)))
        n_test = min(n_test, len(groups) - 2)
        n_val = min(n_val, len(groups) - n_test - 1)
        where = {}
        for rank, g in enumerate(order):
            where[groups[g]] = (
                "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            )
        out = np.array([where[p] for p in table.patient], dtype=object)
    for name in ("train", "val", "test"):
        if not (out == name).any():
            raise InvalidInput(f"the {name} split is empty: add rows or change the split")
    return out


def indices(split: np.ndarray, name: str) -> np.ndarray:
    return np.flatnonzero(split == name)
