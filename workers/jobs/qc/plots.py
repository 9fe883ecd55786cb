"""The QC report's PNGs (matplotlib, Agg): per dimension, pass rate and mean label F1 with CIs."""

from __future__ import annotations

import io
from typing import Any


def _figure(report: dict[str, Any], value_of: Any, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = [d for d, groups in report["by"].items() if groups]
    fig, axes = plt.subplots(1, len(dims), figsize=(4 * len(dims), 3.6), squeeze=False)
    for ax, dim in zip(axes[0], dims, strict=True):
        names, points, low, high = [], [], [], []
        for value, group in report["by"][dim].items():
            point, ci = value_of(group)
            if point is None:
                continue
            names.append(value if len(value) <= 18 else value[:17] + "...")
            points.append(point)
            low.append(point - (ci[0] if ci else point))
            high.append((ci[1] if ci else point) - point)
        ax.bar(range(len(points)), points, yerr=[low, high], capsize=3, color="#4C72B0")
        ax.set_xticks(range(len(points)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(dim)
    fig.suptitle(f"{title} ({report['confidence']:.0%} CI; machine-generated QC)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def pass_rate_png(report: dict[str, Any]) -> bytes:
    return _figure(report, lambda g: (g["pass_rate"], g["pass_rate_ci"]), "QC pass rate")


def label_f1_png(report: dict[str, Any]) -> bytes:
    return _figure(report, lambda g: (g["label_f1"]["mean"], g["label_f1"]["ci"]), "Mean label F1")


def write_all(artifacts: Any, report: dict[str, Any]) -> list[str]:
    """Write the plots under `plots/`; their artifact paths."""
    paths = {"plots/qc_pass_rate.png": pass_rate_png, "plots/qc_label_f1.png": label_f1_png}
    for path, draw in paths.items():
        artifacts.write_bytes(path, draw(report))
    return list(paths)
