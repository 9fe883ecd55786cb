"""The artifacts of `benchmark-medval`, built from the graded shards: metrics, report, plot,
per-sample table and the upstream results CSV."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput

if TYPE_CHECKING:
    from workers.jobs.runner import JobContext


def _predictions(plan: list[dict[str, Any]], records: dict[int, dict[str, Any]]) -> dict:
    out = {}
    for item in plan:
        record = records.get(item["index"]) or {}
        if record.get("risk_level") is not None:
            out[item["key"]] = {
                "risk_level": record["risk_level"],
                "errors": record["error_assessment"],
            }
    return out


def _samples(
    plan: list[dict[str, Any]], records: dict[int, dict[str, Any]], scored: list[dict] | None
) -> list[dict[str, Any]]:
    rows = []
    for i, item in enumerate(plan):
        record = records.get(item["index"]) or {"error": "not graded (job stopped early)"}
        row = {
            "index": item["index"],
            "#": item["key"],
            "task": item["task"],
            "input": item["reference"],
            "output": item["candidate"],
            "model_risk": record.get("risk_level"),
            "model_error_list": record.get("errors"),
            "model_reasoning": record.get("reasoning"),
            "constrained": record.get("constrained"),
            "error": record.get("error"),
        }
        if scored is not None:
            metrics = scored[i]
            row |= {k: metrics[k] for k in ("physician_risk", "physician_safety", "model_safety",
                                           "safety_agrees", "risk_agrees", "physician_errors",
                                           "model_errors")}  # fmt: skip
        rows.append(row)
    return rows


def _upstream_csv(plan: list[dict[str, Any]], records: dict[int, dict[str, Any]]) -> str:
    """`medval-bench.csv` as upstream `run.py` writes it (missing values as "None")."""
    from workers.benchmarks.medval_data import rows_to_csv

    rows = []
    for item in plan:
        record = records.get(item["index"]) or {}
        grade = record.get("risk_level")
        rows.append(
            {
                **item["row"],
                "lm_reasoning": record.get("reasoning") or "None",
                "lm_error_assessment": record.get("error_assessment") or "None",
                "lm_risk_grade": "None" if grade is None else str(grade),
            }
        )
    return rows_to_csv(rows)


def _report(metrics: dict[str, Any] | None, head: dict[str, Any]) -> str:
    from workers.benchmarks.medval_report import render_markdown

    lines = [
        f"Evaluator: {head['evaluator']['served_model']} ({head['evaluator']['engine']}, weights "
        f"{head['evaluator'].get('weights')}). Rows {head['rows']}, graded {head['graded']}, "
        f"not graded {head['failed']}.",
        "",
    ]
    if head["failures"]:
        lines += ["Why rows were not graded:", ""]
        lines += [f"- {n} x {why}" for why, n in head["failures"].items()] + [""]
    if metrics is None:
        body = "# MedVAL-Bench\n\nThe source has no physician grades: only the model's grades "
        body += f"are reported ({head['model_risk_counts']}).\n"
        return body + "\n" + "\n".join(lines)
    text = render_markdown(metrics)
    return text.replace("\n\n", "\n\n" + "\n".join(lines) + "\n", 1)


def _confusion_png(matrix: list[list[int]]) -> bytes:
    from workers.benchmarks.medval_report import plot_confusion

    with tempfile.TemporaryDirectory() as tmp:
        return plot_confusion(matrix, Path(tmp) / "confusion.png").read_bytes()


def write_outputs(
    ctx: JobContext,
    plan: list[dict[str, Any]],
    records: dict[int, dict[str, Any]],
    provenance: dict[str, Any],
) -> dict[str, Any]:
    from workers.benchmarks import medval_metrics
    from workers.jobs.benchmarking import write_parquet

    p = ctx.params
    rows = [item["row"] for item in plan]
    try:
        metrics: dict[str, Any] | None = medval_metrics.score(
            rows, _predictions(plan, records), p["unsafe_from"]
        )
    except InvalidInput:  # no physician grades: a plain grading run
        metrics = None
    graded = [r for r in records.values() if r.get("risk_level") is not None]
    head = {
        "benchmark": "MedVAL-Bench",
        "source": p["source"],
        "split": p["split"],
        "rows": len(plan),
        "graded": len(graded),
        "failed": len(plan) - len(graded),
        "failures": dict(
            Counter(
                str(r["error"]).split(";")[0] for r in records.values() if r.get("error")
            ).most_common(5)
        ),
        "model_risk_counts": dict(sorted(Counter(r["risk_level"] for r in graded).items())),
        "evaluator": {**p["evaluator"], **provenance},
        "settings": {
            k: p[k]
            for k in ("max_tokens", "temperature", "enable_thinking", "constrained", "unsafe_from")
        },
        "machine_generated": True,
    }
    samples = metrics.pop("samples") if metrics else None
    doc = {**head, **(metrics or {"labelled": False})}
    ctx.artifacts.write_text("metrics.json", json.dumps(doc, indent=2, sort_keys=True))
    ctx.artifacts.write_text("report.md", _report(metrics, head))
    if metrics:
        ctx.artifacts.write_bytes(
            "confusion.png", _confusion_png(metrics["overall"]["risk"]["confusion"])
        )
    write_parquet(ctx.artifacts, "samples.parquet", _samples(plan, records, samples))
    ctx.artifacts.write_text("medval-bench.csv", _upstream_csv(plan, records))
    overall = metrics["overall"] if metrics else None
    return {
        "rows": head["rows"],
        "graded": head["graded"],
        "failed": head["failed"],
        "unsafe_f1": overall["safety"]["unsafe_f1"] if overall else None,
        "risk_macro_f1": overall["risk"]["macro_f1"] if overall else None,
    }
