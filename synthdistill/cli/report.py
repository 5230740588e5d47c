"""Terminal reporting: the per-stage progress bars and the summary table of a run (drawn on stderr)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from synthdistill.runs.folder import Manifest

if TYPE_CHECKING:
    from synthdistill.dryrun import StagePlan


Counters = Callable[[], dict[str, Any]]
"""The running stage's teacher counters so far (tokens, cost_usd, ...)."""


def progress_bars(
    console: Console,
) -> tuple[Progress, Callable[[str, int | None, Counters], Callable[[int], None]]]:
    """A rich Progress (rate, ETA, tokens, cost) and the hook the pipeline calls when each stage starts."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[teacher]}"),
        console=console,
        transient=True,  # the summary table replaces the bars; an error leaves one clean line
        disable=not console.is_terminal,  # no bars in pipes and CI logs
    )

    def start(label: str, total: int | None, counters: Counters) -> Callable[[int], None]:
        # Drawn from the first stage on, so that an error before it prints one clean line.
        progress.start()
        task = progress.add_task(label, total=total, teacher="")

        def advance(n: int) -> None:
            progress.update(task, advance=n, teacher=_teacher_text(counters()))

        return advance

    return progress, start


class _RateColumn(ProgressColumn):
    """Inputs a second, from rich's own moving estimate."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "", style="progress.data.speed")


def _teacher_text(counters: dict[str, Any]) -> str:
    tokens = int(counters.get("prompt_tokens", 0) + counters.get("completion_tokens", 0))
    if not tokens:
        return ""
    cost = counters.get("cost_usd", 0.0)
    return f"{tokens:,} tok" + (f"  ${cost:.4f}" if cost else "")


def summary_table(manifest: Manifest) -> Table:
    """One row per stage: records in and out, model calls, cache hits, tokens, cost (when any), seconds."""
    table = Table(title=f"run {manifest.name} ({manifest.status}, {manifest.seconds:.0f} s)")
    priced = manifest.teacher.cost_usd > 0
    columns = ["stage", "status", "in", "out", "calls", "cache hits", "tokens"]
    columns += ["cost USD", "seconds"] if priced else ["seconds"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("stage", "status") else "right")
    for stage in manifest.stages:
        teacher = stage.teacher
        tokens = int(teacher.get("prompt_tokens", 0) + teacher.get("completion_tokens", 0))
        cost = [f"{teacher.get('cost_usd', 0.0):.4f}"] if priced else []
        table.add_row(
            stage.folder,
            stage.status,
            str(stage.records_in),
            str(stage.records_out),
            str(teacher.get("calls", 0)),
            str(teacher.get("cache_hits", 0)),
            str(tokens),
            *cost,
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
        *([f"{total.cost_usd:.4f}"] if priced else []),
        f"{manifest.seconds:.1f}",
    )
    # What the teacher's faults cost, which the calls column alone hides.
    faults = [
        f"{what} {count}"
        for what, count in (
            ("retries", total.retries),
            ("hedged calls", total.hedges),
            ("failed requests", total.failures),
        )
        if count
    ]
    if faults:
        table.caption = "teacher: " + ", ".join(faults)
    return table


def metrics_table(manifest: Manifest) -> Table:
    """Accuracy of each evaluated model (base, student, teacher)."""
    return evaluation_table(manifest.metrics)


def evaluation_table(metrics: dict[str, dict[str, Any]]) -> Table:
    """Accuracy and its 95% interval per model, the student's gain over its base, the judge's win rate."""
    table = Table(title="evaluation on the test split")
    for column in ("model", "accuracy", "95% CI", "gain over base", "correct", "items"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for label, values in metrics.items():
        if "accuracy" in values:
            low, high = values.get("ci", ("", ""))
            gain = values.get("gain_over_base")
            gain_text = f"{gain['diff']:+.3f} [{gain['ci'][0]:+.3f}, {gain['ci'][1]:+.3f}]" if gain else ""
            table.add_row(
                label,
                f"{values['accuracy']:.3f}",
                f"{low:.3f}-{high:.3f}" if values.get("ci") else "",
                gain_text,
                str(values.get("correct", "")),
                str(values.get("n", "")),
            )
    judge = metrics.get("judge")
    if judge:
        low, high = judge["ci"]
        table.add_section()
        table.add_row(
            f"judge: student vs base ({judge['wins']} W / {judge['ties']} T / {judge['losses']} L)",
            f"{judge['win_rate']:.3f}",
            f"{low:.3f}-{high:.3f}",
            "",
            "",
            str(judge["n"]),
        )
    return table


def stage_warnings(manifest: Manifest) -> list[str]:
    """The warnings stages reported in their details (a test-split leak into training, ...)."""
    return [
        f"{stage.folder}: {text}" for stage in manifest.stages for text in stage.details.get("warnings", [])
    ]


def plan_table(plans: list[StagePlan]) -> Table:
    """The dry run's table: per stage, the calls the cache answers and those that would be paid for."""
    table = Table(title="dry run: nothing was sent or written", title_style="bold")
    for column in ("stage", "in", "requests", "cached samples", "samples to call"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for column in ("prompt tokens (est.)", "completion tokens (max)", "cost USD (max)"):
        table.add_column(column, justify="right")
    table.add_column("note")
    total_cost: float | None = 0.0
    for plan in plans:
        inputs = "?" if plan.inputs is None else str(plan.inputs)
        planned = plan.planned
        if planned is None:
            table.add_row(plan.stage, inputs, "?", "?", "?", "?", "?", "?", plan.note)
            total_cost = None
            continue
        cost = f"{planned.cost_usd:.4f}" if plan.priced else "unknown price"
        if not plan.priced or total_cost is None:
            total_cost = None
        else:
            total_cost += planned.cost_usd
        table.add_row(
            plan.stage,
            inputs,
            str(planned.requests),
            str(planned.cached),
            str(planned.samples),
            str(planned.prompt_tokens),
            str(planned.completion_tokens),
            cost,
            plan.note,
        )
    table.caption = (
        f"worst-case cost of the stages estimated: {total_cost:.4f} USD"
        if total_cost is not None
        else "some stages could not be estimated (see notes); their cost is not in any total"
    )
    return table


def critics_tables(manifest: Manifest) -> list[Table]:
    """One table per filter stage that ran critics: records each critic saw, passed and dropped, seconds."""
    tables = []
    for stage in manifest.stages:
        critics = stage.details.get("critics")
        if not critics:
            continue
        table = Table(title=f"critics of {stage.folder}")
        for column in ("critic", "seen", "passed", "dropped", "seconds"):
            table.add_column(column, justify="left" if column == "critic" else "right")
        for name, stat in critics.items():
            table.add_row(
                name, str(stat["seen"]), str(stat["passed"]), str(stat["dropped"]), f"{stat['seconds']:.2f}"
            )
        tables.append(table)
    return tables


def rounds_tables(manifest: Manifest) -> list[Table]:
    """One table per adversarial stage: each round's pool, hard share, new instructions and accuracy."""
    tables = []
    for stage in manifest.stages:
        rounds = stage.details.get("rounds")
        if not rounds:
            continue
        table = Table(title=f"rounds of {stage.folder}")
        for column in ("round", "pool", "probed", "hard share", "new", "added", "dropped", "accuracy"):
            table.add_column(column, justify="left" if column == "dropped" else "right")
        for entry in rounds:
            dropped = ", ".join(f"{why} {n}" for why, n in entry.get("dropped", {}).items())
            accuracy = entry.get("accuracy")
            table.add_row(
                str(entry["round"]),
                str(entry["pool"]),
                str(entry["probed"]),
                f"{entry['hard_share']:.2f}",
                str(entry.get("new", 0)),
                str(entry.get("added", 0)),
                entry.get("stopped") or dropped,
                "" if accuracy is None else f"{accuracy:.3f}",
            )
        tables.append(table)
    return tables
