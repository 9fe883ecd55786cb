"""F1-SRR-BERT, computed as RadEval 2.2.1's `srrbert` metric does: each report is split into
sentences, every sentence is labelled, a report's labels are the OR of its sentences', and
references and hypotheses are compared with scikit-learn's weighted-average precision / recall /
F1 (zero_division=0) plus RadEval's per-sample scores. Torch-free: the sentence labeller is any
callable, so the metric runs (and is tested) without a model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInput
from workers.srrg.sentences import split_sentences

# sentences -> int array [len(sentences), n_labels] of 0/1
Labeller = Callable[[list[str]], np.ndarray]
SAMPLE_EPS = 1e-8  # RadEval's multilabel_prf_per_sample default


@dataclass
class F1Result:
    """Aggregate (weighted) and per-sample scores, plus per-label rows and the merged labels."""

    precision: float
    recall: float
    f1: float
    sample_precision: list[float]
    sample_recall: list[float]
    sample_f1: list[float]
    per_label: dict[str, dict[str, float]]
    ref_labels: np.ndarray
    hyp_labels: np.ndarray


def merge_reports(
    reports: Sequence[str], labeller: Labeller, n_labels: int
) -> tuple[np.ndarray, list[list[str]]]:
    """Per-report OR of sentence labels; all sentences go to the labeller in one call."""
    parsed = [split_sentences(report) for report in reports]
    flat = [sentence for sentences in parsed for sentence in sentences]
    labels = np.asarray(labeller(flat), dtype=int).reshape(len(flat), n_labels)
    merged, start = np.zeros((len(reports), n_labels), dtype=int), 0
    for row, sentences in enumerate(parsed):
        merged[row] = np.any(labels[start : start + len(sentences)], axis=0)
        start += len(sentences)
    return merged, parsed


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator as float64, 0 where the denominator is 0 (zero_division=0)."""
    denominator = denominator.astype(np.float64)
    zero = denominator == 0
    result = numerator.astype(np.float64) / np.where(zero, 1.0, denominator)
    result[zero] = 0.0
    return result


def _weighted(values: np.ndarray, support: np.ndarray) -> float:
    """Support-weighted mean; the unweighted mean when no label has support (as sklearn)."""
    if support.sum() == 0:
        return float(np.average(values))
    return float(np.average(values, weights=support))


def label_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-label precision, recall, F1 and support of multi-label indicator arrays [N, K]."""
    tp = np.sum((y_true == 1) & (y_pred == 1), axis=0)
    pred_sum, true_sum = y_pred.sum(axis=0), y_true.sum(axis=0)
    return {
        "precision": _divide(tp, pred_sum),
        "recall": _divide(tp, true_sum),
        "f1": _divide(2.0 * tp, true_sum.astype(np.float64) + pred_sum),
        "support": true_sum,
    }


def per_sample(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, ...]:
    """RadEval's per-sample P/R/F1: mean over labels either side has; 1.0 if neither has any."""
    tp = ((y_true == 1) & (y_pred == 1)).astype(int)
    fp = ((y_true == 0) & (y_pred == 1)).astype(int)
    fn = ((y_true == 1) & (y_pred == 0)).astype(int)
    precision = tp / (tp + fp + SAMPLE_EPS)
    recall = tp / (tp + fn + SAMPLE_EPS)
    f1 = (2 * tp) / (2 * tp + fp + fn + SAMPLE_EPS)
    present = (y_true == 1) | (y_pred == 1)
    out = [np.ones(len(y_true)) for _ in range(3)]
    for row in range(len(y_true)):
        if present[row].any():
            for values, target in zip((precision, recall, f1), out, strict=True):
                target[row] = float(values[row][present[row]].mean())
    return out[0], out[1], out[2]


def score_merged(y_true: np.ndarray, y_pred: np.ndarray, label_names: Sequence[str]) -> F1Result:
    """F1-SRR-BERT from report labels already OR-merged ([N, K] 0/1 each): what a caller that
    got `report_labels` from a labels worker (the gateway, a job) computes."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape or y_true.ndim != 2 or y_true.shape[1] != len(label_names):
        raise InvalidInput(
            f"reference labels {list(y_true.shape)} and hypothesis labels {list(y_pred.shape)} "
            f"must both be [reports, {len(label_names)}]"
        )
    if not len(y_true):
        raise InvalidInput("send at least one reference/hypothesis pair")
    scores = label_scores(y_true, y_pred)
    support = scores["support"]
    sample_p, sample_r, sample_f = per_sample(y_true, y_pred)
    rows = {
        name: {
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    return F1Result(
        precision=_weighted(scores["precision"], support),
        recall=_weighted(scores["recall"], support),
        f1=_weighted(scores["f1"], support),
        sample_precision=[float(v) for v in sample_p],
        sample_recall=[float(v) for v in sample_r],
        sample_f1=[float(v) for v in sample_f],
        per_label=rows,
        ref_labels=y_true,
        hyp_labels=y_pred,
    )


def f1_srr_bert(
    refs: Sequence[str], hyps: Sequence[str], labeller: Labeller, label_names: Sequence[str]
) -> F1Result:
    """F1-SRR-BERT of `hyps` against `refs` (same length, one report each)."""
    if len(refs) != len(hyps):
        raise InvalidInput(
            f"got {len(refs)} references and {len(hyps)} hypotheses; send one of each per report"
        )
    if not refs:
        raise InvalidInput("send at least one reference/hypothesis pair")
    # ref0, hyp0, ref1, hyp1, ...: RadEval's sentence order, so batches (and padding) match
    joined = [report for pair in zip(refs, hyps, strict=True) for report in pair]
    merged, _ = merge_reports(joined, labeller, len(label_names))
    return score_merged(merged[0::2], merged[1::2], label_names)
