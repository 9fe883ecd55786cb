"""Metrics against scikit-learn and hand-computed values: thresholds, AUROC, underdiagnosis, CIs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from workers.training.metrics import (
    age_bin,
    evaluate,
    fast_auroc,
    group_values,
    point_metrics,
    underdiagnosed,
    youden,
)
from workers.training.params import EvalOptions


def test_youden_is_the_best_threshold_on_the_roc_curve() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.4).astype(float)
    p = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    t = youden(y, p)
    fpr, tpr, thr = roc_curve(y, p)
    best = max(range(1, len(thr)), key=lambda i: tpr[i] - fpr[i])
    assert t == thr[best]
    assert youden(np.ones(5), np.linspace(0, 1, 5)) == 0.5  # one class: fall back to 0.5


def test_fast_auroc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = (rng.random(60) < 0.3).astype(float)
        p = rng.integers(0, 6, size=60) / 5  # many ties
        if 0 < y.sum() < 60:
            assert fast_auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert math.isnan(fast_auroc(np.zeros(4), np.arange(4.0)))


def test_point_metrics_leave_out_nan_labels() -> None:
    y = np.array([[1, 0], [0, np.nan], [1, 1], [0, 0]], dtype=float)
    p = np.array([[0.9, 0.2], [0.1, 0.9], [0.8, 0.7], [0.6, 0.4]])
    m = point_metrics(y, p, np.array([0.5, 0.5]), ["a", "b"])
    assert m["labels"]["a"]["accuracy"] == 0.75 and m["labels"]["a"]["auroc"] == 1.0
    assert m["labels"]["b"]["n"] == 3 and m["labels"]["b"]["accuracy"] == 1.0
    assert m["mean_accuracy"] == pytest.approx(0.875)


def test_underdiagnosis_is_the_no_finding_fpr_per_subgroup() -> None:
    names = ["No Finding", "Edema"]
    # sick = No Finding 0; called healthy = p(No Finding) >= 0.5
    y = np.array([[0, 1], [0, 1], [0, 1], [1, 0], [0, 1], [0, 1], [0, 1], [1, 0]], dtype=float)
    p_nf = np.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.6, 0.1, 0.9])
    p = np.stack([p_nf, 1 - p_nf], axis=1)
    sick, _ = underdiagnosed(y, p, np.array([0.5, 0.5]), names, "No Finding")
    assert sick.tolist() == [True, True, True, False, True, True, True, False]
    demo = {"sex": ["female"] * 4 + ["male"] * 4, "race": ["A", "B"] * 4, "age_bin": ["40-59"] * 8}
    options = EvalOptions(
        threshold="fixed", bootstrap=200, min_group_size=1, subgroups=["sex", "sex+race"]
    )
    m = evaluate(y, p, y, p, demo, names, options, seed=3)
    by_sex = m["underdiagnosis"]["by"]["sex"]
    assert by_sex["groups"]["female"]["rate"] == pytest.approx(1 / 3)  # 1 of 3 sick called healthy
    assert by_sex["groups"]["male"]["rate"] == pytest.approx(2 / 3)
    assert by_sex["gap"] == pytest.approx(1 / 3)
    assert (by_sex["max_group"], by_sex["min_group"]) == ("male", "female")
    lo, hi = by_sex["gap_ci"]
    assert 0.0 <= lo <= hi <= 1.0
    assert set(m["underdiagnosis"]["by"]["sex+race"]["groups"]) == {
        "female|A",
        "female|B",
        "male|A",
        "male|B",
    }
    assert m["underdiagnosis"]["overall"] == pytest.approx(3 / 6)
    json.dumps(m, allow_nan=False)  # strict JSON


def test_without_no_finding_label_healthy_means_nothing_called() -> None:
    y = np.array([[1, 0], [0, 1], [0, 0]], dtype=float)
    p = np.array([[0.1, 0.2], [0.1, 0.9], [0.1, 0.1]])
    sick, healthy = underdiagnosed(y, p, np.array([0.5, 0.5]), ["A", "B"], "No Finding")
    assert sick.tolist() == [True, True, False] and healthy.tolist() == [True, False, True]


def test_small_and_unknown_subgroups_stay_out_of_the_gap() -> None:
    names = ["No Finding"]
    y = np.zeros((6, 1))
    p = np.array([[0.9], [0.9], [0.1], [0.1], [0.9], [0.1]])
    demo = {
        "sex": ["female", "female", "male", "male", "unknown", "other"],
        "race": ["A"] * 6,
        "age_bin": ["x"] * 6,
    }
    m = evaluate(
        y,
        p,
        y,
        p,
        demo,
        names,
        EvalOptions(threshold="fixed", bootstrap=0, min_group_size=2),
        seed=0,
    )
    sex = m["underdiagnosis"]["by"]["sex"]
    assert sex["included"] == ["female", "male"] and sex["gap"] == 1.0
    assert sex["gap_ci"] is None  # no resamples asked for


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random((80, 2)) < 0.5).astype(float)
    p = rng.random((80, 2))
    demo = {"sex": ["female", "male"] * 40, "race": ["A"] * 80, "age_bin": ["x"] * 80}
    options = EvalOptions(bootstrap=100, min_group_size=1)
    a = evaluate(y, p, y, p, demo, ["No Finding", "B"], options, seed=1)
    b = evaluate(y, p, y, p, demo, ["No Finding", "B"], options, seed=1)
    c = evaluate(y, p, y, p, demo, ["No Finding", "B"], options, seed=2)
    assert a == b and a["mean_auroc_ci"] != c["mean_auroc_ci"]
    lo, hi = a["mean_auroc_ci"]
    assert lo <= a["mean_auroc"] <= hi


def test_age_bins_and_intersections() -> None:
    bins = [(0, 39), (40, 59), (60, 120)]
    assert [age_bin(a, bins) for a in (None, 0, 39.5, 40, 59.99, 60, 121)] == [
        "unknown",
        "0-39",
        "0-39",
        "40-59",
        "40-59",
        "60-120",
        "unknown",
    ]
    assert group_values({"sex": ["f", "m"], "race": ["A", "B"]}, "sex+race") == ["f|A", "m|B"]
