"""Helpers of the synthetic-QC tests: planted classifiers and an independent recomputation of
the QC report from its per-image rows."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

from model_store.store import ModelStore, ResolvedModel
from model_store.tiny import build_tiny
from workers.runtime.families import load_manifests

# Everything a QC campaign calls, served by one worker in the tests.
QC_MODELS = ["cxr-age", "cxr-race", "cxr-sex", "srr-bert-leaves-with-statuses", "srrg-impression"]
ALWAYS_MALE = [8.0, -8.0]  # sex logits (male, female) with the weights zeroed
ALWAYS_WHITE = [0.0, 0.0, 8.0]  # race logits (Asian, Black, White)


def plant(model_dir: Path, name: str, head_bias: list[float]) -> ResolvedModel:
    """Write the tiny `name` into `model_dir` with a final layer that always predicts the same
    (weights zeroed, `head_bias` as its bias), as the worker will load it."""
    from workers.cxr_demographics.tiny import build

    store = ModelStore(model_dir, load_manifests())

    def biased(manifest: Any, target: Path, **kwargs: Any) -> None:
        tiny = {**manifest.tiny, "head_bias": head_bias}
        build(manifest.model_copy(update={"tiny": tiny}), target, **kwargs)

    return build_tiny(store, name, biased, force=True)


def wilson(k: int, n: int, level: float = 0.95) -> list[float]:
    """The Wilson score interval, written out again from its textbook form."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = k / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    spread = z / denominator * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return [0.0 if k == 0 else centre - spread, 1.0 if k == n else centre + spread]


def set_f1(asked: list[str], seen: list[str]) -> float:
    a, b = set(asked), set(seen)
    return 1.0 if not a and not b else 2 * len(a & b) / (len(a) + len(b))


def check_report(report: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Every count, rate, interval and mean of qc.json equals a recomputation from `rows`."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {"overall": {"all": rows}}
    for dim in ("finding", "sex", "age_bin", "race"):
        for row in rows:
            value = "unspecified" if row.get(dim) is None else str(row[dim])
            groups.setdefault(dim, {}).setdefault(value, []).append(row)
    assert set(report["by"]) == set(groups) - {"overall"}
    for dim, by_value in groups.items():
        for value, members in by_value.items():
            stats = report["overall"] if dim == "overall" else report["by"][dim][value]
            passed = sum(r["qc_passed"] for r in members)
            assert (stats["n"], stats["passed"]) == (len(members), passed), (dim, value)
            assert stats["pass_rate"] == passed / len(members)
            assert close(stats["pass_rate_ci"], wilson(passed, len(members))), (dim, value)
            f1 = [r["qc_label_f1"] for r in members if r.get("qc_label_f1") is not None]
            if f1:
                assert math.isclose(stats["label_f1"]["mean"], sum(f1) / len(f1))
                low, high = stats["label_f1"]["ci"]
                eps = 1e-9
                assert min(f1) - eps <= low <= high <= max(f1) + eps, (dim, value, f1, low, high)
            for check, got in stats["checks"].items():
                judged = [r[f"qc_{check}_ok"] for r in members if r[f"qc_{check}_ok"] is not None]
                assert (got["n"], got["passed"]) == (len(judged), sum(judged)), (dim, check)
    for row in rows:
        if row.get("qc_label_f1") is not None:
            assert math.isclose(
                row["qc_label_f1"], set_f1(row["qc_prompt_labels"], row["qc_report_labels"])
            )


def close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        math.isclose(a, b, abs_tol=1e-12) for a, b in zip(got, want, strict=True)
    )
