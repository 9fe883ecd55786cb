"""The QC report: pass rates and mean label F1 per finding and subgroup, with intervals.

The unit is one checked image (every generation attempt of a campaign counts, so a pass rate is
the generator's rate of producing a passing image for that subgroup). Pass rates carry Wilson
score intervals; mean label F1 a percentile bootstrap over images (seeded: the same rows give
the same report). A warning is raised for each subgroup whose pass rate is below the pooled
rate of the other values of its dimension by more than `subgroup_margin`. Everything here is
computed from the per-image rows alone, so `qc_images.jsonl` reproduces `qc.json`.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

DIMENSIONS = ("finding", "sex", "age_bin", "race")
CHECK_NAMES = ("findings", "sex", "race", "age")


def wilson(passed: int, n: int, level: float) -> list[float] | None:
    """Wilson score interval of a proportion (None without observations)."""
    if n == 0:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == n else min(1.0, centre + half)
    return [low, high]


def bootstrap_mean(values: list[float], level: float, resamples: int) -> list[float] | None:
    """Percentile bootstrap interval of a mean (seeded by the sample size: reproducible)."""
    if not values:
        return None
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng([len(data), 17])
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def label(value: Any) -> str:
    return "unspecified" if value is None else str(value)


def _mean(rows: list[dict[str, Any]], key: str) -> tuple[float | None, list[float]]:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return (float(np.mean(values)) if values else None), values


def group_stats(rows: list[dict[str, Any]], level: float, resamples: int) -> dict[str, Any]:
    """Counts, pass rates and label scores of one set of checked images."""
    n = len(rows)
    passed = sum(bool(r["qc_passed"]) for r in rows)
    first = [r for r in rows if int(r.get("qc_attempt", 0)) == 0]
    first_passed = sum(bool(r["qc_passed"]) for r in first)
    checks = {}
    for check in CHECK_NAMES:
        judged = [r[f"qc_{check}_ok"] for r in rows if r.get(f"qc_{check}_ok") is not None]
        if judged:
            ok = sum(bool(v) for v in judged)
            checks[check] = {"n": len(judged), "passed": ok, "rate": ok / len(judged),
                             "ci": wilson(ok, len(judged), level)}  # fmt: skip
    f1, f1_values = _mean(rows, "qc_label_f1")
    precision, _ = _mean(rows, "qc_label_precision")
    recall, _ = _mean(rows, "qc_label_recall")
    return {
        "n": n,
        "passed": passed,
        "pass_rate": passed / n if n else None,
        "pass_rate_ci": wilson(passed, n, level),
        "first_attempts": len(first),
        "first_attempt_pass_rate": first_passed / len(first) if first else None,
        "accepted": sum(bool(r.get("qc_accepted", r["qc_passed"])) for r in rows),
        "errors": sum(r.get("qc_error") is not None for r in rows),
        "checks": checks,
        "label_f1": {
            "n": len(f1_values),
            "mean": f1,
            "ci": bootstrap_mean(f1_values, level, resamples),
        },
        "label_precision": precision,
        "label_recall": recall,
    }


def subgroup_warnings(
    rows: list[dict[str, Any]], margin: float, min_size: int = 1
) -> list[dict[str, Any]]:
    """Subgroups (of `min_size` images or more) whose pass rate is below the rest of their
    dimension's by more than `margin`."""
    out = []
    for dim in DIMENSIONS:
        values = sorted({label(r.get(dim)) for r in rows})
        if len(values) < 2:
            continue
        for value in values:
            inside = [bool(r["qc_passed"]) for r in rows if label(r.get(dim)) == value]
            others = [bool(r["qc_passed"]) for r in rows if label(r.get(dim)) != value]
            if len(inside) < min_size:
                continue
            rate, rest = sum(inside) / len(inside), sum(others) / len(others)
            if rest - rate > margin:
                out.append({
                    "dimension": dim, "value": value, "pass_rate": rate, "others": rest,
                    "gap": rest - rate, "n": len(inside),
                    "message": f"{dim}={value}: QC pass rate {rate:.2f} (n={len(inside)}) is "
                    f"{rest - rate:.2f} below the other {dim} values' {rest:.2f} "
                    f"(margin {margin:.2f})",
                })  # fmt: skip
    return out


def build(rows: list[dict[str, Any]], qc: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """qc.json: overall and per-subgroup statistics, warnings, thresholds and models."""
    level, resamples = float(qc["confidence"]), int(qc["bootstrap"])
    by = {}
    for dim in DIMENSIONS:
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(label(row.get(dim)), []).append(row)
        by[dim] = {v: group_stats(g, level, resamples) for v, g in sorted(groups.items())}
    warnings = subgroup_warnings(rows, float(qc["subgroup_margin"]), int(qc["min_group_size"]))
    return {
        "unit": "checked image (each generation attempt)",
        "overall": group_stats(rows, level, resamples),
        "by": by,
        "warnings": warnings,
        "thresholds": {"max_age_delta": qc["max_age_delta"], "min_label_f1": qc["min_label_f1"],
                       "sex": "must match", "race": "must match (Asian, Black, White only)"},
        "subgroup_margin": qc["subgroup_margin"],
        "min_group_size": qc["min_group_size"],
        "confidence": level,
        "intervals": {"pass_rate": "Wilson score", "label_f1": f"percentile bootstrap, "
                      f"{resamples} resamples"},
        **extra,
    }  # fmt: skip


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(report: dict[str, Any], title: str) -> str:
    """qc.md: the same numbers as qc.json, as tables."""
    overall = report["overall"]
    lines = [
        f"# {title}", "",
        "MACHINE-GENERATED by the platform's own models (SRRG, SRR-BERT, demographic "
        "classifiers): the checkers make errors too; read docs/synthetic-qc.md.", "",
        f"Images checked: {overall['n']}; passed: {overall['passed']} "
        f"(rate {_pct(overall['pass_rate'])}, {report['confidence']:.0%} CI "
        f"{_ci(overall['pass_rate_ci'])}); mean label F1 {_pct(overall['label_f1']['mean'])} "
        f"{_ci(overall['label_f1']['ci'])}.", "",
    ]  # fmt: skip
    if report.get("skipped_checks"):
        lines += [f"Skipped checks: {report['skipped_checks']}", ""]
    for warning in report["warnings"]:
        lines.append(f"- WARNING: {warning['message']}")
    checks = [c for c in CHECK_NAMES if c in overall["checks"]]
    header = ["value", "n", "pass rate", "CI", *(f"{c} rate" for c in checks), "mean label F1",
              "CI"]  # fmt: skip
    for dim, groups in report["by"].items():
        lines += ["", f"## By {dim}", "", _row(header), _row(["---"] * len(header))]
        for value, g in groups.items():
            rates = [_pct(g["checks"].get(c, {}).get("rate")) for c in checks]
            lines.append(
                _row(
                    [
                        value,
                        str(g["n"]),
                        _pct(g["pass_rate"]),
                        _ci(g["pass_rate_ci"]),
                        *rates,
                        _pct(g["label_f1"]["mean"]),
                        _ci(g["label_f1"]["ci"]),
                    ]
                )
            )
    return "\n".join(lines) + "\n"
