"""Shard bookkeeping: the job's frozen plan (items and shard size) and which shards remain.

The plan is written once, on the first attempt, next to the job's artifacts; every later
attempt reads it back, so a resumed job splits its items exactly as before even if the
runner's settings (shard size) or the input folder changed meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers.jobs.artifacts import ArtifactStore

PLAN_PATH = ".shards/plan.json"


@dataclass(frozen=True)
class Plan:
    items: list[dict[str, Any]]
    shard_size: int

    @property
    def shard_count(self) -> int:
        return (len(self.items) + self.shard_size - 1) // self.shard_size

    def shard_items(self, shard: int) -> list[dict[str, Any]]:
        start = shard * self.shard_size
        return self.items[start : start + self.shard_size]

    def pending(self, done: set[int]) -> list[int]:
        """Shards not yet recorded as finished, in order."""
        return [s for s in range(self.shard_count) if s not in done]


def load_or_create_plan(
    artifacts: ArtifactStore, make_items: Callable[[], list[dict[str, Any]]], shard_size: int
) -> Plan:
    """Read the frozen plan, or make it and write it (atomically) on the first attempt."""
    if artifacts.exists(PLAN_PATH):
        doc = json.loads(artifacts.read_bytes(PLAN_PATH))
        return Plan(items=doc["items"], shard_size=int(doc["shard_size"]))
    plan = Plan(items=make_items(), shard_size=max(1, int(shard_size)))
    artifacts.write_text(
        PLAN_PATH, json.dumps({"items": plan.items, "shard_size": plan.shard_size})
    )
    return plan
