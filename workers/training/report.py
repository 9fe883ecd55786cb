"""Result files: predictions CSV, report.md comparing runs, PNG plots (matplotlib Agg, no pyplot).

Predictions keep float32 probabilities written with `repr`, so reading the CSV back gives
the exact values the metrics were computed from.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

from workers.training.metrics import age_bin
from workers.training.sources import Table


def predictions_csv(
    parts: list[tuple[str, Table, np.ndarray]], bins: list[tuple[int, int]]
) -> bytes:
    """One row per (split, image): demographics, `y:<label>` (1/0/blank) and `p:<label>`."""
    names = parts[0][1].label_names
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "split",
            "path",
            "patient",
            "sex",
            "age",
            "age_bin",
            "race",
            *(f"y:{n}" for n in names),
            *(f"p:{n}" for n in names),
        ]
    )
    for split, table, probs in parts:
        for i in range(len(table)):
            y = ["" if np.isnan(v) else str(int(v)) for v in table.labels[i]]
            p = [repr(float(v)) for v in probs[i]]
            age = "" if table.age[i] is None else repr(table.age[i])
            writer.writerow(
                [
                    split,
                    table.paths[i],
                    table.patient[i],
                    table.sex[i],
                    age,
                    age_bin(table.age[i], bins),
                    table.race[i],
                    *y,
                    *p,
                ]
            )
    return out.getvalue().encode()


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def roc_plot(
    title: str, labels: np.ndarray, probs: np.ndarray, names: list[str], aurocs: dict[str, Any]
) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    for j, name in enumerate(names):
        keep = ~np.isnan(labels[:, j])
        y = labels[keep, j]
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, probs[keep, j])
            auc = aurocs.get(name)
            ax.plot(fpr, tpr, label=f"{name} ({auc:.3f})" if auc is not None else name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=title)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def underdiagnosis_plot(attribute: str, runs: dict[str, dict[str, Any]]) -> bytes:
    """Bars: underdiagnosis rate per subgroup value, one bar per run, 95% CI whiskers."""
    from matplotlib.figure import Figure

    values = sorted(
        {v for m in runs.values() for v in m["underdiagnosis"]["by"][attribute]["groups"]}
    )
    fig = Figure(figsize=(max(5, 1.2 * len(values) * max(len(runs), 1) / 2), 4))
    ax = fig.subplots()
    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(values))
    for k, (run, m) in enumerate(runs.items()):
        groups = m["underdiagnosis"]["by"][attribute]["groups"]
        rates = [groups.get(v, {}).get("rate") for v in values]
        cis = [groups.get(v, {}).get("rate_ci") for v in values]
        heights = [r if r is not None else 0.0 for r in rates]
        low = [h - c[0] if c else 0.0 for h, c in zip(heights, cis, strict=True)]
        high = [c[1] - h if c else 0.0 for h, c in zip(heights, cis, strict=True)]
        gap = m["underdiagnosis"]["by"][attribute]["gap"]
        label = f"{run} (gap {gap:.3f})" if gap is not None else run
        ax.bar(
            x + k * width - 0.4 + width / 2,
            heights,
            width,
            yerr=[low, high],
            capsize=3,
            label=label,
        )
    ax.set_xticks(x, values, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel='Underdiagnosis (FPR of "No Finding")', title=f"Underdiagnosis by {attribute}")
    ax.legend(fontsize=7)
    return _png(fig)


def _num(value: Any, ci: Any = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text


def markdown(
    title: str, intro: list[str], runs: dict[str, dict[str, Any]], extra: list[str] | None = None
) -> str:
    """A report: overview table, per-label AUROC, underdiagnosis per subgroup, each with CIs."""
    first = next(iter(runs.values()))
    names = list(first["labels"])
    lines = [f"# {title}", "", *intro, ""]
    lines += [
        "## Overview (test split, 95% bootstrap CI)",
        "",
        "| run | mean AUROC | mean accuracy | underdiagnosis | "
        + " | ".join(f"gap: {a}" for a in first["underdiagnosis"]["by"])
        + " |",
        "|---|---|---|---|" + "---|" * len(first["underdiagnosis"]["by"]),
    ]
    for run, m in runs.items():
        gaps = [_num(f["gap"], f.get("gap_ci")) for f in m["underdiagnosis"]["by"].values()]
        lines.append(
            f"| {run} | {_num(m['mean_auroc'], m['mean_auroc_ci'])} | "
            f"{_num(m['mean_accuracy'], m['mean_accuracy_ci'])} | "
            f"{_num(m['underdiagnosis']['overall'])} | " + " | ".join(gaps) + " |"
        )
    lines += [
        "",
        "## AUROC per label",
        "",
        "| label | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for name in names:
        cells = [
            _num(m["labels"][name]["auroc"], m["labels"][name]["auroc_ci"]) for m in runs.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for attribute in first["underdiagnosis"]["by"]:
        lines += [
            "",
            f"## Underdiagnosis by {attribute}",
            "",
            "| subgroup | n (sick) | " + " | ".join(runs) + " |",
            "|---|---|" + "---|" * len(runs),
        ]
        groups = first["underdiagnosis"]["by"][attribute]["groups"]
        for value, g in groups.items():
            cells = [
                _num(
                    m["underdiagnosis"]["by"][attribute]["groups"].get(value, {}).get("rate"),
                    m["underdiagnosis"]["by"][attribute]["groups"].get(value, {}).get("rate_ci"),
                )
                for m in runs.values()
            ]
            lines.append(f"| {value} | {g['n']} ({g['n_sick']}) | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *(extra or [])]) + "\n"
