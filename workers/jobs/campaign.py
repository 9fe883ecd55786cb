"""The plan of a demographically balanced synthetic campaign (pure; no model, no I/O).

A grid of findings x sex x age bin x race with N images per cell (or a total split across
cells by target marginals). Items are ordered round-robin over cells, so any prefix of the
job (a cancelled campaign keeps its finished shards) stays as balanced as it can be. Seeds and
ages come from a hash of (job seed, cell, index): the same parameters always give the same
prompts, seeds and file names, which is what makes a redone shard identical.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from typing import Any

from workers.roentgen.contract import build_prompt


def derive(seed: int, *parts: Any) -> int:
    """A 31-bit integer from a hash of the job seed and `parts` (stable across runs)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def prompt_for(age: int, sex: str, race: str | None, finding: str) -> str:
    """RoentGen-v2's released template, rendered by the family's contract."""
    return build_prompt(age=age, sex=sex, race=race, impression=finding)


def cells(params: dict[str, Any]) -> list[dict[str, Any]]:
    races: list[str | None] = list(params["races"]) or [None]
    grid = itertools.product(
        enumerate(params["findings"]), params["sexes"], params["age_bins"], races
    )
    return [
        {
            "finding_id": fid,
            "finding": finding,
            "sex": sex,
            "age_bin": f"{lo}-{hi}",
            "age_range": [lo, hi],
            "race": race,
        }
        for (fid, finding), sex, (lo, hi), race in grid
    ]


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder: exact sum)."""
    norm = sum(weights)
    raw = [total * w / norm for w in weights]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def cell_counts(params: dict[str, Any], grid: list[dict[str, Any]]) -> list[int]:
    """Images per cell: `images_per_cell`, or `total_images` split by target marginals."""
    if params.get("total_images") is None:
        return [int(params["images_per_cell"])] * len(grid)
    marginals = params.get("marginals") or {}

    def share(dim: str, value: Any) -> float:
        table = marginals.get(dim)
        return float(table.get(str(value), 0.0)) if table else 1.0

    weights = [
        share("finding", c["finding"]) * share("sex", c["sex"]) * share("age_bin", c["age_bin"])
        * share("race", c["race"])
        for c in grid
    ]  # fmt: skip
    if sum(weights) <= 0:
        return [0] * len(grid)
    return allocate(int(params["total_images"]), weights)


def plan_items(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every image of the campaign, round-robin over cells, with its prompt, seed and file."""
    grid = cells(params)
    counts = cell_counts(params, grid)
    seed = int(params["seed"])
    items: list[dict[str, Any]] = []
    for k in range(max(counts, default=0)):
        for cid, cell in enumerate(grid):
            if k >= counts[cid]:
                continue
            index = len(items)
            lo, hi = cell["age_range"]
            age = lo + derive(seed, "age", cid, k) % (hi - lo + 1)
            items.append({
                "index": index,
                "cell": cid,
                "k": k,
                "finding": cell["finding"],
                "sex": cell["sex"],
                "age_bin": cell["age_bin"],
                "age": age,
                "race": cell["race"],
                "seed": derive(seed, "image", cid, k),
                "prompt": prompt_for(age, cell["sex"], cell["race"], cell["finding"]),
                "file_name": f"images/{index // 1000:04d}/{index:06d}.png",
            })  # fmt: skip
    return items


def balance(rows: list[dict[str, Any]], planned: list[dict[str, Any]]) -> dict[str, Any]:
    """What the written images reach, per dimension and per cell, against the plan."""
    dims = ("finding", "sex", "age_bin", "race")

    def counts(source: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        return {d: dict(sorted(Counter(_label(r[d]) for r in source).items())) for d in dims}

    per_cell = Counter(r["cell"] for r in rows)
    planned_cell = Counter(r["cell"] for r in planned)
    written = [per_cell.get(c, 0) for c in sorted(planned_cell)]
    return {
        "images": len(rows),
        "planned": len(planned),
        "cells": len(planned_cell),
        "per_cell_min": min(written, default=0),
        "per_cell_max": max(written, default=0),
        "matches_plan": all(per_cell.get(c, 0) == n for c, n in planned_cell.items()),
        "marginals": counts(rows),
        "planned_marginals": counts(planned),
    }


def _label(value: Any) -> str:
    return "unspecified" if value is None else str(value)
