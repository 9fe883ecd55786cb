"""What the benchmark job types share: the endpoint parameters of an OpenAI-compatible model,
bounded concurrent calls that report progress, shard parts, Parquet tables and bar charts.

Light at import (the gateway validates job parameters with these models): pyarrow, matplotlib
and the HTTP clients are imported where they are used.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field

from core.errors import InvalidInput
from workers.jobs.types import JobParams

if TYPE_CHECKING:
    from workers.jobs.artifacts import ArtifactStore
    from workers.jobs.runner import JobContext
    from workers.runtime.llm_sync import SyncLLMClient

T = TypeVar("T")
R = TypeVar("R")


class Endpoint(JobParams):
    """An OpenAI-compatible server (vLLM, the platform's own `/v1`, or any other)."""

    base_url: str = Field(
        ..., min_length=8, pattern=r"^https?://", description="e.g. http://vllm:8000/v1"
    )
    model: str = Field(..., min_length=1, description="The served model name.")
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the runner's environment variable holding the API key (the key "
        "itself never goes into job parameters).",
    )
    timeout_s: float = Field(600.0, gt=0, le=3600)
    priority: int | None = Field(
        None,
        description="vLLM request priority, sent as `priority` (a server started with "
        "--scheduling-policy priority serves larger values later); unset: not sent.",
    )

    def client(self) -> SyncLLMClient:
        from workers.runtime.llm_sync import SyncLLMClient

        key = None
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise InvalidInput(
                    f"the job runner has no environment variable {self.api_key_env}; set it "
                    "there, or drop api_key_env"
                )
        return SyncLLMClient(self.base_url, key, timeout_s=self.timeout_s)

    def extra(self) -> dict[str, Any]:
        """Fields every request body to this endpoint carries."""
        return {} if self.priority is None else {"priority": self.priority}


def bounded_map(
    ctx: JobContext, items: Sequence[T], work: Callable[[T], R], concurrency: int
) -> list[R]:
    """`work(item)` for every item, at most `concurrency` at once, results in order. Progress
    is reported per finished item; on a stop (cancel, lost lease) the items not yet started are
    dropped and only those in flight finish."""
    if concurrency <= 1:
        out = []
        for item in items:
            out.append(work(item))
            ctx.item_done()
        return out
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures = [pool.submit(work, item) for item in items]
        results = []
        for future in futures:
            results.append(future.result())
            ctx.item_done()
        return results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class AsyncModels:
    """The runner's blocking `ModelClients` behind the awaitable `infer` that engines written
    for the gateway's router expect (MedVAL's `WorkerEngine`); calls still go at batch priority."""

    def __init__(self, models: Any) -> None:
        self.models = models

    async def infer(
        self, model: str, inputs: dict[str, Any], parameters: dict[str, Any], **_: Any
    ) -> Any:
        return await asyncio.to_thread(self.models.infer, model, inputs, parameters)


def part_path(name: str, shard: int) -> str:
    return f".shards/{name}-{shard:05d}.json"


def write_part(ctx: JobContext, name: str, shard: int, doc: dict[str, Any]) -> None:
    """One shard's output, written atomically (redoing the shard overwrites it whole)."""
    ctx.artifacts.write_text(part_path(name, shard), json.dumps(doc, sort_keys=True))


def read_parts(ctx: JobContext, name: str, done: Iterable[int]) -> list[dict[str, Any]]:
    return [json.loads(ctx.artifacts.read_bytes(part_path(name, s))) for s in sorted(done)]


def _cell(value: Any) -> Any:
    """Dicts and lists that are not one plain type become JSON text."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list):
        kinds = {
            bool if isinstance(v, bool) else float if isinstance(v, int | float) else type(v)
            for v in value
            if v is not None
        }
        if len(kinds) > 1 or kinds - {str, float, bool}:
            return json.dumps(value, sort_keys=True)
    return value


def write_parquet(artifacts: ArtifactStore, rel: str, rows: list[dict[str, Any]]) -> None:
    """Rows as a Parquet table (nested values as JSON text, so every column has one type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(dict.fromkeys(k for row in rows for k in row))
    columns = {n: [_cell(row.get(n)) for row in rows] for n in names}
    table = pa.table(columns) if rows else pa.table({"index": pa.array([], pa.int64())})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    artifacts.write_bytes(rel, sink.getvalue())


def bar_chart(
    series: dict[str, dict[str, float | None]], title: str, ylabel: str, ylim: float | None = None
) -> bytes:
    """A grouped bar chart as PNG bytes: one group per outer key, one bar per inner key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(series)
    bars = list(dict.fromkeys(k for g in groups for k in series[g]))
    width = 0.8 / max(len(bars), 1)
    fig, ax = plt.subplots(figsize=(max(4.8, 0.9 * len(groups) * max(len(bars), 1)), 3.6), dpi=110)
    try:
        for i, bar in enumerate(bars):
            values = [series[g].get(bar) for g in groups]
            xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(groups))]
            ax.bar(xs, [0.0 if v is None else v for v in values], width, label=bar)
        ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if ylim is not None:
            ax.set_ylim(0, ylim)
        if len(bars) > 1:
            ax.legend(fontsize="small")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)


def pct(value: float | None, scale: float = 100.0) -> str:
    return "-" if value is None else f"{scale * value:.1f}"
