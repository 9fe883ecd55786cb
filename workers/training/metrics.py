"""Test-split metrics from saved predictions (numpy + scikit-learn; no torch).

- AUROC per label: `sklearn.metrics.roc_auc_score`; the mean over labels with both classes.
- Accuracy per label at a per-label threshold chosen on the validation split by Youden's J
  (max TPR - FPR of `roc_curve`; 0.5 when a label has one class there), or a fixed threshold.
- Underdiagnosis (Seyyed-Kalantari et al., Nat. Med. 2021): the false-positive rate of
  "No Finding", i.e. among test images with any finding, the share predicted "No Finding"
  (p >= its threshold). Without a "No Finding" label: the share with no label predicted.
  Per subgroup value; the gap = max - min over subgroups with >= `min_group_size` sick images.
  Each subgroup also gets its mean AUROC and accuracy (point estimates).
- 95% CIs: percentile bootstrap over test images (seeded, `bootstrap` resamples).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from workers.training.params import EvalOptions

UNKNOWN = "unknown"


def _both(y: np.ndarray) -> bool:
    return bool(len(y)) and 0 < y.sum() < len(y)


def youden(y: np.ndarray, p: np.ndarray, fallback: float = 0.5) -> float:
    keep = ~np.isnan(y)
    y, p = y[keep], p[keep]
    if not _both(y):
        return fallback
    fpr, tpr, thr = roc_curve(y, p)
    j = tpr - fpr
    j[~np.isfinite(thr)] = -np.inf  # the first point of roc_curve is (0, 0) at +inf
    return float(thr[int(np.argmax(j))])


def thresholds(y_val: np.ndarray, p_val: np.ndarray, options: EvalOptions) -> np.ndarray:
    if options.threshold == "fixed":
        return np.full(y_val.shape[1], options.fixed_threshold)
    return np.array([youden(y_val[:, j], p_val[:, j]) for j in range(y_val.shape[1])])


def fast_auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney AUROC with average ranks for ties (= roc_auc_score), NaN if one class."""
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def age_bin(age: float | None, bins: list[tuple[int, int]]) -> str:
    if age is None:
        return UNKNOWN
    for lo, hi in bins:
        if lo <= age < hi + 1:
            return f"{lo}-{hi}"
    return UNKNOWN


def group_values(demo: dict[str, list[Any]], attribute: str) -> list[str]:
    """Per-image value of an attribute; `a+b` joins values (an intersectional subgroup)."""
    parts = attribute.split("+")
    return ["|".join(str(demo[p][i]) for p in parts) for i in range(len(demo[parts[0]]))]


def underdiagnosed(
    y: np.ndarray, p: np.ndarray, thr: np.ndarray, names: list[str], no_finding: str
) -> tuple[np.ndarray, np.ndarray]:
    """(sick, called healthy) per image."""
    if no_finding in names:
        j = names.index(no_finding)
        return np.asarray(y[:, j] == 0), np.asarray(p[:, j] >= thr[j])
    sick = np.asarray(np.nansum(y, axis=1) > 0)
    return sick, np.asarray((p < thr[None, :]).all(axis=1))


def _rate(sick: np.ndarray, healthy: np.ndarray) -> float:
    n = int(sick.sum())
    return float((sick & healthy).sum() / n) if n else math.nan


def _ci(values: list[float], level: float) -> list[float] | None:
    v = np.array([x for x in values if not math.isnan(x)])
    if len(v) == 0:
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]


def _clean(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def point_metrics(
    y: np.ndarray, p: np.ndarray, thr: np.ndarray, names: list[str], auroc: Any = roc_auc_score
) -> dict[str, Any]:
    """AUROC, accuracy, sensitivity, specificity per label and their means."""
    per: dict[str, Any] = {}
    for j, name in enumerate(names):
        keep = ~np.isnan(y[:, j])
        yj, pj = y[keep, j], p[keep, j]
        called = pj >= thr[j]
        pos, neg = yj == 1, yj == 0
        per[name] = {
            "auroc": float(auroc(yj, pj)) if _both(yj) else math.nan,
            "accuracy": float((called == pos).mean()) if len(yj) else math.nan,
            "sensitivity": float(called[pos].mean()) if pos.any() else math.nan,
            "specificity": float((~called[neg]).mean()) if neg.any() else math.nan,
            "threshold": float(thr[j]),
            "positives": int(pos.sum()),
            "n": len(yj),
        }
    aurocs = [m["auroc"] for m in per.values() if not math.isnan(m["auroc"])]
    accs = [m["accuracy"] for m in per.values() if not math.isnan(m["accuracy"])]
    return {
        "labels": per,
        "mean_auroc": float(np.mean(aurocs)) if aurocs else math.nan,
        "mean_accuracy": float(np.mean(accs)) if accs else math.nan,
    }


def fairness(
    sick: np.ndarray, healthy: np.ndarray, by: dict[str, np.ndarray], options: EvalOptions
) -> dict[str, Any]:
    """Underdiagnosis rate per subgroup value and the max - min gap per attribute."""
    out: dict[str, Any] = {}
    for attribute, values in by.items():
        groups = {}
        for value in sorted(set(values.tolist())):
            mask = values == value
            groups[value] = {
                "n": int(mask.sum()),
                "n_sick": int((sick & mask).sum()),
                "rate": _rate(sick[mask], healthy[mask]),
            }
        included = {
            v: g["rate"]
            for v, g in groups.items()
            if g["n_sick"] >= options.min_group_size and UNKNOWN not in v.split("|")
        }
        gap = max(included.values()) - min(included.values()) if len(included) >= 2 else math.nan
        out[attribute] = {
            "groups": groups,
            "gap": gap,
            "max_group": max(included, key=included.__getitem__) if included else None,
            "min_group": min(included, key=included.__getitem__) if included else None,
            "included": sorted(included),
        }
    return out


def evaluate(
    y_val: np.ndarray,
    p_val: np.ndarray,
    y_test: np.ndarray,
    p_test: np.ndarray,
    demo: dict[str, list[Any]],
    names: list[str],
    options: EvalOptions,
    seed: int,
) -> dict[str, Any]:
    """Every test metric with its bootstrap CI; `demo` holds sex/age_bin/race per test image."""
    thr = thresholds(y_val, p_val, options)
    point = point_metrics(y_test, p_test, thr, names)
    sick, healthy = underdiagnosed(y_test, p_test, thr, names, options.no_finding)
    by = {a: np.array(group_values(demo, a), dtype=object) for a in options.subgroups}
    fair = fairness(sick, healthy, by, options)
    boot = _bootstrap(y_test, p_test, thr, names, by, options, seed)
    for name, m in point["labels"].items():
        m["auroc_ci"] = _ci(boot[f"auroc:{name}"], options.ci)
        m["accuracy_ci"] = _ci(boot[f"accuracy:{name}"], options.ci)
    for attribute, f in fair.items():
        f["gap_ci"] = _ci(boot[f"gap:{attribute}"], options.ci)
        for value, g in f["groups"].items():
            g["rate_ci"] = _ci(boot[f"rate:{attribute}:{value}"], options.ci)
            mask = by[attribute] == value
            sub = point_metrics(y_test[mask], p_test[mask], thr, names)
            g["mean_auroc"], g["mean_accuracy"] = sub["mean_auroc"], sub["mean_accuracy"]
    result = {
        "n_val": len(y_val),
        "n_test": len(y_test),
        "threshold_rule": options.threshold if options.threshold == "fixed" else "youden-on-val",
        **point,
        "mean_auroc_ci": _ci(boot["mean_auroc"], options.ci),
        "mean_accuracy_ci": _ci(boot["mean_accuracy"], options.ci),
        "underdiagnosis": {"overall": _rate(sick, healthy), "by": fair},
        "bootstrap": {
            "resamples": options.bootstrap,
            "seed": seed,
            "level": options.ci,
            "unit": "test image",
            "method": "percentile",
        },
    }
    return to_json(result)


def _bootstrap(
    y: np.ndarray,
    p: np.ndarray,
    thr: np.ndarray,
    names: list[str],
    by: dict[str, np.ndarray],
    options: EvalOptions,
    seed: int,
) -> dict[str, list[float]]:
    """Metric values over `bootstrap` resamples of the test images (missing key: [])."""
    out: defaultdict[str, list[float]] = defaultdict(list)
    rng = np.random.default_rng([seed, 7])
    n = len(y)
    for _ in range(options.bootstrap):
        pick = rng.integers(0, n, size=n)
        yb, pb = y[pick], p[pick]
        point = point_metrics(yb, pb, thr, names, auroc=fast_auroc)
        out["mean_auroc"].append(point["mean_auroc"])
        out["mean_accuracy"].append(point["mean_accuracy"])
        for name, m in point["labels"].items():
            out[f"auroc:{name}"].append(m["auroc"])
            out[f"accuracy:{name}"].append(m["accuracy"])
        sick, healthy = underdiagnosed(yb, pb, thr, names, options.no_finding)
        sub = {a: v[pick] for a, v in by.items()}
        for attribute, f in fairness(sick, healthy, sub, options).items():
            out[f"gap:{attribute}"].append(f["gap"])
            for value, g in f["groups"].items():
                out[f"rate:{attribute}:{value}"].append(g["rate"])
    return out


def to_json(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively (metrics.json is strict JSON)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return _clean(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value
