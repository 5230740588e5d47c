"""Terminal reporting: the per-stage progress bars and the summary table of a run (drawn on stderr)."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from synthdistill.runfolder import Manifest


def progress_bars(console: Console) -> tuple[Progress, Callable[[str, int | None], Callable[[int], None]]]:
    """A rich Progress and the hook the pipeline calls when each stage starts."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # the summary table replaces the bars; an error leaves one clean line
        disable=not console.is_terminal,  # no bars in pipes and CI logs
    )

    def start(label: str, total: int | None) -> Callable[[int], None]:
        # Drawn from the first stage on, so that an error before it prints one clean line.
        progress.start()
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    return progress, start


def summary_table(manifest: Manifest) -> Table:
    """One row per stage: records in and out, model calls, cache hits, tokens, seconds."""
    table = Table(title=f"run {manifest.name} ({manifest.status}, {manifest.seconds:.0f} s)")
    for column in ("stage", "status", "in", "out", "calls", "cache hits", "tokens", "seconds"):
        table.add_column(column, justify="left" if column in ("stage", "status") else "right")
    for stage in manifest.stages:
        teacher = stage.teacher
        tokens = teacher.get("prompt_tokens", 0) + teacher.get("completion_tokens", 0)
        table.add_row(
            stage.folder,
            stage.status,
            str(stage.records_in),
            str(stage.records_out),
            str(teacher.get("calls", 0)),
            str(teacher.get("cache_hits", 0)),
            str(tokens),
            f"{stage.seconds:.1f}",
        )
    total = manifest.teacher
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        "",
        str(total.calls),
        str(total.cache_hits),
        str(total.prompt_tokens + total.completion_tokens),
        f"{manifest.seconds:.1f}",
    )
    return table


def metrics_table(manifest: Manifest) -> Table:
    """Accuracy of each evaluated model (base, student, teacher)."""
    table = Table(title="evaluation on the test split")
    for column in ("model", "accuracy", "correct", "items"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for label, values in manifest.metrics.items():
        if "accuracy" in values:
            table.add_row(
                label, f"{values['accuracy']:.3f}", str(values.get("correct", "")), str(values.get("n", ""))
            )
    return table
