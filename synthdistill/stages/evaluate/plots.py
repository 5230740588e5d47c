"""The evaluation plot: accuracy of each model with its interval, beside the records each stage handed on."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def accuracy_plot(
    path: Path, metrics: dict[str, dict[str, Any]], stage_counts: list[tuple[str, int]]
) -> Path:
    """Write a PNG of accuracy per model (with 95% intervals) and records out per stage; return `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    models = [(label, values) for label, values in metrics.items() if "accuracy" in values]
    panels = 2 if stage_counts else 1
    figure, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.4), squeeze=False)
    left = axes[0][0]
    names = [label for label, _ in models]
    accuracy = [values["accuracy"] for _, values in models]
    low = [values["accuracy"] - values.get("ci", [values["accuracy"]] * 2)[0] for _, values in models]
    high = [values.get("ci", [values["accuracy"]] * 2)[1] - values["accuracy"] for _, values in models]
    left.bar(
        names, accuracy, yerr=[low, high], capsize=4, color=["#9e9e9e", "#1f77b4", "#2ca02c"][: len(names)]
    )
    for x, value in enumerate(accuracy):
        left.annotate(
            f"{value:.2f}", (x, value), ha="center", va="bottom", xytext=(0, 2), textcoords="offset points"
        )
    n = models[0][1].get("n", "?") if models else "?"
    left.set_title(f"accuracy on {n} held-out items (95% CI)")
    left.set_ylim(0, 1)
    if stage_counts:
        right = axes[0][1]
        right.bar([name for name, _ in stage_counts], [count for _, count in stage_counts], color="#ff7f0e")
        right.set_title("records out per stage")
        right.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
