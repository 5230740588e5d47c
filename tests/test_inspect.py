"""`synthdistill inspect`: the manifest and sample records as tables, or as JSON for scripts."""

from __future__ import annotations

import json

from synthdistill.cli import main
from synthdistill.runs.decisions import DecisionEntry, DecisionLog
from synthdistill.runs.folder import read_records


def test_tables_show_stages_totals_review_and_samples(review_run, capfd, monkeypatch):
    _, run, _ = review_run
    monkeypatch.setenv("COLUMNS", "200")
    capfd.readouterr()
    assert main(["inspect", str(run), "--samples", "2"]) == 0
    out, _ = capfd.readouterr()
    for text in (
        "01-generate",
        "03-filter",
        "cache",
        "hits",
        "total",
        "review decisions: 0 accepted",
        "sample records of 03-filter",
    ):
        assert text in out


def test_tables_show_the_accuracy_intervals_and_the_gain_as_the_run_did(review_run, capfd, monkeypatch):
    import json

    _, run, _ = review_run
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["metrics"] = {
        "base": {"accuracy": 0.2, "ci": [0.1, 0.3], "correct": 2, "n": 10},
        "student": {
            "accuracy": 0.5,
            "ci": [0.3, 0.7],
            "correct": 5,
            "n": 10,
            "gain_over_base": {"diff": 0.3, "ci": [0.1, 0.5]},
        },
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("COLUMNS", "200")
    capfd.readouterr()
    assert main(["inspect", str(run)]) == 0
    out, _ = capfd.readouterr()
    assert "0.300-0.700" in out and "+0.300 [+0.100, +0.500]" in out


def test_json_holds_the_manifest_review_counts_and_markup_as_it_is(review_run, capfd):
    _, run, _ = review_run
    record = next(read_records(run / "03-filter" / "records.jsonl"))
    DecisionLog(run).append(DecisionEntry(record_id=record.id, action="reject", reason="[bold]no[/bold]"))
    capfd.readouterr()
    assert main(["inspect", str(run), "--json", "--samples", "9"]) == 0
    out, _ = capfd.readouterr()
    summary = json.loads(out)
    assert [s["folder"] for s in summary["manifest"]["stages"]] == [
        "01-generate",
        "02-self_consistency",
        "03-filter",
    ]
    assert summary["review"] == {"accepted": 0, "rejected": 1, "edited": 0}
    assert len(summary["samples"]) == 9
    assert [s["kept"] for s in summary["samples"]] == [True] * 8 + [False]
    assert any("<script>" in (s["rationale"] or "") for s in summary["samples"])


def test_inspect_help_names_its_options(capfd):
    assert main(["inspect", "--help"]) == 0
    out, _ = capfd.readouterr()
    assert "--json" in out and "--samples" in out
