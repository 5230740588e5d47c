"""Terminal reporting: the progress bars' rate, ETA, tokens and cost, drawn on a real (forced) terminal."""

from __future__ import annotations

import io

from rich.console import Console

from synthdistill.cli.report import progress_bars


def test_a_stage_bar_shows_progress_tokens_and_cost():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    progress, start = progress_bars(console)
    advance = start(
        "01-generate", 10, lambda: {"prompt_tokens": 1200, "completion_tokens": 34, "cost_usd": 0.25}
    )
    advance(3)
    progress.refresh()
    progress.stop()
    text = out.getvalue()
    assert "01-generate" in text and "3/10" in text
    assert "1,234 tok" in text and "$0.2500" in text and "eta" in text


def test_no_bars_are_drawn_when_stderr_is_not_a_terminal():
    out = io.StringIO()
    progress, start = progress_bars(Console(file=out, force_terminal=False))
    start("01-generate", 10, dict)(5)
    progress.stop()
    assert out.getvalue() == ""


def test_the_rounds_table_shows_each_rounds_counts_and_why_it_stopped():
    from synthdistill.cli.report import rounds_tables
    from synthdistill.runs.folder import Manifest, StageManifest

    rounds = [
        {"round": 1, "pool": 39, "probed": 18, "hard_share": 0.4444, "new": 30, "added": 2,
         "dropped": {"expression": 20, "grow: not novel": 1}, "accuracy": 0.28},
        {"round": 2, "pool": 41, "probed": 18, "hard_share": 0.5, "stopped": "the hard share did not fall"},
    ]  # fmt: skip
    stage = StageManifest(name="adversarial", folder="05-adversarial", details={"rounds": rounds})
    (table,) = rounds_tables(Manifest(name="r", pipeline="p.yaml", stages=[stage]))
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    text = console.file.getvalue()
    assert "rounds of 05-adversarial" in text
    assert "expression 20, grow: not novel 1" in text and "0.280" in text and "0.44" in text
    assert "the hard share did not fall" in text


def test_the_summary_says_how_many_calls_were_retried_hedged_or_failed():
    from synthdistill.cli.report import summary_table
    from synthdistill.runs.folder import Manifest, StageManifest
    from synthdistill.teachers.counters import TeacherCounters

    stage = StageManifest(name="generate", folder="01-generate", records_in=5, records_out=5)
    quiet = Manifest(name="r", pipeline="p.yaml", stages=[stage], teacher=TeacherCounters(calls=5))
    faulty = quiet.model_copy(update={"teacher": TeacherCounters(calls=9, retries=3, hedges=1)})
    texts = []
    for manifest in (quiet, faulty):
        console = Console(file=io.StringIO(), width=200)
        console.print(summary_table(manifest))
        texts.append(console.file.getvalue())
    assert "teacher:" not in texts[0]
    assert "teacher: retries 3, hedged calls 1" in texts[1]
