"""The artifacts of `benchmark-reports`, computed from the shards without any model call except
BERTScore's encoder: metrics per corpus and per group, report, chart and per-sample table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from workers.benchmarks.lexical import MetricResult
    from workers.jobs.runner import JobContext

# Metrics on a 0-1 scale (sacrebleu is 0-100), in the order tables and charts show them.
ORDER = ("green", "f1_srr_bert", "bertscore", "bleu", "sacrebleu", "rouge1", "rouge2", "rougeL")


def _f1_metric(labels: dict[str, list[int]], info: dict[str, Any]) -> Any:
    """F1-SRR-BERT over stored sentence labels (a lookup labeller: no model needed here)."""
    from workers.benchmarks.lexical import MetricResult
    from workers.srrg.f1 import f1_srr_bert
    from workers.srrg.label_maps import label_names

    names = label_names(info["label_set"])

    def lookup(sentences: list[str]) -> np.ndarray:
        out = np.zeros((len(sentences), len(names)), dtype=int)
        for row, sentence in enumerate(sentences):
            out[row, labels[sentence]] = 1
        return out

    def metric(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
        result = f1_srr_bert(refs, hyps, lookup, names)
        per_label = {k: v for k, v in result.per_label.items() if v["support"] or v["precision"]}
        details = {"precision": result.precision, "recall": result.recall, "per_label": per_label}
        return MetricResult(result.f1, list(result.sample_f1), details, corpus=True)

    return metric


def _green_metric(values: list[float | None], texts: list[str | None]) -> Any:
    from workers.benchmarks import green
    from workers.benchmarks.lexical import MetricResult

    scored = [t for t in texts if t is not None]
    summary = green.summarize(scored) if scored else {"green_std": 0.0}
    details = {k: summary[k] for k in ("green_std", "no_significant_error_rate") if k in summary}
    given = [v for v in values if v is not None]
    mean = sum(given) / len(given) if given else 0.0
    return lambda refs, hyps: MetricResult(mean, list(values), details)


def _metrics(ctx: JobContext, records: list[dict], labels: dict, prov: dict, setup: dict) -> dict:
    from workers.benchmarks.report_metrics import lexical_metrics

    p = ctx.params
    metrics: dict[str, Any] = dict(lexical_metrics()) if p["lexical"] else {}
    if p.get("bertscore"):
        from workers.benchmarks.bertscore import bertscore_metric

        spec = p["bertscore"]
        metrics["bertscore"] = bertscore_metric(
            spec["model_dir"],
            spec["num_layers"],
            baseline_path=spec.get("baseline_path"),
            batch_size=spec["batch_size"],
        )
    if p.get("srrbert") and "srrbert" in prov:
        metrics["f1_srr_bert"] = _f1_metric(labels, prov["srrbert"])
    if setup["green"]:
        metrics["green"] = _green_metric(
            [r.get("green") for r in records], [r.get("green_text") for r in records]
        )
    return dict(sorted(metrics.items(), key=lambda kv: ORDER.index(kv[0])))


def _report(doc: dict[str, Any]) -> str:
    setup = doc["setup"]
    green_state = "on" if setup["green"] else f"not computed ({setup['green_reason']})"
    lines = [
        "# Report metrics",
        "",
        f"Samples {doc['n']}, scored {doc['n_scored']}, without a hypothesis {doc['failed']}. "
        f"GREEN: {green_state}.",
        "",
        "| metric | corpus value | mean | std | scored | missing |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in doc["metrics"].items():
        lines.append(
            f"| {name} | {m['aggregate']:.4f} | {m['mean']:.4f} | {m['std']:.4f} | "
            f"{m['n_scored']} | {m['n_missing']} |"
        )
    if doc.get("per_group"):
        names = list(doc["metrics"])
        lines += [
            "",
            "## Per group",
            "",
            "| group | n | " + " | ".join(names) + " |",
            "|---|---:|" + "---:|" * len(names),
        ]
        for group, row in doc["per_group"].items():
            cells = ["-" if row.get(n) is None else f"{row[n]:.4f}" for n in names]
            lines.append(f"| {group} | {row['n']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "BLEU/ROUGE/BERTScore as RadEval 2.2.1 computes them (sacrebleu on 0-100); "
        "F1-SRR-BERT: weighted F1 over the label set; GREEN: mean over samples.",
    ]
    return "\n".join(lines) + "\n"


def _samples(records: list[dict], values: dict[str, list], valid: list[int]) -> list[dict]:
    position = {index: k for k, index in enumerate(valid)}
    rows = []
    for r in records:
        k = position.get(r["index"])
        row = {
            key: r.get(key)
            for key in (
                "index",
                "group",
                "image",
                "reference",
                "hypothesis",
                "error",
                "green",
                "green_matched",
                "green_significant",
                "green_insignificant",
                "green_text",
                "green_error",
            )
        }
        row |= {name: (v[k] if k is not None else None) for name, v in values.items()}
        rows.append(row)
    return rows


def write_outputs(
    ctx: JobContext, plan: list[dict[str, Any]], parts: list[dict[str, Any]], setup: dict
) -> dict[str, Any]:
    from workers.benchmarks.report_metrics import evaluate
    from workers.jobs.benchmarking import bar_chart, write_parquet

    by_index = {r["index"]: r for part in parts for r in part["records"]}
    records = [
        by_index.get(i["index"], {**i, "error": "not scored (job stopped early)"}) for i in plan
    ]
    labels = {s: v for part in parts for s, v in part["sentence_labels"].items()}
    provenance: dict[str, Any] = {}
    for part in parts:
        provenance |= part["provenance"]
    valid = [r for r in records if r.get("hypothesis") is not None]
    refs, hyps = [r["reference"] for r in valid], [r["hypothesis"] for r in valid]
    grouped = bool(valid) and all(r.get("group") is not None for r in valid)
    groups = [r["group"] for r in valid] if grouped else None  # a folder source has no groups
    metrics = _metrics(ctx, valid, labels, provenance, setup)
    result = evaluate(refs, hyps, metrics, groups) if valid else {"n": 0, "metrics": {}}
    values = {n: m.pop("per_sample") for n, m in result["metrics"].items()}
    doc = {
        "benchmark": "reports",
        "source": ctx.params["source"],
        "n": len(records),
        "n_scored": len(valid),
        "failed": len(records) - len(valid),
        "setup": setup,
        "provenance": provenance,
        "metrics": result["metrics"],
        "per_group": result.get("per_group"),
        "machine_generated": True,
    }
    ctx.artifacts.write_text("metrics.json", json.dumps(doc, indent=2, sort_keys=True))
    ctx.artifacts.write_text("report.md", _report(doc))
    scale = {"sacrebleu": 0.01}
    overall = {"all": {n: m["aggregate"] * scale.get(n, 1.0) for n, m in doc["metrics"].items()}}
    per_group = {
        g: {
            n: (v * scale.get(n, 1.0) if v is not None else None)
            for n, v in row.items()
            if n != "n"
        }
        for g, row in (doc["per_group"] or {}).items()
    }
    chart = bar_chart(overall | per_group, "Report metrics", "score (0-1)", ylim=1.0)
    ctx.artifacts.write_bytes("metrics.png", chart)
    write_parquet(
        ctx.artifacts, "samples.parquet", _samples(records, values, [r["index"] for r in valid])
    )
    return {
        "samples": len(records),
        "scored": len(valid),
        **{n: round(m["aggregate"], 6) for n, m in doc["metrics"].items()},
    }
