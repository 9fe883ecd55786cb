"""MedVAL-Bench metrics rendered for people: a report.md table and a PNG confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.benchmarks.medval_metrics import CATEGORIES, RISK_LEVELS, UNCLASSIFIED

RISK_NAMES = {1: "1 No", 2: "2 Low", 3: "3 Moderate", 4: "4 High"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _row(name: str, block: dict[str, Any]) -> str:
    s, r = block["safety"], block["risk"]
    kappa = r["kappa_quadratic"]
    cells = [
        name,
        str(block["n"]),
        str(block["n_missing"]),
        _pct(s["unsafe_f1"]),
        _pct(s["macro_f1"]),
        _pct(s["unsafe_recall"]),
        _pct(r["macro_f1"]),
        _pct(r["accuracy"]),
        _pct(r["within_one"]),
        f"{r['mean_absolute_error']:.2f}",
        "-" if kappa is None else f"{kappa:.3f}",
    ]
    return "| " + " | ".join(cells) + " |"


def render_markdown(metrics: dict[str, Any], title: str = "MedVAL-Bench") -> str:
    """report.md: per-task and overall table, then error-category counts (physician vs model)."""
    lines = [
        f"# {title}",
        "",
        f"Unsafe = {metrics['definition']['unsafe']}. F1 and accuracies in %.",
        "",
        "| task | n | no grade | unsafe F1 | safety macro F1 | unsafe recall | risk macro F1 "
        "| risk acc. | within 1 | MAE | kappa (quadratic) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_row(task, block) for task, block in metrics["per_task"].items()]
    lines.append(_row("**overall**", metrics["overall"]))
    tm = metrics["task_mean"]
    lines += [
        "",
        f"Mean over tasks: unsafe F1 {_pct(tm['safety.unsafe_f1'])}, "
        f"risk macro F1 {_pct(tm['risk.macro_f1'])}.",
        "",
        "## Error categories",
        "",
        "| category | physician | model |",
        "|---|---:|---:|",
    ]
    errors = metrics["overall"]["errors"]
    for category in (*CATEGORIES, UNCLASSIFIED):
        phys = errors["physician"]["per_category"][category]
        model = errors["model"]["per_category"][category] if errors["model"]["rows"] else "-"
        lines.append(f"| {category} | {phys} | {model} |")
    lines.append(
        f"| **rows with errors** | {errors['physician']['rows_with_errors']} | "
        f"{errors['model']['rows_with_errors'] if errors['model']['rows'] else '-'} |"
    )
    return "\n".join(lines) + "\n"


def plot_confusion(
    matrix: list[list[int]], path: str | Path, title: str = "Risk level: physician vs model"
) -> Path:
    """A 4x4 confusion matrix (rows physician, columns model) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=120)
    try:
        ax.imshow(matrix, cmap="Blues")
        peak = max((max(row) for row in matrix), default=0)
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                color = "white" if peak and count > peak / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=color)
        names = [RISK_NAMES[level] for level in RISK_LEVELS]
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("model risk level")
        ax.set_ylabel("physician risk level")
        ax.set_title(title)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
