"""`synthdistill inspect RUN`: a run folder summed up in the terminal (rich tables) or as JSON."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from synthdistill.runs.decisions import decision_counts, load_decisions
from synthdistill.runs.folder import read_records
from synthdistill.runs.view import open_run


def inspect_run(run_dir: str | Path, *, samples: int = 3) -> dict[str, Any]:
    """The manifest, the review decisions and a few sample records of the last stage, as plain JSON."""
    run = open_run(run_dir)
    decisions = load_decisions(run.root)
    stage = run.last_stage
    picked = []
    if stage is not None and samples:
        # Kept records first (what training sees), then dropped ones (what a reviewer checks).
        records = read_records(stage.path)
        kept = list(itertools.islice((r for r in records if r.kept), samples))
        dropped = (
            []
            if len(kept) == samples
            else list(
                itertools.islice((r for r in read_records(stage.path) if not r.kept), samples - len(kept))
            )
        )
        for record in kept + dropped:
            decision = decisions.get(record.id)
            picked.append(
                {
                    "id": record.id,
                    "stage": stage.folder,
                    "question": record.input.get("question"),
                    "rationale": record.rationale,
                    "answer": record.answer,
                    "gold": record.gold,
                    "agreement": record.agreement,
                    "kept": record.kept,
                    "dropped_by": record.dropped_by,
                    "verdicts": {name: v.model_dump() for name, v in record.verdicts.items()},
                    "review": None if decision is None else decision.status or "edited",
                }
            )
    return {
        "run": str(run.root),
        "manifest": run.manifest.model_dump(mode="json"),
        "review": decision_counts(decisions),
        "samples": picked,
    }


def render(summary: dict[str, Any]) -> Group:
    """Rich tables of what `inspect_run` returned: stages, totals, metrics, review, samples."""
    from synthdistill.cli.report import metrics_table, rerun_lines, rounds_tables, summary_table
    from synthdistill.runs.folder import Manifest

    # The same tables as at the end of `synthdistill run`: the intervals and gains included.
    manifest = Manifest.model_validate(summary["manifest"])
    parts: list[Any] = [summary_table(manifest), *rerun_lines(manifest), *rounds_tables(manifest)]
    if manifest.metrics:
        parts.append(metrics_table(manifest))
    review = summary["review"]
    parts.append(
        f"review decisions: {review['accepted']} accepted, {review['rejected']} rejected, "
        f"{review['edited']} edited"
    )
    if summary["samples"]:
        parts.append(_samples_table(summary["samples"]))
    return Group(*parts)


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """Draw the summary on `console`."""
    console.print(render(summary))


def _samples_table(samples: list[dict[str, Any]]) -> Table:
    table = Table(title=f"sample records of {samples[0]['stage']}", show_lines=True)
    for column in ("id", "question", "rationale", "answer", "gold", "agreement", "kept", "verdicts"):
        table.add_column(column, overflow="fold")
    for s in samples:
        verdicts = ", ".join(f"{k}: {'pass' if v['passed'] else 'fail'}" for k, v in s["verdicts"].items())
        kept = "kept" if s["kept"] else f"dropped by {s['dropped_by']}"
        if s["review"]:
            kept += f" (review: {s['review']})"
        table.add_row(
            s["id"],
            _short(s["question"]),
            _short(s["rationale"]),
            _cell(s["answer"]),
            _cell(s["gold"]),
            _cell(s["agreement"]),
            Text(kept),
            Text(verdicts),
        )
    return table


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float | str | bool) or value is None


def _cell(value: Any) -> Text:
    """Record data as plain Text: brackets in it must never be read as rich markup."""
    if value is None:
        return Text("")
    return Text(f"{value:.3f}" if isinstance(value, float) else str(value))


def _short(text: Any, limit: int = 160) -> Text:
    text = "" if text is None else str(text)
    return Text(text if len(text) <= limit else text[: limit - 1] + "…")
