"""`sleep`: a model-free job for tests and demos: each item waits, then records its index.

Output: `items/shard-NNNNN.jsonl` (one line per item, written atomically per shard) and, at
the end, `items.jsonl` merged from the finished shards in order, so duplicates or gaps after
a crash and resume are visible in one file.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from workers.jobs.types import JobParams, JobType

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext


class SleepParams(JobParams):
    items: int = Field(10, ge=1, le=100_000, description="How many items.")
    item_ms: float = Field(10.0, ge=0, le=60_000, description="Time each item takes.")
    fail_at: int | None = Field(
        None, ge=0, description="Fail at this item (tests the failed state)."
    )


def shard_path(shard: int) -> str:
    return f"items/shard-{shard:05d}.jsonl"


class SleepJob(JobType):
    name = "sleep"
    Params = SleepParams

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        return [{"index": i} for i in range(int(ctx.params["items"]))]

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        lines = []
        for item in items:
            if ctx.params.get("fail_at") == item["index"]:
                from core.errors import InvalidInput

                raise InvalidInput(f"item {item['index']} failed on purpose (fail_at)")
            time.sleep(float(ctx.params["item_ms"]) / 1000.0)
            lines.append(json.dumps({"index": item["index"], "attempt": ctx.attempt}))
            ctx.item_done()
        ctx.artifacts.write_text(shard_path(shard), "\n".join(lines) + "\n")
        return {"first": items[0]["index"], "last": items[-1]["index"]}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        parts = [ctx.artifacts.read_bytes(shard_path(s)).decode() for s in sorted(done)]
        ctx.artifacts.write_text("items.jsonl", "".join(parts))
        return {"items_written": sum(p.count("\n") for p in parts)}
