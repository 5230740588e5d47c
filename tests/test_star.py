"""The star stage (STaR's outer loop): rounds sampled by the newest student, resumable after a kill.

The first teacher is a scripted OpenAI-compatible server that answers every problem right; the rounds'
sampler, trainee and evaluated model are the real embedded SmolLM2, trained for one step a round, so the
assertions hold whatever the tiny student writes: counts add up, each round samples with the student
the round before it left, the run's student is the best round's, and a kill loses no finished round.
"""

from __future__ import annotations

import itertools
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
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.runs.folder import read_records
from synthdistill.testing.scripted_server import ScriptedServer

REPO = Path(__file__).resolve().parents[1]
PROBLEMS = [
    (a, b) for a, b in ((3, 4), (5, 2), (6, 1), (2, 2), (7, 1), (4, 4), (1, 8), (9, 0), (3, 3), (2, 6))
]
PIPELINE = """
name: star
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
student: {{model: smollm2-135m}}
data: {{source: sums.jsonl, split: {{train: 6, test: 4}}}}
stages:
  - generate: {{template: ask.j2, n: 1, temperature: 0, max_tokens: 32}}
  - self_consistency: {{target: gold, keep: agreeing}}
  - filter: {{critics: [answer_match]}}
  - train: {{template: ask.j2, max_steps: 1, batch_size: 2, max_length: 96, lora: {{r: 4}}}}
  - star:
      rounds: {rounds}
      stop_when_flat: false
      generate: {{template: ask.j2, n: 2, temperature: 0.8, max_tokens: 24}}
      evaluate: {{template: ask.j2, max_tokens: 16, base: false, plot: false}}
"""


def right_answers(messages, params, index):
    """The first teacher: every problem's sum, in the format the critics read."""
    a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", messages[-1]["content"]).groups())
    return f"{a} + {b} = {a + b}.\nThe answer is {a + b}."


def project(tmp_path: Path, url: str, rounds: int) -> Path:
    rows = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in PROBLEMS]
    (tmp_path / "sums.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "ask.j2").write_text('{{ question }} End with "The answer is N."')
    path = tmp_path / "star.yaml"
    path.write_text(PIPELINE.format(url=url, rounds=rounds))
    return path


@pytest.mark.slow
def test_star_rounds_resume_after_a_kill_and_continue_when_rounds_are_raised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer(responder=right_answers) as server:
        path = project(tmp_path, server.url, rounds=2)
        child = subprocess.Popen(
            [sys.executable, "-m", "synthdistill", "run", str(path)], cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        star = tmp_path / "outputs/star/05-star"
        deadline = time.monotonic() + 600
        while not (star / "round-2").exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert (star / "round-2").exists(), "the run never reached round 2"
        manifest = run_pipeline(load_pipeline(path), RunOptions())
        assert manifest.status == "done"
        # Round 1 finished before the kill: every one of its steps is skipped on the resume.
        round_1 = json.loads((star / "round-1" / "manifest.json").read_text())
        assert [e["name"] for e in round_1] == ["generate", "self_consistency", "filter", "train", "evaluate"]
        assert {e["status"] for e in round_1} == {"skipped"}
        rounds = manifest.stages[-1].details["rounds"]
        assert [r["round"] for r in rounds] == [0, 1, 2]

        # Raising rounds continues from the last finished round.
        path.write_text(PIPELINE.format(url=server.url, rounds=3))
        requests = server.stats.requests
        manifest = run_pipeline(load_pipeline(path), RunOptions())
        assert server.stats.requests == requests, "the first teacher is not asked again"
    assert manifest.status == "done"
    details = manifest.stages[-1].details
    rounds = details["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    for k in (1, 2):
        assert {e["status"] for e in json.loads((star / f"round-{k}" / "manifest.json").read_text())} == {
            "skipped"
        }
    first_pool = manifest.stages[2].records_out
    union = first_pool
    for previous, entry in itertools.pairwise(rounds):
        # Each round samples every training problem with the student the round before it left.
        assert entry["questions"] == 6
        assert entry["sampled_by"] == previous["student"]
        assert entry["student"] == str(
            Path("outputs/star/05-star") / f"round-{entry['round']}/04-train/model"
        )
        assert 0 <= entry["solved"] <= 6 and entry["kept"] >= entry["solved"]
        union += entry["new"]
        assert entry["union"] == union
        assert entry["accuracy"] is not None
        generated = read_records(star / f"round-{entry['round']}/01-generate/records.jsonl")
        assert {r.provenance[-1].model for r in generated} == {previous["student"]}
    # The run's student is the round with the best accuracy (the earliest among equals).
    best = max(rounds, key=lambda r: (r["accuracy"], -r["round"]))
    assert details["best_round"] == best["round"]
    assert manifest.artifacts["student_model"] == best["student"]
    assert manifest.stages[-1].records_out == (first_pool if best["round"] == 0 else best["union"])


def test_a_star_stage_needs_a_train_stage_before_it_and_gold_answers(tmp_path, capfd):
    from synthdistill.cli import main

    path = tmp_path / "p.yaml"
    path.write_text("name: t\nstages:\n  - generate: {n: 1}\n  - star: {rounds: 1}\n")
    assert main(["validate", str(path)]) == 2
    assert "stages[1].star: star needs a student to work on; put a train stage before it" in (
        capfd.readouterr().err
    )
    (tmp_path / "q.jsonl").write_text('{"question": "What is 1 + 1?"}\n{"question": "What is 2 + 2?"}\n')
    path.write_text(
        "name: t\ndata: {source: q.jsonl, split: {train: 1, test: 1}}\nstages:\n  - generate: {n: 1}\n"
        "  - train: {max_steps: 1}\n  - star: {rounds: 1}\n"
    )
    assert main(["validate", str(path)]) == 2
    err = capfd.readouterr().err
    assert "stages[2].star: star keeps what reaches the data's gold answers, and the data gives none" in err
    assert "Traceback" not in err


def test_the_shipped_star_pipeline_validates(capfd):
    from synthdistill.cli import main

    assert main(["validate", str(REPO / "pipelines" / "star.yaml")]) == 0
    assert "star" in capfd.readouterr().out


def test_the_star_rounds_table_shows_what_each_round_solved_kept_and_scored():
    import io

    from rich.console import Console

    from synthdistill.cli.report import rounds_tables
    from synthdistill.runs.folder import Manifest, StageManifest

    rounds = [
        {"round": 0, "student": "s0", "accuracy": 0.36},
        {"round": 1, "questions": 100, "solved": 41, "kept": 97, "rationalized": 0, "new": 60, "union": 140,
         "student": "s1", "accuracy": 0.4},
        {"round": 2, "questions": 100, "solved": 44, "kept": 103, "rationalized": 0, "new": 21, "union": 161,
         "student": "s2", "accuracy": 0.39, "stopped": "accuracy 0.39 is no higher than round 1's, 0.4"},
    ]  # fmt: skip
    stage = StageManifest(name="star", folder="06-star", details={"rounds": rounds})
    (table,) = rounds_tables(Manifest(name="r", pipeline="p.yaml", stages=[stage]))
    console = Console(file=io.StringIO(), width=200)
    console.print(table)
    text = console.file.getvalue()
    assert "rounds of 06-star" in text and "the student handed in" in text
    assert "41/100" in text and "140" in text and "0.400" in text
    assert "no higher than round 1's, 0.4" in text
