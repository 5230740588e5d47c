"""The pairs stage: preference pairs from a crafted run (recorded teacher completions, so no teacher call),
with their counts and provenance; a judge through the scripted server, whose position bias gives ties and
not pairs; the embedded student answering for teacher_over_student; the pairs in dataset/, the export and
the review page; and the bad inputs refused before anything runs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.errors import ConfigError
from synthdistill.export import export_run
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.records import Record
from synthdistill.runs.dataset import REJECTED, pair_texts
from synthdistill.runs.folder import Manifest, read_records
from synthdistill.testing import ScriptedServer

# Each question's recorded teacher completions: right and wrong ones, all right, all wrong.
QUESTIONS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "7",
     ["3 + 4 = 7.\nThe answer is 7.", "3 + 4 = 8.\nThe answer is 8.", "3 and 4 make 7.\nThe answer is 7."]),
    ("A box holds 6 pens. How many pens are in 2 boxes?", "12",
     ["6 * 2 = 12.\nThe answer is 12.", "6 * 2 = 12.\nThe answer is 12."]),
    ("Sam had 10 cards and gave away 4. How many are left?", "6",
     ["10 - 4 = 5.\nThe answer is 5.", "10 + 4 = 14.\nThe answer is 14."]),
    ("What is 9 + 1?", "10", ["9 + 1 = 11.\nThe answer is 11.", "9 + 1 = 10.\nThe answer is 10."]),
]  # fmt: skip


def write_project(folder: Path, stages: list[Any], teacher: dict[str, Any] | None = None) -> Path:
    """A pipeline over QUESTIONS (data.jsonl) whose first stage records their completions as samples."""
    rows = [{"question": q, "answer": a, "completions": c} for q, a, c in QUESTIONS]
    (folder / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    pipeline = {
        "name": "pairs",
        "seed": 0,
        "data": {
            "source": "data.jsonl",
            "fields": {"question": "question", "answer": "answer", "completions": "completions"},
            "split": {"train": len(rows), "test": 0},
        },
        "stages": [{"generate": {"recorded": {"field": "completions", "model": "crafted"}}}, *stages],
    }
    if teacher is not None:
        pipeline["teacher"] = teacher
    path = folder / "pairs.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return path


def stage_records(run: Path, folder: str) -> list[Record]:
    return list(read_records(run / folder / "records.jsonl"))


def assert_sides_differ(pairs: list[Record]) -> None:
    for pair in pairs:
        texts = pair_texts(pair)
        assert texts is not None, pair.id
        chosen, rejected = texts
        assert " ".join(chosen.split()) != " ".join(rejected.split())


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_correct_over_incorrect_pairs_right_samples_over_wrong_ones_with_provenance(project):
    path = write_project(project, [{"pairs": {"method": "correct_over_incorrect", "per_question": 2}}])
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    run = project / "outputs" / "pairs"
    records = stage_records(run, "02-pairs")
    kept = [r for r in records if r.kept]
    # Tom: two distinct right samples over the one wrong one; 9 + 1: its right sample over its wrong one.
    assert len(kept) == 3 and manifest.stages[1].records_out == 3
    assert manifest.stages[1].details == {
        "method": "correct_over_incorrect",
        "questions": 4,
        "pairs": 3,
        "dropped": {"no wrong answer among the samples": 1, "no right answer among the samples": 1},
    }
    assert_sides_differ(kept)
    for pair in kept:
        entry = pair.provenance[-1]
        assert entry.stage == "pairs" and pair.provenance[0].model == "crafted"
        assert entry.params["method"] == "correct_over_incorrect"
        chosen, rejected = entry.params["chosen"], entry.params["rejected"]
        assert chosen["correct"] is True and rejected["correct"] is False
        assert chosen["model"] == rejected["model"] == "recorded/crafted"
        assert chosen["answer"] == pair.answer == pair.input["answer"] != rejected["answer"]
        assert pair.input[REJECTED].endswith(f"The answer is {rejected['answer']}.")
        assert pair.verdicts["pairs"].passed and pair.parent_id is not None
    nine = next(p for p in kept if p.input["question"] == "What is 9 + 1?")
    # The right sample came second: chosen is the right one whatever the order.
    assert pair_texts(nine) == ("9 + 1 = 10.\nThe answer is 10.", "9 + 1 = 11.\nThe answer is 11.")
    dropped = [r for r in records if not r.kept]
    assert {r.dropped_by for r in dropped} == {"pairs"} and REJECTED not in dropped[0].input

    from datasets import load_from_disk

    dataset = load_from_disk(str(run / "dataset"))
    assert {"prompt", "chosen", "rejected"} <= set(dataset.column_names) and len(dataset) == 3
    rows = {row["chosen"]: row for row in dataset}
    assert rows["9 + 1 = 10.\nThe answer is 10."]["rejected"] == "9 + 1 = 11.\nThe answer is 11."
    assert rows["9 + 1 = 10.\nThe answer is 10."]["prompt"] == "What is 9 + 1?"
    exported = export_run(run, format="jsonl")
    lines = [json.loads(line) for line in (exported / "data.jsonl").read_text().splitlines()]
    assert sorted(row["chosen"] for row in lines) == sorted(rows)
    assert "`chosen`, `rejected`" in (exported / "README.md").read_text()


def test_a_pair_edited_in_review_to_equal_its_rejected_side_is_left_out(project):
    path = write_project(project, [{"pairs": {"method": "correct_over_incorrect"}}])
    run_pipeline(load_pipeline(path), RunOptions())
    run = project / "outputs" / "pairs"
    nine = next(
        r for r in stage_records(run, "02-pairs") if r.kept and r.input["question"] == "What is 9 + 1?"
    )
    entry = {
        "record_id": nine.id,
        "stage": "02-pairs",
        "action": "edit",
        "rationale": "9 + 1 = 11.",
        "answer": "11",
    }
    (run / "review.jsonl").write_text(json.dumps(entry) + "\n")
    exported = export_run(run, format="jsonl")
    rows = [json.loads(line) for line in (exported / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["prompt"].startswith("Tom has 3 apples")


def judge_pipeline(project: Path, server: ScriptedServer, **options: Any) -> Path:
    teacher = {"backend": "openai", "model": "scripted", "api_base": server.url, "max_retries": 0}
    return write_project(project, [{"pairs": {"method": "judge", "judge": {}, **options}}], teacher)


def test_a_judge_always_preferring_position_a_yields_ties_not_pairs(project):
    with ScriptedServer(responder=lambda m, p, i: json.dumps({"winner": "A", "reason": "first"})) as server:
        manifest = run_pipeline(load_pipeline(judge_pipeline(project, server)), RunOptions())
        bodies = server.stats.bodies
    records = stage_records(project / "outputs" / "pairs", "02-pairs")
    # Three questions have two distinct answers to compare; each pair is asked in both orders.
    assert len(bodies) == 6
    assert manifest.stages[1].details["pairs"] == 0
    judged = [r for r in records if "llm_judge" in r.verdicts]
    assert len(judged) == 3 and not any(r.kept for r in records)
    for record in judged:
        verdict = record.verdicts["llm_judge"]
        assert record.dropped_by == "llm_judge" and not verdict.passed and verdict.score == 0.5
        assert verdict.reason.startswith("ties after both orders (first order: A, swapped: B)")
    assert manifest.stages[1].details["dropped"] == {"llm_judge": 3, "fewer than two answers to compare": 1}


def test_a_judge_that_tells_right_from_wrong_in_both_orders_gives_the_right_answer_as_chosen(project):
    def right_wins(messages, params, index):
        prompt = messages[-1]["content"]
        first = prompt.split("Answer A:", 1)[1].split("Answer B:", 1)[0]
        second = prompt.split("Answer B:", 1)[1]
        right = {"7", "6", "10"}
        winner = (
            "A"
            if any(f"is {n}." in first for n in right)
            else "B"
            if any(f"is {n}." in second for n in right)
            else "tie"
        )
        return json.dumps({"winner": winner, "reason": "right sum"})

    with ScriptedServer(responder=right_wins) as server:
        run_pipeline(load_pipeline(judge_pipeline(project, server, per_question=3)), RunOptions())
    records = stage_records(project / "outputs" / "pairs", "02-pairs")
    kept = [r for r in records if r.kept]
    assert_sides_differ(kept)
    # Tom: each right answer over the wrong one (the two right ones tie); 9 + 1: the right one, though it
    # came second; Sam: its two wrong answers tie.
    assert sorted((r.input["question"][:3], r.answer) for r in kept) == [
        ("Tom", "7"),
        ("Tom", "7"),
        ("Wha", "10"),
    ]
    ties = [r for r in records if r.dropped_by == "llm_judge"]
    assert sorted(r.input["question"][:3] for r in ties) == ["Sam", "Tom"]
    nine = next(r for r in kept if r.input["question"] == "What is 9 + 1?")
    entry = nine.provenance[-1]
    assert entry.teacher == "openai" and entry.model == "scripted" and entry.template == "judge_pairwise.j2"
    assert entry.params["share_of_a"] == 0.0 and entry.params["chosen"]["from"] == "teacher sample 1"
    assert nine.verdicts["llm_judge"].score == 1.0
    assert "A is teacher sample 0, B is teacher sample 1" in nine.verdicts["llm_judge"].reason


BAD = [
    ({"pairs": {"method": "judge"}}, "method judge needs `judge`"),
    ({"pairs": {"method": "teacher_over_student"}}, "no train stage comes before pairs; put a train stage"),
    (
        {"pairs": {"method": "correct_over_incorrect", "records_from": "filter"}},
        "names no stage before pairs",
    ),
    ({"pairs": {"method": "judge", "judge": {"mode": "score"}}}, "judge.mode is set by the pairs stage"),
    ({"pairs": {"method": "judge", "judge": {"temperature": 9}}}, "judge.temperature:"),
    ({"pairs": {"method": "correct_over_incorrect", "candidates": "student"}}, "read by method judge only"),
    ({"pairs": {"method": "best_of_n"}}, "stages[1].pairs.method"),
]


@pytest.mark.parametrize(("stage", "message"), BAD, ids=[message[:30] for _, message in BAD])
def test_bad_pairs_options_are_one_line_and_exit_2_before_anything_runs(project, capfd, stage, message):
    path = write_project(project, [stage])
    with pytest.raises(ConfigError):
        load_pipeline(path)
    code = main(["run", str(path)])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (project / "outputs").exists()


@pytest.mark.slow
def test_teacher_over_student_pairs_the_teachers_right_answer_over_the_students_own(project):
    stages = [
        {"self_consistency": {"keep": "all"}},
        {"filter": {"critics": ["answer_match"]}},
        {"pairs": {"method": "teacher_over_student", "model": "smollm2-135m", "max_tokens": 48}},
    ]
    manifest: Manifest = run_pipeline(load_pipeline(write_project(project, stages)), RunOptions())
    records = stage_records(project / "outputs" / "pairs", "04-pairs")
    details = manifest.stages[3].details
    assert details["questions"] == 3 and details["student"] == "smollm2-135m"  # Sam's has no right answer
    kept = [r for r in records if r.kept]
    assert_sides_differ(kept)
    assert len(kept) == details["pairs"] and len(records) == 3  # one pair a question (per_question: 1)
    for record in records:
        entry = record.provenance[-1]
        assert entry.stage == "pairs" and entry.model == "smollm2-135m" and entry.template == "cot_student.j2"
        student = record.samples[0]
        assert student.cache_key and record.input[REJECTED] == student.text.strip()
        assert entry.params["rejected"]["from"] == "student" and entry.params["chosen"]["correct"] is True
        # A student that already reaches the gold answer gives no pair (skip_correct).
        assert record.kept == (entry.params["rejected"]["correct"] is False), record.verdicts
    again = run_pipeline(load_pipeline(write_project(project, stages)), RunOptions())
    assert again.stages[3].status == "skipped"

    # The judge between the teacher's answer and the same student's (answered from the call cache now): a
    # judge that always prefers the teacher's, in either position, keeps every pair with the teacher chosen.
    def teacher_wins(messages, params, index):
        prompt = messages[-1]["content"]
        first = prompt.split("Answer A:", 1)[1].split("Answer B:", 1)[0].strip()
        teacher = any(first in completions for _, _, completions in QUESTIONS)
        return json.dumps({"winner": "A" if teacher else "B", "reason": "teacher"})

    with ScriptedServer(responder=teacher_wins) as server:
        judged = {"method": "judge", "candidates": "student", "model": "smollm2-135m", "max_tokens": 48}
        teacher = {"backend": "openai", "model": "scripted", "api_base": server.url, "max_retries": 0}
        stages[-1] = {"pairs": {**judged, "judge": {"teacher": teacher}}}
        manifest = run_pipeline(load_pipeline(write_project(project, stages)), RunOptions())
    records = stage_records(project / "outputs" / "pairs", "04-pairs")
    assert manifest.stages[3].teacher["calls"] == len(server.stats.bodies) == 2 * len(records)
    assert all(r.kept and r.provenance[-1].params["chosen"]["from"] == "teacher" for r in records)
    assert_sides_differ(records)


def test_the_review_page_shows_a_pair_chosen_beside_rejected(project):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found under CI=true; bash .ci/install-browser installs it")
        pytest.skip("chromium not found: bash .ci/install-browser")
    from synthdistill.review.server import ReviewServer

    path = write_project(project, [{"pairs": {"method": "correct_over_incorrect"}}])
    run_pipeline(load_pipeline(path), RunOptions())
    run = project / "outputs" / "pairs"
    with ReviewServer(run) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(server.url + "#stage=02-pairs&kept=true")
        tab.wait_for_selector("body[data-ready='1']")
        tab.wait_for_selector(".record .pair")
        cards = tab.locator(".record")
        assert cards.count() == 2
        card = cards.filter(has_text="What is 9 + 1?")
        assert card.locator(".side.chosen pre").inner_text() == "9 + 1 = 10.\nThe answer is 10."
        assert card.locator(".side.rejected pre").inner_text() == "9 + 1 = 11.\nThe answer is 11."
        assert "wrong" in card.locator(".side.rejected .side-info").inner_text()
        assert card.locator("dl.input dt", has_text="rejected").count() == 0
        card.locator("button.reject").click()
        card.locator(".reason").fill("not a useful pair")
        card.locator(".reject-form button").click()
        card.locator(".decision.rejected").wait_for()
        browser.close()
    rows = (export_run(run, format="jsonl") / "data.jsonl").read_text().splitlines()
    assert len(rows) == 1 and "Tom has 3 apples" in rows[0]


def test_a_named_teacher_judges_the_pairs_and_the_pipelines_teacher_is_not_asked(project):
    with (
        ScriptedServer(responder=lambda m, p, i: json.dumps({"winner": "A", "reason": "-"})) as default,
        ScriptedServer(responder=lambda m, p, i: json.dumps({"winner": "A", "reason": "-"})) as judge,
    ):
        path = judge_pipeline(project, default, judge={"teacher": "referee"})
        pipeline = yaml.safe_load(path.read_text())
        pipeline["teachers"] = {"referee": {"backend": "openai", "model": "referee", "api_base": judge.url}}
        path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
        run_pipeline(load_pipeline(path), RunOptions())
        assert (default.stats.requests, judge.stats.requests) == (0, 6)
    records = stage_records(project / "outputs" / "pairs", "02-pairs")
    judged = [r for r in records if "llm_judge" in r.verdicts]
    assert len(judged) == 3 and {r.provenance[-1].model for r in judged} == {"referee"}
