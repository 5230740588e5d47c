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
    from synthdistill.cli.report import rounds_tables
    from synthdistill.runs.folder import Manifest

    manifest = summary["manifest"]
    parts: list[Any] = [_stages_table(manifest), *rounds_tables(Manifest.model_validate(manifest))]
    if manifest.get("metrics"):
        parts.append(_metrics_table(manifest["metrics"]))
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


def _stages_table(manifest: dict[str, Any]) -> Table:
    title = f"run {manifest['name']} ({manifest['status']}, {manifest.get('seconds', 0):.0f} s)"
    table = Table(title=title)
    columns = ("stage", "status", "in", "out", "calls", "cache hits", "tokens", "cost $", "seconds")
    for column in columns:
        table.add_column(column, justify="left" if column in ("stage", "status") else "right", no_wrap=True)
    for stage in manifest["stages"]:
        table.add_row(
            stage["folder"],
            stage["status"],
            str(stage["records_in"]),
            str(stage["records_out"]),
            *_teacher_cells(stage.get("teacher", {})),
            f"{stage.get('seconds', 0):.1f}",
        )
    table.add_section()
    table.add_row(
        "total", "", "", "", *_teacher_cells(manifest.get("teacher", {})), f"{manifest.get('seconds', 0):.1f}"
    )
    return table


def _teacher_cells(counters: dict[str, Any]) -> list[str]:
    tokens = counters.get("prompt_tokens", 0) + counters.get("completion_tokens", 0)
    cost = counters.get("cost_usd")
    return [
        str(counters.get("calls", 0)),
        str(counters.get("cache_hits", 0)),
        str(tokens),
        "" if cost is None else f"{cost:.4f}",
    ]


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="metrics")
    table.add_column("model")
    names = sorted({k for values in metrics.values() for k, v in values.items() if _is_scalar(v)})
    for name in names:
        table.add_column(name, justify="right")
    for label, values in metrics.items():
        table.add_row(label, *(_cell(values.get(name)) for name in names))
    return table


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
