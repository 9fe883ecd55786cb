"""Report-generation metrics over a corpus: any per-sample metric callable, aggregated overall
and per group (e.g. per dataset or modality), with per-sample values kept.

A metric is a callable `(refs, hyps) -> MetricResult | Sequence[float | None]`. A plain sequence
is per-sample values whose mean is the aggregate (F1-SRR-BERT, GREEN, ROUGE); a `MetricResult`
with `corpus=True` (BLEU) is recomputed on each group's subset, since its aggregate is not a mean.
None marks a sample the metric could not score; it is counted and left out of the mean.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from statistics import fmean, pstdev
from typing import Any

from core.errors import InvalidInput
from workers.benchmarks import green, lexical
from workers.benchmarks.lexical import MetricResult

Metric = Callable[[Sequence[str], Sequence[str]], MetricResult | Sequence[float | None]]


def _as_result(value: MetricResult | Sequence[float | None]) -> MetricResult:
    if isinstance(value, MetricResult):
        return value
    values = [None if v is None else float(v) for v in value]
    scored = [v for v in values if v is not None]
    return MetricResult(fmean(scored) if scored else 0.0, values)


def _summary(result: MetricResult, n: int, name: str) -> dict[str, Any]:
    if len(result.per_sample) != n:
        raise InvalidInput(f"metric {name!r} gave {len(result.per_sample)} values for {n} samples")
    scored = [v for v in result.per_sample if v is not None]
    return {
        "aggregate": result.aggregate,
        "mean": fmean(scored) if scored else 0.0,
        "std": pstdev(scored) if scored else 0.0,
        "n_scored": len(scored),
        "n_missing": n - len(scored),
        "per_sample": list(result.per_sample),
        **({"details": result.details} if result.details else {}),
    }


def evaluate(
    refs: Sequence[str],
    hyps: Sequence[str],
    metrics: Mapping[str, Metric],
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every metric on every (reference, hypothesis) pair; per group too when `groups` (one label
    per sample) is given. JSON-able."""
    if len(refs) != len(hyps):
        raise InvalidInput(f"{len(refs)} references but {len(hyps)} hypotheses; give one each")
    if groups is not None and len(groups) != len(refs):
        raise InvalidInput(f"{len(groups)} group labels for {len(refs)} samples; give one each")
    n = len(refs)
    results = {name: _as_result(metric(refs, hyps)) for name, metric in metrics.items()}
    out: dict[str, Any] = {
        "n": n,
        "metrics": {name: _summary(r, n, name) for name, r in results.items()},
    }
    if groups is not None:
        members: dict[str, list[int]] = defaultdict(list)
        for i, label in enumerate(groups):
            members[str(label)].append(i)
        per_group: dict[str, dict[str, Any]] = {}
        for label in sorted(members):
            idx = members[label]
            per_group[label] = {"n": len(idx)}
            for name, result in results.items():
                if result.corpus:
                    sub = _as_result(metrics[name]([refs[i] for i in idx], [hyps[i] for i in idx]))
                    per_group[label][name] = sub.aggregate
                else:
                    scored = [result.per_sample[i] for i in idx]
                    values = [v for v in scored if v is not None]
                    per_group[label][name] = fmean(values) if values else None
        out["per_group"] = per_group
    return out


def green_metric(answers: Sequence[str], cleaned: bool = False) -> Metric:
    """A metric over already generated GREEN judge answers (one per sample, in order)."""

    def metric(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
        if len(answers) != len(refs):
            raise InvalidInput(f"{len(answers)} GREEN answers for {len(refs)} samples")
        summary = green.summarize(answers, cleaned=cleaned)
        details = {"green_std": summary["green_std"], "counts": summary["counts"]}
        return MetricResult(summary["green"], list(summary["per_sample"]), details)

    return metric


def lexical_metrics(bertscore_model: str | None = None, **bertscore: Any) -> dict[str, Metric]:
    """BLEU (RadEval's, order 4), sacrebleu BLEU, ROUGE-1/2/L; BERTScore only when a model folder
    is given (see `workers.benchmarks.bertscore`)."""
    metrics: dict[str, Metric] = {
        "bleu": lexical.radeval_bleu,
        "sacrebleu": lexical.sacre_bleu,
        "rouge1": lambda r, h: lexical.rouge(r, h, ("rouge1",))["rouge1"],
        "rouge2": lambda r, h: lexical.rouge(r, h, ("rouge2",))["rouge2"],
        "rougeL": lexical.rouge_l,
    }
    if bertscore_model is not None:
        from workers.benchmarks.bertscore import bertscore_metric

        metrics["bertscore"] = bertscore_metric(bertscore_model, **bertscore)
    return metrics
