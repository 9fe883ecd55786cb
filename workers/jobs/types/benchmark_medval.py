"""`benchmark-medval`: grade MedVAL-Bench (or a CSV in its layout) with a MedVAL evaluator and
score the grades against the physicians' labels.

The evaluator is `medval-4b` (or another MedVAL model) on a platform worker, called at batch
priority, or any OpenAI-compatible endpoint (vLLM serving MedVAL-4B, or a general LLM) given by
URL and model name; both get the released prompt and the same answer parser and constrained
retry (`workers.medval.evaluate`). Each row is graded as upstream `run.py` grades it:
instruction = the task's released prompt, reference = `input`, candidate = `output`.

Artifacts: `metrics.json` (`workers.benchmarks.medval_metrics`: per-task and overall safety F1,
risk agreement, error categories), `report.md`, `confusion.png`, `samples.parquet` (one row per
sample: physician and model grade, errors, reasoning, any evaluation error) and
`medval-bench.csv` in the layout upstream `run.py` writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from core.errors import DeadlineExceeded, InvalidInput, MedserveError, Overloaded, Unavailable
from workers.jobs.benchmarking import bounded_map, read_parts, write_part
from workers.jobs.types import JobParams, JobType
from workers.medval.tasks import TASK_PROMPTS

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext

FATAL = (Overloaded, Unavailable, DeadlineExceeded)  # after the clients' own retries


class Evaluator(JobParams):
    """Without `base_url`: a MedVAL model on a platform worker. With it: an OpenAI-compatible
    endpoint serving `model`."""

    model: str = Field("medval-4b", min_length=1, description="Worker model or served model.")
    base_url: str | None = Field(None, pattern=r"^https?://", description="OpenAI-compatible.")
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float = Field(600.0, gt=0, le=3600)
    priority: int | None = Field(None, description="vLLM `priority` (see Endpoint).")


class MedVALBenchParams(JobParams):
    source: str = Field(
        ...,
        min_length=1,
        description="MedVAL-Bench copy: a folder of CSVs, a CSV, an fsspec URL, or a "
        "`datasets.save_to_disk` folder.",
    )
    split: str = Field("test", pattern=r"^[\w.-]+$")
    tasks: list[str] | None = Field(None, description="Only these tasks (default: all).")
    limit: int | None = Field(None, ge=1, description="First N rows after the task filter.")
    evaluator: Evaluator = Field(default_factory=Evaluator)
    max_tokens: int = Field(1024, ge=16, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    enable_thinking: bool = False
    constrained: bool = Field(False, description="Constrained decoding from the first try.")
    unsafe_from: int = Field(3, ge=2, le=4, description="Lowest risk level counted unsafe.")
    concurrency: int = Field(4, ge=1, le=64, description="Evaluations in flight.")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str] | None) -> list[str] | None:
        unknown = [t for t in tasks or [] if t not in TASK_PROMPTS]
        if unknown:
            raise ValueError(f"unknown task {unknown[0]!r}; use {', '.join(TASK_PROMPTS)}")
        return tasks


def _assessment(errors: list[dict[str, Any]]) -> str:
    """Errors in the text form the physicians' column uses ("Error 1: category - text")."""
    if not errors:
        return "None"
    lines = []
    for i, e in enumerate(errors, start=1):
        head = f"{e['category']} - " if e.get("category") else ""
        lines.append(f"Error {i}: {head}{e['text']}")
    return "\n".join(lines)


class Grader:
    """One shard's evaluator: an engine and the loop its coroutines run on."""

    def __init__(self, ctx: JobContext) -> None:
        from workers.jobs.benchmarking import AsyncModels, Endpoint
        from workers.medval.evaluate import GenerationOptions, VLLMEngine, WorkerEngine
        from workers.runtime.llm_sync import EventLoop

        p, spec = ctx.params, ctx.params["evaluator"]
        self.options = GenerationOptions(p["max_tokens"], p["temperature"], p["enable_thinking"])
        self.constrained = bool(p["constrained"])
        self.llm: Any = None
        self.loop: Any = None
        if spec.get("base_url"):
            endpoint = Endpoint(**{k: spec[k] for k in Endpoint.model_fields if k in spec})
            self.llm = endpoint.client()
            self.engine: Any = VLLMEngine(self.llm.client, spec["model"], endpoint.extra())
            self.run = self.llm.run
        else:
            self.loop = EventLoop()
            self.engine = WorkerEngine(AsyncModels(ctx.models), spec["model"])
            self.run = self.loop.run

    def grade(self, item: dict[str, Any]) -> dict[str, Any]:
        from workers.medval.evaluate import EvalItem, evaluate

        record: dict[str, Any] = {"index": item["index"], "key": item["key"]}
        if item.get("instruction") is None:
            return {**record, "error": f"unknown task {item['task']!r} and no instruction column"}
        graded = EvalItem(item["instruction"], item["reference"], item["candidate"])
        try:
            outcome = self.run(
                evaluate(self.engine, [graded], self.options, constrained=self.constrained)
            )[0]
        except FATAL:
            raise
        except MedserveError as exc:  # this row is refused (too long...): keep going
            return {**record, "error": exc.message}
        if outcome.evaluation is None:
            return {**record, "constrained": outcome.constrained, "error": outcome.error}
        found = outcome.evaluation
        errors = [{"category": e.category, "text": e.text} for e in found.errors]
        return {
            **record,
            "risk_level": found.risk_level,
            "errors": errors,
            "error_assessment": _assessment(errors),
            "reasoning": found.reasoning,
            "constrained": outcome.constrained,
            "error": None,
        }

    def provenance(self) -> dict[str, Any]:
        info: dict[str, Any] = self.run(self.engine.provenance())
        return info

    def close(self) -> None:
        for closer in (self.llm, self.loop):
            if closer is not None:
                closer.close()


class MedVALBenchJob(JobType):
    name = "benchmark-medval"
    Params = MedVALBenchParams

    def plan(self, ctx: JobContext) -> list[dict[str, Any]]:
        from workers.benchmarks.medval_data import load_rows

        p = ctx.params
        rows = load_rows(p["source"], p["split"])
        if p.get("tasks"):
            rows = [r for r in rows if r.get("task") in p["tasks"]]
        rows = rows[: p["limit"]] if p.get("limit") else rows
        if not rows:
            raise InvalidInput("no rows left after the task filter; check `tasks` and `split`")
        keys = [str(row.get("#") or i) for i, row in enumerate(rows)]
        if len(set(keys)) != len(keys):  # the metrics match grades to rows by `#`
            keys = [str(i + 1) for i in range(len(rows))]
        items = []
        for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
            task = str(row.get("task") or "")
            instruction = TASK_PROMPTS.get(task) or (row.get("instruction") or None)
            items.append(
                {
                    "index": i,
                    "key": key,
                    "task": task,
                    "instruction": instruction,
                    "reference": row.get("input", ""),
                    "candidate": row.get("output", ""),
                    "row": {**row, "#": key},
                }
            )
        return items

    def run_shard(self, ctx: JobContext, shard: int, items: list[dict[str, Any]]) -> dict[str, Any]:
        grader = Grader(ctx)
        try:
            records = bounded_map(ctx, items, grader.grade, int(ctx.params["concurrency"]))
            provenance = grader.provenance()
        finally:
            grader.close()
        write_part(ctx, "graded", shard, {"records": records, "provenance": provenance})
        return {"failed": sum(1 for r in records if r.get("error"))}

    def finalize(
        self, ctx: JobContext, done: list[int], plan: list[dict[str, Any]]
    ) -> dict[str, Any]:
        from workers.jobs.types.benchmark_medval_outputs import write_outputs

        parts = read_parts(ctx, "graded", done)
        records = {r["index"]: r for part in parts for r in part["records"]}
        provenance = parts[-1]["provenance"] if parts else {}
        return write_outputs(ctx, plan, records, provenance)


__all__ = ["MedVALBenchJob", "MedVALBenchParams"]
