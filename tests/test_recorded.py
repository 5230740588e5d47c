"""Bring your own teacher outputs: generate's `recorded` option, on real data with real completions.

PaLM-540B's rationales in ../shared/data (CommonsenseQA and e-SNLI), an OpenAI batch job's output file
and an earlier run's export enter as samples and flow through self-consistency and the filter (and, in
the slow test, training and evaluation) without one teacher call. The teacher is the scripted server, so
that any request would be seen; none may arrive.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.data import load_splits
from synthdistill.export import export_run
from synthdistill.parsing import parse_rationale
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.records import Record
from synthdistill.runs.folder import Manifest, read_records
from synthdistill.testing import ScriptedServer

PALM = "PaLM-540B (Distilling step-by-step)"
CQA_FIELDS = {"question": "question", "choices": "choices", "answer": "answer", "palm_cot": "palm_cot"}
ESNLI_FIELDS = {
    "question": "Premise: {{ premise }}\nHypothesis: {{ hypothesis }}",
    "premise": "premise",
    "hypothesis": "hypothesis",
    "answer": "label",
    "palm_cot": "palm_cot",
}
RECORDED_STAGES: list[Any] = [
    {"generate": {"recorded": {"field": "palm_cot", "model": PALM}}},
    {"self_consistency": {}},
    {"filter": {"critics": ["answer_match"]}},
]


@pytest.fixture
def server():
    with ScriptedServer() as server:
        server.responder = lambda messages, params, index: "A teacher call.\nThe answer is 0."
        yield server


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_pipeline(project: Path, server: ScriptedServer, data: dict[str, Any], stages: list[Any]) -> Path:
    pipeline = {
        "name": "rec",
        "seed": 0,
        "teacher": {"backend": "openai", "model": "scripted", "api_base": server.url, "max_retries": 0},
        "data": data,
        "stages": stages,
    }
    path = project / "rec.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return path


def stage_records(folder: str) -> list[Record]:
    return list(read_records(Path("outputs/rec") / folder / "records.jsonl"))


def assert_no_teacher_was_asked(manifest: Manifest, server: ScriptedServer, home: Path) -> None:
    assert manifest.status == "done"
    for stage in manifest.stages:
        assert stage.teacher.get("calls", 0) == 0 and stage.teacher.get("cache_hits", 0) == 0, stage
    assert manifest.teacher.calls == 0 and manifest.teacher.cache_hits == 0
    assert server.stats.requests == 0
    assert not (home / "cache").exists(), "no call cache may be opened, let alone written"


def run_recorded(project, server, path, fields):
    """The recorded pipeline on the first 45 items of a shared data file: (its path, the manifest)."""
    data = {"source": str(path), "fields": fields, "split": {"train": 40, "test": 5}}
    manifest = run_pipeline(
        load_pipeline(write_pipeline(project, server, data, RECORDED_STAGES)), RunOptions()
    )
    return str(path), manifest


def test_palm_rationales_in_a_cqa_column_flow_through_self_consistency_and_filter_without_a_call(
    project, server, shared_data, synthdistill_home
):
    source, manifest = run_recorded(project, server, shared_data / "cqa" / "train.jsonl", CQA_FIELDS)
    assert_no_teacher_was_asked(manifest, server, synthdistill_home)
    generated = stage_records("01-generate")
    assert len(generated) == 40
    for record in generated:
        assert record.provenance[-1].model_dump(exclude={"time"}) == {
            "stage": "generate",
            "teacher": "recorded",
            "model": PALM,
            "template": None,
            "template_hash": None,
            "params": {"file": source, "column": "palm_cot"},
        }
    # PaLM wrote rationales for the first 4,000 of 9,741 questions; the others are dropped and counted.
    unrecorded = [r for r in generated if "palm_cot" not in r.input]
    assert unrecorded and all(not r.kept for r in unrecorded)
    assert {r.verdicts["generate"].reason for r in unrecorded} == {
        "no recorded completion: palm_cot is empty"
    }
    assert manifest.stages[0].details["records_unrecorded"] == len(unrecorded)
    for record in (r for r in generated if r.kept):
        (sample,) = record.samples
        assert sample.text == record.input["palm_cot"] and sample.cache_key == ""
        assert sample.fields == parse_rationale(sample.text)
    kept = stage_records("03-filter")
    kept = [r for r in kept if r.kept]
    # PaLM's choice is right on about 73% of questions: answer_match keeps those, as PaLM wrote them.
    assert 0 < len(kept) < len([r for r in generated if r.kept])
    for record in kept:
        assert record.input["palm_cot"].startswith(record.rationale)
        assert record.provenance[0].teacher == "recorded" and record.verdicts["answer_match"].passed


def test_palm_rationales_for_esnli_are_labels_scored_without_a_call(
    project, server, shared_data, synthdistill_home
):
    source, manifest = run_recorded(project, server, shared_data / "esnli" / "valid.jsonl", ESNLI_FIELDS)
    assert_no_teacher_was_asked(manifest, server, synthdistill_home)
    generated = stage_records("01-generate")
    assert all(r.provenance[-1].params == {"file": source, "column": "palm_cot"} for r in generated)
    kept = [r for r in stage_records("03-filter") if r.kept]
    assert len(kept) >= 20
    for record in kept:
        palm = record.input["palm_cot"]
        assert palm.startswith(record.rationale) and palm.rstrip().endswith(
            f"Answer: {record.input['answer']}"
        )
        assert record.answer == record.input["answer"]


def test_a_list_of_recorded_completions_gives_several_samples_that_self_consistency_votes_on(
    project, server, shared_data, synthdistill_home
):
    # Each question gets PaLM's rationale twice and a rationale for another choice once.
    rows = [json.loads(line) for line in (shared_data / "cqa" / "train.jsonl").open()][:12]
    with (project / "cqa.jsonl").open("w") as handle:
        for row in rows:
            wrong = next(c for c in row["choices"] if c not in row["palm_cot"])
            other = f"Of the above choices, only {wrong} fits. So the answer is {wrong}."
            handle.write(json.dumps({**row, "palm_cot": [row["palm_cot"], other, row["palm_cot"]]}) + "\n")
    data = {"source": "cqa.jsonl", "fields": CQA_FIELDS, "split": {"train": 10, "test": 2}}
    manifest = run_pipeline(
        load_pipeline(write_pipeline(project, server, data, RECORDED_STAGES)), RunOptions()
    )

    assert_no_teacher_was_asked(manifest, server, synthdistill_home)
    generated = stage_records("01-generate")
    assert all(len(r.samples) == 3 for r in generated)
    assert manifest.stages[0].details["samples_parsed"] == 30
    voted = stage_records("02-self_consistency")
    # Identical rationales are handed on once; the majority is PaLM's.
    assert len(voted) == 10
    assert all(r.agreement == pytest.approx(2 / 3, abs=1e-3) for r in voted)
    assert all(r.input["palm_cot"][0].startswith(r.rationale) for r in voted)


def batch_line(custom_id: str, index: int, contents: list[str] | None, status: int = 200) -> dict[str, Any]:
    """One line of an OpenAI batch job's output file, as the Batch API documents it."""
    if status != 200:
        body: dict[str, Any] = {
            "error": {
                "message": "This model's maximum context length is 8192 tokens.",
                "type": "invalid_request_error",
            }
        }
    else:
        body = {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "created": 1711652795,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
                for i, text in enumerate(contents or [])
            ],
            "usage": {"prompt_tokens": 80, "completion_tokens": 40 * len(contents or []), "total_tokens": 0},
            "system_fingerprint": "fp_3bc1b5746c",
        }
    return {
        "id": f"batch_req_{index}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": f"req_{index}", "body": body},
        "error": None,
    }


@pytest.fixture
def batch_project(project, server, shared_data):
    """A pipeline over CQA joined to a batch output file that answers the questions PaLM answered.

    Yields (pipeline path, the training records, the CQA rows by id)."""
    rows = {row["id"]: row for row in map(json.loads, (shared_data / "cqa" / "train.jsonl").open())}
    data = {
        "source": str(shared_data / "cqa" / "train.jsonl"),
        "fields": {"id": "id", "question": "question", "choices": "choices", "answer": "answer"},
        "split": {"train": 30, "test": 5},
    }
    stages = [
        {"generate": {"recorded": {"file": "batch_output.jsonl", "model": "gpt-4o-mini"}}},
        *RECORDED_STAGES[1:],
    ]
    path = write_pipeline(project, server, data, stages)
    train, _ = load_splits(load_pipeline(path).config.data, seed=0, base_dir=project)
    answered = [r for r in train if "palm_cot" in rows[r.input["id"]]]
    failed, twice = answered[0].input["id"], answered[1].input["id"]
    with (project / "batch_output.jsonl").open("w") as handle:
        for index, (custom_id, row) in enumerate(rows.items()):
            if "palm_cot" not in row:
                continue
            contents = [row["palm_cot"]] * (2 if custom_id == twice else 1)
            line = batch_line(custom_id, index, contents, status=400 if custom_id == failed else 200)
            handle.write(json.dumps(line) + "\n")
    return path, train, rows, failed, twice


def test_an_openai_batch_output_file_is_joined_by_custom_id_without_a_call(
    batch_project, server, synthdistill_home
):
    path, train, rows, failed, twice = batch_project
    manifest = run_pipeline(load_pipeline(path), RunOptions())

    assert_no_teacher_was_asked(manifest, server, synthdistill_home)
    generated = {r.input["id"]: r for r in stage_records("01-generate")}
    assert set(generated) == {r.input["id"] for r in train}
    assert generated[failed].verdicts["generate"].reason == (
        "no parsable sample: the batch request failed (HTTP 400): This model's maximum context length is "
        "8192 tokens."
    )
    assert [s.completion_tokens for s in generated[twice].samples] == [40, 40]
    for custom_id, record in generated.items():
        assert record.provenance[-1].params == {
            "file": "batch_output.jsonl",
            "format": "openai_batch",
            "column": "response.body.choices",
            "join": "custom_id = id",
        }
        if "palm_cot" not in rows[custom_id]:
            assert record.verdicts["generate"].reason.startswith("no recorded completion: no row of")
        elif custom_id != failed:
            assert record.kept and record.samples[0].text == rows[custom_id]["palm_cot"]
            assert (record.samples[0].prompt_tokens, record.samples[0].finish_reason) == (80, "stop")
    kept = [r for r in stage_records("03-filter") if r.kept]
    assert kept and all(rows[r.input["id"]]["palm_cot"].startswith(r.rationale) for r in kept)


def test_replacing_the_recorded_file_reruns_generate_and_an_unchanged_one_does_not(batch_project):
    path, *_ = batch_project
    run_pipeline(load_pipeline(path), RunOptions())
    again = run_pipeline(load_pipeline(path), RunOptions())
    assert [s.status for s in again.stages] == ["skipped"] * 3

    batch = path.parent / "batch_output.jsonl"
    lines = batch.read_text().splitlines()
    batch.write_text("\n".join(reversed(lines)) + "\n")
    changed = run_pipeline(load_pipeline(path), RunOptions())
    assert [s.status for s in changed.stages] == ["done"] * 3
    assert "batch_output.jsonl" in changed.stages[0].reason


def test_an_earlier_runs_export_enters_as_samples_joined_by_question(
    project, server, shared_data, synthdistill_home
):
    source = str(shared_data / "cqa" / "train.jsonl")
    data = {"source": source, "fields": CQA_FIELDS, "split": {"train": 40, "test": 5}}
    path = write_pipeline(project, server, data, RECORDED_STAGES)
    run_pipeline(load_pipeline(path), RunOptions())
    exported = {r.input["question"]: r for r in stage_records("03-filter") if r.kept}
    export_run("outputs/rec", out=project / "palm-export")

    data["fields"] = {k: v for k, v in CQA_FIELDS.items() if k != "palm_cot"}
    stages = [
        {"generate": {"recorded": {"file": "palm-export/data.jsonl", "model": f"{PALM} via run rec"}}},
        *RECORDED_STAGES[1:],
    ]
    manifest = run_pipeline(load_pipeline(write_pipeline(project, server, data, stages)), RunOptions())

    assert_no_teacher_was_asked(manifest, server, synthdistill_home)
    generated = [r for r in stage_records("01-generate") if r.kept]
    assert {r.input["question"] for r in generated} == set(exported)
    for record in generated:
        assert record.provenance[-1].params["format"] == "export"
        assert record.rationale == exported[record.input["question"]].rationale


def test_a_csv_table_of_completions_is_joined_by_question_ignoring_whitespace(
    project, server, shared_data, synthdistill_home
):
    rows = [json.loads(line) for line in (shared_data / "cqa" / "train.jsonl").open()][:4000]
    with (project / "palm.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "completion"])
        for row in rows:
            writer.writerow([f"  {row['question']}\n", row["palm_cot"]])
    data = {
        "source": str(shared_data / "cqa" / "train.jsonl"),
        "fields": {"question": "question", "choices": "choices", "answer": "answer"},
        "split": {"train": 30, "test": 5},
    }
    recorded = {"file": "palm.csv", "column": "completion", "model": PALM}
    stages = [{"generate": {"recorded": recorded}}, *RECORDED_STAGES[1:]]
    manifest = run_pipeline(load_pipeline(write_pipeline(project, server, data, stages)), RunOptions())

    assert_no_teacher_was_asked(manifest, server, synthdistill_home)
    palm = {row["question"]: row["palm_cot"] for row in rows}
    generated = stage_records("01-generate")
    made = [r for r in generated if r.kept]
    assert made and all(r.samples[0].text == palm[r.input["question"]] for r in made)
    assert all(r.input["question"] not in palm for r in generated if not r.kept)
    assert generated[0].provenance[-1].params == {
        "file": "palm.csv",
        "format": "table",
        "column": "completion",
        "join": "question = question",
    }


def _chat_messages(project: Path, shared_data: Path) -> Path:
    """CQA rows whose palm_cot is a chat message rather than its text: a shape generate cannot read."""
    rows = [json.loads(line) for line in (shared_data / "cqa" / "train.jsonl").open()][:12]
    path = project / "messages.jsonl"
    with path.open("w") as handle:
        for row in rows:
            message = {"role": "assistant", "content": row["palm_cot"]}
            handle.write(json.dumps({**row, "palm_cot": message}) + "\n")
    return path


def _from_file(**recorded: str) -> Any:
    """An edit reading recorded completions from a file (joined by id) instead of the palm_cot column."""

    def edit(pipeline: dict[str, Any]) -> None:
        pipeline["data"]["fields"].pop("palm_cot")
        pipeline["stages"][0]["generate"]["recorded"] = {"model": "gpt-4o-mini", **recorded}

    return edit


BAD_CASES: list[tuple[str, Any, list[str]]] = [
    (
        "the recorded field is not mapped",
        lambda p: p["data"]["fields"].pop("palm_cot"),
        ["stages[0].generate.recorded.field", "'palm_cot' is not a field", "palm_cot: palm_cot"],
    ),
    (
        "the mapped column is missing from the data",
        lambda p: p["data"]["fields"].update(palm_cot="palm_cott"),
        ["data.fields.palm_cot", "column 'palm_cott' not found", "palm_cot"],
    ),
    (
        "a column of chat messages rather than texts",
        lambda p: p["data"].update(source="messages.jsonl"),
        ["stages[0].generate.recorded.field", "holds a dict", "a list of texts"],
    ),
    (
        "a sampling option beside recorded",
        lambda p: p["stages"][0]["generate"].update(temperature=0.7),
        ["stages[0].generate", "temperature", "recorded"],
    ),
    (
        "both a field and a file",
        lambda p: p["stages"][0]["generate"]["recorded"].update(file="batch.jsonl"),
        ["stages[0].generate.recorded", "either field", "file"],
    ),
    (
        "a file that is not there",
        _from_file(file="nowhere.jsonl"),
        ["stages[0].generate.recorded.file", "nowhere.jsonl", "not found"],
    ),
    (
        "batch rows that match nothing",
        _from_file(file="batch.jsonl"),
        ["stages[0].generate.recorded.file", "2 of 6 rows of batch.jsonl match no item", "'not-a-cqa-id-1'"],
    ),
    (
        "a table without its column",
        _from_file(file="batch.jsonl", format="table", column="completion"),
        ["stages[0].generate.recorded.file", "no 'question' to join on"],
    ),
]


@pytest.mark.parametrize(("case", "edit", "words"), BAD_CASES, ids=[case[0] for case in BAD_CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_recorded_inputs_are_one_line_and_exit_2_before_anything_runs(
    project, server, shared_data, capfd, case, edit, words, command
):
    rows = [json.loads(line) for line in (shared_data / "cqa" / "train.jsonl").open()][:4]
    ids = [row["id"] for row in rows] + ["not-a-cqa-id-1", "not-a-cqa-id-2"]
    with (project / "batch.jsonl").open("w") as handle:
        for index, custom_id in enumerate(ids):
            handle.write(json.dumps(batch_line(custom_id, index, ["So the answer is (a) x."])) + "\n")
    _chat_messages(project, shared_data)
    fields = {"id": "id", **CQA_FIELDS}
    data = {
        "source": str(shared_data / "cqa" / "train.jsonl"),
        "fields": fields,
        "split": {"train": 10, "test": 2},
    }
    path = write_pipeline(project, server, data, RECORDED_STAGES)
    pipeline = yaml.safe_load(path.read_text())
    edit(pipeline)
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    capfd.readouterr()

    code = main([command, str(path)])

    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("synthdistill: error: "), err
    assert "Traceback" not in err and out == ""
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert server.stats.requests == 0 and not (project / "outputs").exists()


@pytest.mark.slow
def test_recorded_rationales_train_the_student_and_it_is_evaluated(
    project, server, shared_data, synthdistill_home
):
    from synthdistill.student.prompts import target_text

    data = {
        "source": str(shared_data / "cqa" / "train.jsonl"),
        "fields": CQA_FIELDS,
        "split": {"train": 24, "test": 3},
    }
    stages = [
        *RECORDED_STAGES,
        {"train": {"max_steps": 2, "batch_size": 2, "max_length": 192}},
        {"evaluate": {"base": False, "max_tokens": 16, "plot": False}},
    ]
    manifest = run_pipeline(load_pipeline(write_pipeline(project, server, data, stages)), RunOptions())

    assert manifest.status == "done" and server.stats.requests == 0
    # Until evaluate, which asks the student (a local model, through the engine), nothing is called.
    assert all(stage.teacher.get("calls", 0) == 0 for stage in manifest.stages[:4])
    kept = [r for r in stage_records("03-filter") if r.kept]
    train = manifest.stages[3]
    assert train.status == "done" and train.details["steps"] == 2
    assert train.details["records"] == train.details["examples"] == len(kept) > 0
    assert (Path("outputs/rec") / train.folder / "model").is_dir()
    # What the student learnt from: PaLM's rationale, then the answer line.
    assert all(
        target_text(r).startswith(r.rationale) and r.input["palm_cot"].startswith(r.rationale) for r in kept
    )
    evaluate = manifest.stages[4]
    assert evaluate.status == "done" and evaluate.details["items"] == 3
