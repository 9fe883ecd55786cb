"""Classification metrics on plain lists: confusion matrix, per-class and averaged F1, Cohen's
kappa. Same conventions as scikit-learn (`f1_score`, `cohen_kappa_score`): labels default to the
sorted union of truth and prediction, a ratio with a zero denominator is 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def labels_of(truth: Sequence[Hashable], pred: Sequence[Hashable]) -> list[Any]:
    """Sorted union of the labels seen in truth and prediction (scikit-learn's default)."""
    return sorted(set(truth) | set(pred))


def confusion(
    truth: Sequence[Hashable], pred: Sequence[Hashable], labels: Sequence[Hashable]
) -> list[list[int]]:
    """`matrix[i][j]` = how many samples of true label `labels[i]` were predicted `labels[j]`."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, pred, strict=True):
        if t in index and p in index:
            matrix[index[t]][index[p]] += 1
    return matrix


def per_class(matrix: list[list[int]], labels: Sequence[Hashable]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each label, keyed by `str(label)`."""
    out = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision, recall = _ratio(tp, predicted), _ratio(tp, support)
        out[str(label)] = {
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "support": support,
        }
    return out


def f1_report(
    truth: Sequence[Hashable], pred: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> dict[str, Any]:
    """Macro and support-weighted F1, accuracy and the per-class table."""
    labels = list(labels) if labels is not None else labels_of(truth, pred)
    matrix = confusion(truth, pred, labels)
    classes = per_class(matrix, labels)
    total = sum(c["support"] for c in classes.values())
    n = len(truth)
    return {
        "labels": [str(label) for label in labels],
        "macro_f1": _ratio(sum(c["f1"] for c in classes.values()), len(classes)),
        "weighted_f1": _ratio(sum(c["f1"] * c["support"] for c in classes.values()), total),
        "accuracy": _ratio(sum(1 for t, p in zip(truth, pred, strict=True) if t == p), n),
        "per_class": classes,
        "confusion": matrix,
    }


def binary_report(truth: Sequence[bool], pred: Sequence[bool]) -> dict[str, float]:
    """Counts, precision/recall/F1 of the positive class, F1 of the negative class, their macro
    mean, specificity and accuracy."""
    tp = sum(1 for t, p in zip(truth, pred, strict=True) if t and p)
    fp = sum(1 for t, p in zip(truth, pred, strict=True) if not t and p)
    fn = sum(1 for t, p in zip(truth, pred, strict=True) if t and not p)
    tn = len(truth) - tp - fp - fn
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    neg_precision, neg_recall = _ratio(tn, tn + fn), _ratio(tn, tn + fp)
    neg_f1 = _ratio(2 * neg_precision * neg_recall, neg_precision + neg_recall)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "negative_f1": neg_f1,
        "macro_f1": (f1 + neg_f1) / 2,
        "specificity": neg_recall,
        "accuracy": _ratio(tp + tn, len(truth)),
    }


def cohen_kappa(
    truth: Sequence[Hashable],
    pred: Sequence[Hashable],
    labels: Sequence[Hashable] | None = None,
    weights: str | None = None,
) -> float | None:
    """Cohen's kappa; `weights` None, "linear" or "quadratic" (distance between label indices).
    None where it is undefined (one label only: chance agreement is already perfect)."""
    if weights not in (None, "linear", "quadratic"):
        raise ValueError("weights must be None, 'linear' or 'quadratic'")
    labels = list(labels) if labels is not None else labels_of(truth, pred)
    matrix = confusion(truth, pred, labels)
    k, n = len(labels), sum(map(sum, matrix))
    if n == 0:
        return None
    rows = [sum(r) for r in matrix]
    cols = [sum(matrix[i][j] for i in range(k)) for j in range(k)]

    def weight(i: int, j: int) -> float:
        if weights is None:
            return 0.0 if i == j else 1.0
        return abs(i - j) if weights == "linear" else (i - j) ** 2

    observed = sum(weight(i, j) * matrix[i][j] for i in range(k) for j in range(k))
    expected = sum(weight(i, j) * rows[i] * cols[j] / n for i in range(k) for j in range(k))
    return 1.0 - observed / expected if expected else None
