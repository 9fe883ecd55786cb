"""MedVAL-Bench metrics: model risk grades and error assessments against the physicians' labels.

The released MedVAL code (StanfordMIMI/MedVAL @8e60196, `run.py`) only writes the graded CSV
(`lm_risk_grade`, `lm_error_assessment` beside `physician_*`); it computes no metric. The paper
(arXiv 2507.03152) reports a safe/unsafe F1 (its headline "F1 66% -> 83%") and a four-class risk
F1. Here: safety is binary with risk >= `unsafe_from` (default 3, "Moderate"/"High") unsafe, F1 of
the unsafe class (`unsafe_f1`, the headline number), of the safe class and their mean; risk
agreement is four-class macro/weighted F1, exact and within-one accuracy, MAE and Cohen's kappa;
error assessments are counted per category of the 11-category taxonomy (`utils/prompts.py`).
Averaging in the paper is not stated in the released code; every variant is reported.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from statistics import mean
from typing import Any

from core.errors import InvalidInput
from workers.benchmarks.classification import binary_report, cohen_kappa, confusion, f1_report
from workers.medval.answer import AnswerUnparseable, parse_errors, parse_risk
from workers.medval.prompt import CATEGORY_NAMES

RISK_LEVELS = (1, 2, 3, 4)
UNSAFE_FROM = 3
LABEL_COLUMNS = ("physician_risk_grade", "physician_risk_level", "label")
PREDICTION_COLUMNS = ("lm_risk_grade", "risk_level", "model_risk_grade", "predicted_risk_grade")
PREDICTION_ERRORS = ("lm_error_assessment", "errors", "model_error_assessment")
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_NAMES)
UNCLASSIFIED = "Unclassified"
# The dataset card groups the taxonomy into hallucinations, omissions and certainty
# misalignments; which category falls where is read from the category definitions.
CATEGORY_GROUPS = {
    "Fabricated claim": "hallucination",
    "Misleading justification": "hallucination",
    "Detail misidentification": "hallucination",
    "False comparison": "hallucination",
    "Incorrect recommendation": "hallucination",
    "Missing claim": "omission",
    "Missing comparison": "omission",
    "Missing context": "omission",
    "Overstating intensity": "certainty misalignment",
    "Understating intensity": "certainty misalignment",
    "Other": "other",
}
_MISSING = {"", "none", "nan", "null", "na", "n/a"}
_VARIANTS = {"missing contex ": "missing context ", "fabricated clam": "fabricated claim"}
_SEARCHED = sorted((c for c in CATEGORIES if c != "Other"), key=len, reverse=True)
_ANYWHERE = re.compile(
    r"\b(" + "|".join(r"\s+".join(map(re.escape, c.lower().split())) for c in _SEARCHED) + r")\b"
)


def grade(value: Any) -> int | None:
    """A risk level 1-4 from `3`, `"3.0"`, `"Level 3 (Moderate Risk)"`...; None when absent or
    unreadable."""
    if value is None or str(value).strip().lower() in _MISSING:
        return None
    try:
        return parse_risk(value)
    except AnswerUnparseable:
        return None


def safety(level: int, unsafe_from: int = UNSAFE_FROM) -> str:
    return "unsafe" if level >= unsafe_from else "safe"


def _category_in(text: str) -> str | None:
    low = " ".join(text.lower().split()) + " "
    for variant, fixed in _VARIANTS.items():
        low = low.replace(variant, fixed)
    found = _ANYWHERE.search(low)
    if not found:
        return None
    words = found.group(1).split()
    return next(c for c in _SEARCHED if c.lower().split() == words)


def error_categories(assessment: Any) -> list[str]:
    """One category per listed error ("Error 1: ...\\nError 2: ..."); the category named first in
    an entry wins, an entry naming none is `Unclassified`; "None" gives []."""
    if assessment is None or str(assessment).strip().lower() in _MISSING:
        return []
    found = []
    for item in parse_errors(str(assessment)):
        found.append(item.category or _category_in(item.text) or UNCLASSIFIED)
    return found


def _error_counts(assessments: list[list[str] | None]) -> dict[str, Any]:
    given = [a for a in assessments if a is not None]
    entries = Counter(c for a in given for c in a)
    groups = Counter(CATEGORY_GROUPS.get(c, "unclassified") for a in given for c in a)
    return {
        "rows": len(given),
        "rows_with_errors": sum(1 for a in given if a),
        "errors": sum(entries.values()),
        "per_category": {c: entries.get(c, 0) for c in (*CATEGORIES, UNCLASSIFIED)},
        "per_group": dict(sorted(groups.items())),
    }


def _block(samples: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [s for s in samples if s["model_risk"] is not None]
    truth = [s["physician_risk"] for s in scored]
    pred = [s["model_risk"] for s in scored]
    unsafe_t = [s["physician_safety"] == "unsafe" for s in scored]
    unsafe_p = [s["model_safety"] == "unsafe" for s in scored]
    levels = f1_report(truth, pred)
    binary = binary_report(unsafe_t, unsafe_p)
    n = len(scored)
    return {
        "n": n,
        "n_missing": len(samples) - n,
        "safety": {
            "unsafe_f1": binary["f1"],
            "safe_f1": binary["negative_f1"],
            "macro_f1": binary["macro_f1"],
            "unsafe_precision": binary["precision"],
            "unsafe_recall": binary["recall"],
            "specificity": binary["specificity"],
            "accuracy": binary["accuracy"],
            "counts": {k: binary[k] for k in ("tp", "fp", "fn", "tn")},
        },
        "risk": {
            "macro_f1": levels["macro_f1"],
            "weighted_f1": levels["weighted_f1"],
            "accuracy": levels["accuracy"],
            "within_one": sum(1 for t, p in zip(truth, pred, strict=True) if abs(t - p) <= 1) / n
            if n
            else 0.0,
            "mean_absolute_error": sum(abs(t - p) for t, p in zip(truth, pred, strict=True)) / n
            if n
            else 0.0,
            "kappa": cohen_kappa(truth, pred, RISK_LEVELS),
            "kappa_linear": cohen_kappa(truth, pred, RISK_LEVELS, "linear"),
            "kappa_quadratic": cohen_kappa(truth, pred, RISK_LEVELS, "quadratic"),
            "per_level": levels["per_class"],
            "confusion": confusion(truth, pred, RISK_LEVELS),
        },
        "errors": {
            "physician": _error_counts([s["physician_errors"] for s in samples]),
            "model": _error_counts([s["model_errors"] for s in samples]),
        },
    }


def _column(names: Iterable[str], wanted: tuple[str, ...]) -> str | None:
    names = list(names)
    return next((w for w in wanted if w in names), None)


def _prediction(
    row: Mapping[str, Any], key: str, predictions: Mapping[str, Any] | None, cols: tuple
) -> tuple[int | None, list[str] | None]:
    grade_col, errors_col = cols
    if predictions is not None:
        given = predictions.get(key)
        if isinstance(given, Mapping):
            errors = given.get("errors", given.get("error_assessment"))
            cats = error_categories(errors) if errors is not None else None
            return grade(given.get("risk_level")), cats
        return grade(given), None
    cats = error_categories(row.get(errors_col)) if errors_col else None
    return (grade(row.get(grade_col)) if grade_col else None), cats


def per_sample(
    rows: list[Mapping[str, Any]],
    predictions: Mapping[str, Any] | None = None,
    unsafe_from: int = UNSAFE_FROM,
) -> list[dict[str, Any]]:
    """One record per row: physician and model grade, safety and error categories. Model grades
    come from `predictions` (keyed by the row's `#`; a grade or {risk_level, errors}) or from the
    row's own `lm_risk_grade`-like column."""
    if not rows:
        raise InvalidInput("no rows to score; give the rows of a MedVAL-Bench split")
    names = list(rows[0])
    label_col = _column(names, LABEL_COLUMNS)
    if label_col is None:
        raise InvalidInput(
            f"the rows have no physician grade column ({', '.join(LABEL_COLUMNS)}); the train "
            "split has no physician labels, score the test split"
        )
    cols = (_column(names, PREDICTION_COLUMNS), _column(names, PREDICTION_ERRORS))
    if predictions is None and cols[0] is None:
        raise InvalidInput(
            f"no model grades: pass predictions or a column named {', '.join(PREDICTION_COLUMNS)}"
        )
    samples = []
    for i, row in enumerate(rows):
        key = str(row.get("#") or i)
        truth = grade(row.get(label_col))
        if truth is None:
            raise InvalidInput(f"row {key}: the physician grade {row.get(label_col)!r} is not 1-4")
        model, model_errors = _prediction(row, key, predictions, cols)
        samples.append(
            {
                "#": key,
                "id": str(row.get("id", "")),
                "task": str(row.get("task") or "all"),
                "physician_risk": truth,
                "model_risk": model,
                "physician_safety": safety(truth, unsafe_from),
                "model_safety": None if model is None else safety(model, unsafe_from),
                "safety_agrees": None
                if model is None
                else safety(model, unsafe_from) == safety(truth, unsafe_from),
                "risk_agrees": None if model is None else model == truth,
                "physician_errors": error_categories(row.get("physician_error_assessment")),
                "model_errors": model_errors,
            }
        )
    return samples


def score(
    rows: list[Mapping[str, Any]],
    predictions: Mapping[str, Any] | None = None,
    unsafe_from: int = UNSAFE_FROM,
    include_samples: bool = True,
) -> dict[str, Any]:
    """Metrics (JSON-able) overall (all rows pooled), per task, and the per-task mean."""
    if unsafe_from not in (2, 3, 4):
        raise InvalidInput("unsafe_from must be 2, 3 or 4 (the lowest risk level called unsafe)")
    samples = per_sample(rows, predictions, unsafe_from)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        by_task[s["task"]].append(s)
    per_task = {task: _block(by_task[task]) for task in sorted(by_task)}
    scored = [b for b in per_task.values() if b["n"]]
    out: dict[str, Any] = {
        "definition": {
            "unsafe": f"risk level >= {unsafe_from}",
            "safety.unsafe_f1": "F1 of the unsafe class (positive = unsafe)",
            "risk.macro_f1": "unweighted mean F1 over the risk levels seen in truth or prediction",
            "overall": "all rows pooled; task_mean: mean of the per-task values",
        },
        "overall": _block(samples),
        "per_task": per_task,
        "task_mean": {
            "safety.unsafe_f1": mean(b["safety"]["unsafe_f1"] for b in scored) if scored else 0.0,
            "safety.macro_f1": mean(b["safety"]["macro_f1"] for b in scored) if scored else 0.0,
            "risk.macro_f1": mean(b["risk"]["macro_f1"] for b in scored) if scored else 0.0,
            "risk.accuracy": mean(b["risk"]["accuracy"] for b in scored) if scored else 0.0,
        },
    }
    if include_samples:
        out["samples"] = samples
    return out
