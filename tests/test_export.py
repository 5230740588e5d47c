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


def test_an_existing_file_as_out_is_refused_in_one_line(reviewed, tmp_path, capfd):
    run, _ = reviewed
    target = tmp_path / "taken.jsonl"
    target.write_text("mine\n")
    capfd.readouterr()
    assert main(["export", str(run), "--out", str(target)]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert f"--out {target} is an existing file; choose another --out, or remove the file" in err
    assert target.read_text() == "mine\n"


def test_a_folder_with_other_files_as_out_is_refused_and_left_as_it_was(reviewed, tmp_path, capfd):
    run, _ = reviewed
    target = tmp_path / "project"
    target.mkdir()
    (target / "README.md").write_text("# my project\n")
    capfd.readouterr()
    assert main(["export", str(run), "--out", str(target)]) == 2
    _, err = capfd.readouterr()
    assert (
        err.count("\n") == 1 and f"--out {target} is a folder that holds files an export did not write" in err
    )
    assert "choose another --out" in err and "remove that folder" in err
    assert [p.name for p in target.iterdir()] == ["README.md"]
    assert (target / "README.md").read_text() == "# my project\n"


def test_an_earlier_export_is_replaced_whole(reviewed, tmp_path, capfd):
    run, _ = reviewed
    target = tmp_path / "e"
    assert main(["export", str(run), "--out", str(target)]) == 0
    assert main(["export", str(run), "--out", str(target), "--format", "hf"]) == 0
    assert not (target / "data.jsonl").exists()  # no file of the earlier format stays
    assert (target / "state.json").exists() and (target / "README.md").exists()
    assert main(["export", str(run), "--out", str(target), "--format", "parquet"]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "train.parquet"]
    # An earlier export with a file added by hand is no longer only an export.
    (target / "notes.txt").write_text("keep me")
    capfd.readouterr()
    assert main(["export", str(run), "--out", str(target)]) == 2
    assert (target / "notes.txt").read_text() == "keep me" and (target / "train.parquet").exists()


def test_an_empty_folder_is_a_fine_out(reviewed, tmp_path):
    run, _ = reviewed
    (tmp_path / "empty").mkdir()
    assert main(["export", str(run), "--out", str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / "data.jsonl").exists()


def test_the_dataset_card_names_no_local_folder(reviewed, tmp_path, monkeypatch, capfd):
    run, _ = reviewed
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the pipeline file lies outside the working directory
    assert main(["export", str(run), "--out", str(tmp_path / "card-check")]) == 0
    card = (tmp_path / "card-check" / "README.md").read_text()
    assert str(tmp_path) not in card and "pipeline `r.yaml`" in card
