"""`synthdistill export`: kept records with the review applied, in each format, with a dataset card."""

from __future__ import annotations

import json

import pytest

from synthdistill.cli import main
from synthdistill.runs.decisions import DecisionEntry, DecisionLog
from synthdistill.runs.folder import read_records


@pytest.fixture
def reviewed(review_run):
    _, run, _ = review_run
    kept = [r for r in read_records(run / "03-filter" / "records.jsonl") if r.kept]
    log = DecisionLog(run)
    log.append(DecisionEntry(record_id=kept[0].id, action="reject", reason="guesses"))
    log.append(DecisionEntry(record_id=kept[1].id, action="edit", answer="99"))
    return run, kept


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_each_format_leaves_out_rejects_and_carries_edits(reviewed, tmp_path, capfd, fmt):
    run, kept = reviewed
    out = tmp_path / f"export-{fmt}"
    capfd.readouterr()
    assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
    stdout, _ = capfd.readouterr()
    assert stdout.strip() == str(out)
    if fmt == "jsonl":
        rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    else:
        from datasets import Dataset, load_from_disk

        dataset = (
            Dataset.from_parquet(str(out / "train.parquet")) if fmt == "parquet" else load_from_disk(str(out))
        )
        rows = dataset.to_list()
    by_id = {row["id"]: row for row in rows}
    assert len(rows) == 7 and kept[0].id not in by_id
    assert by_id[kept[1].id]["answer"] == "99" and by_id[kept[1].id]["review"] == "edited"
    card = (out / "README.md").read_text()
    for text in (
        "pretty_name: synthdistill run r",
        "model: `scripted`",
        "answer_match",
        "| 03-filter |",
        "0 accepted, 1 rejected, 1 edited",
        "rejected because: guesses",
    ):
        assert text in card


def test_default_folder_is_inside_the_run(reviewed, capfd):
    run, _ = reviewed
    capfd.readouterr()
    assert main(["export", str(run)]) == 0
    assert (run / "export" / "data.jsonl").exists() and (run / "export" / "README.md").exists()


def test_a_failed_push_is_one_line_and_keeps_the_local_export(reviewed, tmp_path, capfd, monkeypatch):
    run, _ = reviewed
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here: the hub refuses, as it would offline
    capfd.readouterr()
    code = main(["export", str(run), "--out", str(tmp_path / "e"), "--push-to-hub", "someone/data"])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert "pushing to the hub repository 'someone/data' failed" in err
    assert (tmp_path / "e" / "data.jsonl").exists()


def test_an_unknown_format_lists_the_valid_ones(reviewed, capfd):
    run, _ = reviewed
    capfd.readouterr()
    assert main(["export", str(run), "--format", "csv"]) == 2
    _, err = capfd.readouterr()
    assert "jsonl, parquet, hf" in err
