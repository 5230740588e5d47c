"""Terminal reporting: the per-stage progress bars and the summary table of a run (drawn on stderr)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich import box
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
    """Inputs a second over the stage's own time so far (rich's moving estimate, over its last few
    updates, showed 719.6/s for 6 items that took 49 s when a burst of cache answers came at the end)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0.5 and task.completed else None
        return Text(f"{rate:.1f}/s" if rate else "", style="progress.data.speed")


def _teacher_text(counters: dict[str, Any]) -> str:
    tokens = int(counters.get("prompt_tokens", 0) + counters.get("completion_tokens", 0))
    if not tokens:
        return ""
    cost = counters.get("cost_usd", 0.0)
    return f"{tokens:,} tok" + (f"  ${cost:.4f}" if cost else "")


def summary_table(manifest: Manifest) -> Table:
    """One row per stage: records in and out, model calls, cache hits, tokens, cost (when any), seconds;
    under a stage that asked several named teachers, one row per teacher, when the run had more than one."""
    priced = manifest.teacher.cost_usd > 0
    several = len({name for stage in manifest.stages for name in stage.details.get("by_teacher", {})}) > 1
    columns = ["stage", "status", "in", "out", "calls", "cache\nhits", "tokens"]
    columns += ["cost\nUSD", "seconds"] if priced else ["seconds"]
    table = _table(f"run {manifest.name} ({manifest.status}, {manifest.seconds:.0f} s)", columns, 2)
    for stage in manifest.stages:
        teacher = stage.teacher
        tokens = int(teacher.get("prompt_tokens", 0) + teacher.get("completion_tokens", 0))
        cost = [f"{teacher.get('cost_usd', 0.0):.4f}"] if priced else []
        # A stage that scores held-out items (evaluate) counts those, not the records it hands on.
        items = stage.details.get("items")
        table.add_row(
            stage.folder,
            stage.status,
            f"{items} items" if items is not None else str(stage.records_in),
            "" if items is not None else str(stage.records_out),
            str(teacher.get("calls", 0)),
            str(teacher.get("cache_hits", 0)),
            str(tokens),
            *cost,
            f"{stage.seconds:.1f}",
        )
        # A skipped stage keeps the details of its last run, but spent nothing this time.
        by_teacher = stage.details.get("by_teacher", {}) if several and stage.status != "skipped" else {}
        for name, spent in by_teacher.items():
            table.add_row(
                f"  {name}",
                "",
                "",
                "",
                str(spent.get("calls", 0)),
                str(spent.get("cache_hits", 0)),
                str(int(spent.get("prompt_tokens", 0) + spent.get("completion_tokens", 0))),
                *([f"{spent.get('cost_usd', 0.0):.4f}"] if priced else []),
                "",
                style="dim",
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


def rerun_lines(manifest: Manifest) -> list[str]:
    """Why each stage that had run before ran again (a template, its options, review decisions, ...)."""
    return [
        f"{stage.folder} ran again: {stage.reason}"
        for stage in manifest.stages
        if stage.status != "skipped" and stage.reason and stage.reason != "first run"
    ]


def metrics_table(manifest: Manifest) -> Table:
    """Accuracy of each evaluated model (base, student, teacher)."""
    return evaluation_table(manifest.metrics)


def evaluation_table(metrics: dict[str, dict[str, Any]]) -> Table:
    """Accuracy and its 95% interval per model, the student's gain over its base, the judge's win rate; free
    text's ROUGE-L and embedding similarity where there are such items; the scoring used, as the caption."""
    models = {label: values for label, values in metrics.items() if "accuracy" in values}
    headers = {"rouge_l": "ROUGE-L", "embedding_similarity": "embedding\nsimilarity"}
    similarity = [key for key in headers if any(key in values for values in models.values())]
    columns = ["model", "accuracy", "95% CI", "gain over base", "correct", "items"]
    table = _table("evaluation on the test split", [*columns, *(headers[k] for k in similarity)], 1)
    for label, values in models.items():
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
            *(f"{values[key]:.3f}" if key in values else "" for key in similarity),
        )
    # Metrics of runs made before the scoring was recorded have none to show.
    scorings = sorted({str(values["scoring"]) for values in models.values() if values.get("scoring")})
    if scorings:
        table.caption = f"scored as {'; '.join(scorings)} (data.task)"
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
            *("" for _ in similarity),
        )
    return table


def stage_warnings(manifest: Manifest) -> list[str]:
    """The warnings stages reported in their details (a test-split leak into training, ...)."""
    return [
        f"{stage.folder}: {text}" for stage in manifest.stages for text in stage.details.get("warnings", [])
    ]


def plan_table(plans: list[StagePlan]) -> Table:
    """The dry run's table: per stage, the calls the cache answers and those that would be paid for."""
    columns = ["stage", "in", "calls", "cached\nsamples", "samples\nto call", "prompt\ntokens\n(est.)"]
    columns += ["output\ntokens\n(max)", "cost USD\n(max)"]
    table = _table("dry run: nothing was sent or written", columns, 1)
    table.title_style = "bold"
    # Notes go under the table, where they have the whole width.
    notes = [f"{plan.stage}: {plan.note}" for plan in plans if plan.note]
    notes += [
        f"{plan.stage}: the teacher's price is unknown" for plan in plans if plan.planned and not plan.priced
    ]
    total_cost: float | None = 0.0
    for plan in plans:
        inputs = "?" if plan.inputs is None else str(plan.inputs)
        planned = plan.planned
        if planned is None:
            table.add_row(plan.stage, inputs, "?", "?", "?", "?", "?", "?")
            total_cost = None
            continue
        cost = f"{planned.cost_usd:.4f}" if plan.priced else "?"
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
        )
    total = (
        f"worst-case cost of the stages estimated: {total_cost:.4f} USD"
        if total_cost is not None
        else "some stages could not be estimated (see the notes); their cost is not in any total"
    )
    table.caption = "\n".join([*notes, total])
    table.caption_justify = "left"
    return table


def critics_tables(manifest: Manifest) -> list[Table]:
    """One table per filter stage that ran critics: records each critic saw, passed and dropped, seconds."""
    tables = []
    for stage in manifest.stages:
        critics = stage.details.get("critics")
        if not critics:
            continue
        table = _table(f"critics of {stage.folder}", ["critic", "seen", "passed", "dropped", "seconds"], 1)
        for name, stat in critics.items():
            table.add_row(
                name, str(stat["seen"]), str(stat["passed"]), str(stat["dropped"]), f"{stat['seconds']:.2f}"
            )
        tables.append(table)
    return tables


def rounds_tables(manifest: Manifest) -> list[Table]:
    """One table per adversarial or star stage: each round's pool, hard share (or problems solved), what
    it added and its student's accuracy."""
    tables = []
    for stage in manifest.stages:
        rounds = stage.details.get("rounds")
        if not rounds:
            continue
        if stage.name == "star":
            tables.append(_star_table(stage.folder, rounds))
            continue
        columns = ["round", "pool", "probed", "hard\nshare", "new", "added", "dropped", "accuracy"]
        table = _table(f"rounds of {stage.folder}", columns, 0)
        table.columns[columns.index("dropped")].justify = "left"
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


def _star_table(folder: str, rounds: list[dict[str, Any]]) -> Table:
    """STaR's rounds: problems the newest student solved, rationales kept and new, the union, accuracy."""
    columns = ["round", "solved", "kept", "rational-\nized", "new", "union", "accuracy", "note"]
    table = _table(f"rounds of {folder}", columns, 0)
    table.columns[-1].justify = "left"
    for entry in rounds:
        accuracy = entry.get("accuracy")
        solved = f"{entry['solved']}/{entry['questions']}" if "solved" in entry else ""
        table.add_row(
            str(entry["round"]),
            solved,
            *(str(entry[key]) if key in entry else "" for key in ("kept", "rationalized", "new", "union")),
            "" if accuracy is None else f"{accuracy:.3f}",
            entry.get("stopped") or ("the student handed in" if entry["round"] == 0 else ""),
        )
    return table


def _table(title: str, columns: list[str], left: int) -> Table:
    """A table that reads at 80 columns: no vertical rules, headers broken onto lines (`cache\\nhits`) so
    that no header is wider than its numbers, the first `left` columns left-aligned and the rest right;
    what still does not fit folds onto a next line instead of being cut."""
    # Columns are set apart by the box's blank divider and one space of padding on the right.
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < left else "right", overflow="fold")
    return table
