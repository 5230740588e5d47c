"""The adversarial stage (Lion): one round end to end against a scripted teacher, with exact counts.

The teacher, the referee and the instruction writer are a scripted OpenAI-compatible server whose replies
are fixed by the prompt; the student is the real embedded SmolLM2, trained for one step. The referee
decides by the question (its "hard" items score the teacher 9 and the student 3, in whichever order they
are shown), so the counts do not depend on what the tiny student writes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthdistill.config import load_pipeline
from synthdistill.data import load_splits
from synthdistill.growth.expressions import as_answer, evaluate
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.records import Record, stable_hash
from synthdistill.runs.folder import read_records
from synthdistill.stages.adversarial.discriminate import _refereed, parse_scores
from synthdistill.testing.scripted_server import ScriptedServer

REPO = Path(__file__).resolve().parents[1]
POOL = [
    "Explain the hard idea of entropy to a child.",
    "Write a short poem about autumn leaves.",
    "Describe the hard proof that there are infinitely many primes.",
    "Give three tips for a job interview.",
    "Summarise the hard plot of War and Peace in two sentences.",
    "Name a fruit that is yellow.",
]
TEST = ["Suggest a name for a pet turtle.", "What is the capital of France?"]
PIPELINE = """
name: adv
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
student: {{model: smollm2-135m}}
data: {{source: pool.jsonl, split: {{train: 6, test: 2}}}}
stages:
  - generate: {{template: ask.j2, n: 1, temperature: 0, parse: text, max_tokens: 32}}
  - train: {{template: ask.j2, target: response, max_steps: 1, batch_size: 2, max_length: 64, lora: {{r: 4}}}}
  - adversarial:
      rounds: {rounds}
      stop_when_flat: false
      probe: null
      per_round: 6
      easy_share: 0.34
      student_max_tokens: 6
      parse_retries: 0
      novelty: {{embedding: null}}
      answer: {{template: ask.j2, n: 1, temperature: 0, parse: text, max_tokens: 32}}
      evaluate: false
"""
# What the instruction writer returns for the i-th request of round 1, told by the seed the stage gives it.
WRITTEN = [
    "New prompt: Explain how tides work on a planet with two moons.",
    "New prompt: {seed}",
    "New prompt: Rewrite the #Given Prompt# so it is better.",
    "",
    "New prompt: Give three tips for a job interview at a bank.",
    "New prompt: List three ways to save water at home during a drought.",
]
ROUND_1_SEEDS = {int(stable_hash(0, 1, i, length=8), 16): i for i in range(len(WRITTEN))}


def teacher(first_wins: bool = False):
    """The scripted teacher: answers, referee scores and new instructions, all fixed by the prompt."""

    def respond(messages, params, index):
        text = messages[-1]["content"]
        if "[Question]" in text:
            if first_wins:
                return "9 3"
            question = re.search(r"\[Question\]\n(.*)\n", text).group(1)
            first = re.search(r"Assistant 1's Answer\]\n(.*)\n", text).group(1)
            teacher_first = first.startswith("TEACHER")
            if "hard" not in question:
                return "7 7"
            return "9 3" if teacher_first else "3 9"
        if "#Given Prompt#" in text:
            seed = re.search(r"#Given Prompt#:\n(.*)\n", text).group(1)
            # Round 1's i-th request is answered with WRITTEN[i]; later rounds draw from it by their seed.
            i = ROUND_1_SEEDS.get(params["seed"], params["seed"])
            return WRITTEN[i % len(WRITTEN)].format(seed=seed)
        return f"TEACHER answer to: {text}"

    return respond


def project(tmp_path: Path, url: str, rounds: int = 1) -> Path:
    rows = [{"question": q} for q in POOL + TEST]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ask.j2").write_text("{{ question }}")
    path = tmp_path / "adv.yaml"
    path.write_text(PIPELINE.format(url=url, rounds=rounds))
    return path


def test_parse_scores_reads_the_two_numbers_however_they_are_written():
    assert parse_scores("8 6") == (8.0, 6.0)
    assert parse_scores("Assistant 1: 7.5\nAssistant 2: 9") == (7.5, 9.0)
    assert parse_scores("Both are fine: 10 and 4, because ...") == (10.0, 4.0)
    assert parse_scores("I cannot decide") is None


def test_a_referee_that_always_prefers_the_first_answer_comes_out_even():
    verdict = _refereed("9 3", "9 3", gap=1.0)
    assert verdict.passed and verdict.score == 0.0
    assert "teacher 6, student 6" in verdict.reason
    # A referee that follows the answers, not their order, marks the item hard.
    hard = _refereed("9 3", "3 9", gap=1.0)
    assert not hard.passed and hard.score == 6.0


@pytest.mark.slow
def test_one_round_counts_hard_new_and_dropped_exactly_and_links_every_new_item_to_its_seed(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer(responder=teacher()) as server:
        pipeline = load_pipeline(project(tmp_path, server.url))
        manifest = run_pipeline(pipeline, RunOptions())
        check_first_round(tmp_path, pipeline, manifest)
        # A referee that always prefers the first answer it is shown; a new referee setting re-runs the
        # stage (asking anew) while the stages before it are skipped.
        server.responder = teacher(first_wins=True)
        overrides = ["adversarial.referee_max_tokens=25"]
        again = run_pipeline(load_pipeline(tmp_path / "adv.yaml", overrides), RunOptions())
    # After the order swap, every item comes out even: nothing is hard.
    assert [s.status for s in again.stages] == ["skipped", "skipped", "done"]
    (even,) = next(s for s in again.stages if s.name == "adversarial").details["rounds"]
    assert even["hard"] == 0 and even["new_hard"] == 0 and even["new_easy"] == 2
    folder = tmp_path / "outputs" / "adv" / "03-adversarial" / "round-1"
    judged = list(read_records(folder / "02-discriminate" / "records.jsonl"))
    assert {r.verdicts["discriminate"].reason for r in judged} == {"teacher 6, student 6 (gap 0, hard at 1)"}


def check_first_round(tmp_path, pipeline, manifest):
    """The exact counts, files and seed links of the scripted round."""
    assert manifest.status == "done"
    train, _ = load_splits(pipeline.config.data, seed=0, base_dir=tmp_path)
    hard = sum("hard" in r.input["question"] for r in train)
    assert 0 < hard < 6
    stage = next(s for s in manifest.stages if s.name == "adversarial")
    (round_1,) = stage.details["rounds"]
    assert round_1["pool"] == 6 and round_1["probed"] == 6
    assert round_1["hard"] == hard and round_1["hard_share"] == round(hard / 6, 4)
    assert (round_1["new"], round_1["new_hard"], round_1["new_easy"]) == (6, 4, 2)
    assert round_1["dropped"] == {"grow: degenerate": 2, "grow: not novel": 1, "grow: unparsable": 1}
    assert round_1["added"] == 2
    assert stage.records_out == 8

    folder = tmp_path / "outputs" / "adv" / "03-adversarial" / "round-1"
    steps = {e["name"]: e for e in json.loads((folder / "manifest.json").read_text())}
    assert list(steps) == ["imitate", "discriminate", "grow", "generate", "train"]
    pool = {r.id: r for r in read_records(folder / "02-discriminate" / "records.jsonl")}
    added = [
        r for r in read_records(tmp_path / "outputs/adv/03-adversarial/records.jsonl") if r.id not in pool
    ]
    assert sorted(r.input["question"] for r in added) == [
        "Explain how tides work on a planet with two moons.",
        "List three ways to save water at home during a drought.",
    ]
    for record in added:
        seed = record.input["seed"]
        assert record.parent_id == seed["id"] and seed["round"] == 1
        assert seed["question"] == pool[seed["id"]].input["question"]
        # A new "hard" instruction was seeded by an item the student failed, an "easy" one by one it passed.
        assert pool[seed["id"]].verdicts["discriminate"].passed == (seed["operator"] == "easy")
        assert record.rationale == f"TEACHER answer to: {record.input['question']}"
    grown = list(read_records(folder / "03-grow" / "records.jsonl"))
    reasons = {r.verdicts["grow"].reason.split(":")[0] for r in grown if not r.kept}
    assert reasons == {"degenerate", "not novel", "unparsable"}
    assert manifest.artifacts["student_model"].endswith("round-1/05-train/model")


@pytest.mark.slow
def test_a_round_killed_after_its_training_resumes_without_training_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer(responder=teacher()) as server:
        path = project(tmp_path, server.url, rounds=2)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen(
            [sys.executable, "-m", "synthdistill", "run", str(path)], cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        round_2 = tmp_path / "outputs/adv/03-adversarial/round-2"
        deadline = time.monotonic() + 600
        while not round_2.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert round_2.exists(), "the run never reached round 2"
        before = server.stats.requests
        manifest = run_pipeline(load_pipeline(path), RunOptions())
    assert manifest.status == "done"
    round_1 = json.loads((round_2.parent / "round-1" / "manifest.json").read_text())
    assert [e["status"] for e in round_1] == ["skipped"] * 5
    rounds = next(s for s in manifest.stages if s.name == "adversarial").details["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[1]["pool"] == 8
    # Round 1's instructions, answers and judgments came from the cache; only round 2 asked anew.
    assert server.stats.requests - before <= 2 * 8 + 6 + 6


def test_the_expression_critic_trusts_only_an_expression_that_solves_the_problem():
    from synthdistill.critics.expression import Expression

    def item(question, expression, answer):
        return Record.from_input({"question": question, "expression": expression, "answer": answer})

    records = [
        item("Ann has 3 bags of 4 apples. How many apples?", "3 * 4", "12"),
        item("Ann has 3 bags of 4 apples. How many apples?", "3 * 5", "15"),
        item("Ann has 3 bags of 4 apples. How many apples?", "3 * 4", "13"),
        item("Ann shares 7 apples among 2 friends. How many each?", "7 / 2", "3.5"),
        item("Ann has 3 apples and eats 4.", "3 - 4", "-1"),
        item("Ann has 3 apples.", "__import__('os')", "0"),
        Record.from_input({"question": "An original item", "answer": "1"}),
    ]
    verdicts = Expression().score(records)
    assert [v.passed for v in verdicts] == [True, False, False, False, False, False, False]
    assert "5, not in the problem" in verdicts[1].reason
    assert "gold answer is 13" in verdicts[2].reason
    assert "not a whole number" in verdicts[3].reason
    assert "below zero" in verdicts[4].reason
    assert "only numbers" in verdicts[5].reason
    assert verdicts[6].reason == "no expression"


@pytest.mark.parametrize("name", ["lion.yaml", "lion-arith.yaml"])
def test_the_shipped_lion_pipelines_validate(name, capfd):
    from synthdistill.cli import main

    assert main(["validate", str(REPO / "pipelines" / name)]) == 0
    assert "adversarial" in capfd.readouterr().out


@pytest.mark.slow
def test_the_arithmetic_lion_pipeline_runs_two_rounds_on_smollm2(tmp_path, monkeypatch):
    """The shipped lion-arith.yaml, tiny: every new problem's gold comes from its checked expression."""
    monkeypatch.chdir(tmp_path)
    sizes = {
        "generate.max_tokens": 64, "train.max_steps": 1, "evaluate.max_tokens": 16,
        "adversarial.probe": 4, "adversarial.per_round": 4, "adversarial.stop_when_flat": False,
        "adversarial.student_max_tokens": 16, "adversarial.answer.max_tokens": 64,
        "adversarial.answer.n": 2,
    }  # fmt: skip
    overrides = [f"{key}={value}" for key, value in sizes.items()]
    pipeline = load_pipeline(REPO / "pipelines" / "lion-arith.yaml", overrides)
    manifest = run_pipeline(pipeline, RunOptions(limit=12))
    assert manifest.status == "done"
    rounds = next(s for s in manifest.stages if s.name == "adversarial").details["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    for entry in rounds:
        assert entry["probed"] == 4 and entry["new"] == 4
        assert sum(entry["dropped"].values()) >= entry["new"] - entry["added"] >= 0
    grown = [
        r for r in read_records(Path("outputs/lion-arith/05-adversarial/records.jsonl")) if "seed" in r.input
    ]
    assert len(grown) == sum(r["added"] for r in rounds)
    for record in grown:
        assert record.input["answer"] == as_answer(evaluate(record.input["expression"]))
    assert "student" in manifest.metrics


def test_an_adversarial_stage_without_a_train_stage_before_it_is_refused_by_validate(tmp_path, capfd):
    from synthdistill.cli import main

    path = tmp_path / "p.yaml"
    path.write_text("name: t\nstages:\n  - generate: {n: 1}\n  - adversarial: {rounds: 1}\n")
    assert main(["validate", str(path)]) == 2
    assert "stages[1].adversarial: adversarial needs a student to work on; put a train stage before it" in (
        capfd.readouterr().err
    )
