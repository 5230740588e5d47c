"""Evaluation: answer extraction on crafted outputs, bootstrap intervals, the judge's win rate, the plot,
and `synthdistill evaluate` on its own.

The model under evaluation is the scripted OpenAI-compatible server (as the teacher) wherever the test
is about reading answers, so that the outputs are known exactly; `evaluate` on a file runs the real
embedded model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthdistill.cli import main
from synthdistill.config import TeacherConfig, load_pipeline
from synthdistill.data import load_splits
from synthdistill.records import Record
from synthdistill.runs.folder import read_records
from synthdistill.stages.evaluate.stage import JudgeConfig, combine_judgments, judge_win_rate, parse_judgment
from synthdistill.stages.evaluate.stats import bootstrap_ci, paired_bootstrap
from synthdistill.teachers.cache import CallCache
from synthdistill.teachers.engine import build_engine
from synthdistill.templates import Templates
from synthdistill.testing.scripted_server import ScriptedServer

REPO = Path(__file__).resolve().parents[1]

PIPELINE = """
name: ev
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_retries: 0}}
data: {{source: builtin:arith, split: {{train: 2, test: 6}}}}
stages:
  - evaluate: {{base: false, teacher: true, max_tokens: 64}}
"""

# Crafted completions, one per test item in order, and whether each reads as the gold answer.
CRAFTED = [
    (lambda g: f"Adding gives {g}.\nThe answer is {g}.", True),
    (lambda g: f"The answer is ${g}.00", True),  # currency and trailing zeros are normalised
    (lambda g: f"Maybe {g + 1}.", False),  # no marker: the last number, which is wrong
    (lambda g: f"First {g}, then more. The answer is {g + 1}.", False),  # the marked answer wins
    (lambda g: "I cannot tell.", False),  # no answer at all
    (lambda g: f"{g}", True),  # a bare number
]


def test_accuracy_reads_crafted_outputs_as_the_critics_do(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer() as server:
        path = tmp_path / "ev.yaml"
        path.write_text(PIPELINE.format(url=server.url))
        _, test = load_splits(load_pipeline(path).config.data, seed=0, base_dir=tmp_path)
        golds = {r.input["question"]: (i, int(r.input["answer"])) for i, r in enumerate(test)}

        def responder(messages, params, index):
            content = messages[-1]["content"]
            i, gold = next(v for q, v in golds.items() if q in content)
            return CRAFTED[i][0](gold)

        server.responder = responder
        code = main(["run", str(path)])
    _, err = capfd.readouterr()
    assert code == 0, err
    manifest = json.loads(Path("outputs/ev/manifest.json").read_text())
    teacher = manifest["metrics"]["teacher"]
    assert (teacher["correct"], teacher["n"], teacher["accuracy"]) == (3, 6, 0.5)
    low, high = teacher["ci"]
    assert 0.0 <= low < 0.5 < high <= 1.0
    rows = list(read_records(Path("outputs/ev/01-evaluate/predictions-teacher.jsonl")))
    assert [r.verdicts["correct"].passed for r in rows] == [ok for _, ok in CRAFTED]
    assert rows[4].answer is None and rows[3].answer == str(golds[rows[3].input["question"]][1] + 1)
    assert Path("outputs/ev/01-evaluate/accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "95% CI" in err and "teacher" in err


def test_bootstrap_interval_is_seeded_and_brackets_the_accuracy():
    scores = [1.0] * 30 + [0.0] * 70
    low, high = bootstrap_ci(scores, seed=0)
    assert (low, high) == bootstrap_ci(scores, seed=0)
    assert low < 0.3 < high and high - low < 0.25
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)


def test_paired_bootstrap_sees_a_consistent_gain_that_separate_intervals_would_blur():
    base = [0.0] * 50 + [1.0] * 50
    student = [1.0] * 10 + [0.0] * 40 + [1.0] * 50  # right on everything base got, plus ten more
    gain = paired_bootstrap(student, base, seed=0)
    assert gain["diff"] == 0.1
    assert 0.0 < gain["ci"][0] <= 0.1 <= gain["ci"][1]
    assert gain["p_better"] == 1.0
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap([1.0], [1.0, 0.0])


def test_judgments_are_read_from_free_text():
    assert parse_judgment("A") == "A"
    assert parse_judgment("Answer B is better.") == "B"
    assert parse_judgment("Tie.") == "tie"
    assert parse_judgment("I cannot decide") is None
    assert combine_judgments("A", "B") == "win"  # the student is A first, then B
    assert combine_judgments("A", "A") == "tie"  # a judge that always picks A favours no model
    assert combine_judgments("B", None) == "loss"
    assert combine_judgments(None, None) is None


def judge_engine(server: ScriptedServer, tmp_path: Path):
    teacher = TeacherConfig(backend="openai", model="judge", api_base=server.url, max_retries=0)
    return build_engine(teacher, CallCache(tmp_path / "calls.sqlite"), "cpu")


def test_judge_win_rate_asks_both_orders_and_counts_ties(tmp_path):
    prompts = [Record.from_input({"question": f"Explain item {i}."}) for i in range(4)]
    # The student's answer is the good one on items 0 and 1, the base's on 2; both are equal on 3.
    answers = {
        "student": ["GOOD one", "GOOD two", "poor three", "same four"],
        "base": ["poor one", "poor two", "GOOD three", "same four"],
    }

    def prefers_good(messages, params, index):
        text = messages[-1]["content"]
        a = text.split("Answer A:")[1].split("Answer B:")[0]
        b = text.split("Answer B:")[1]
        return "A" if "GOOD" in a else "B" if "GOOD" in b else "It is a tie."

    templates = Templates([REPO / "prompts"])
    with ScriptedServer(responder=prefers_good) as server:
        engine = judge_engine(server, tmp_path)
        result = judge_win_rate(prompts, answers, engine, templates, JudgeConfig(), folder=tmp_path)
        assert server.stats.by_path["/v1/chat/completions"] == 8  # four prompts, two orders each
        engine.close()
    assert (result["wins"], result["ties"], result["losses"], result["n"]) == (2, 1, 1, 4)
    assert result["win_rate"] == (2 + 0.5) / 4
    rows = [json.loads(line) for line in (tmp_path / "judgments.jsonl").read_text().splitlines()]
    assert [row["outcome"] for row in rows] == ["win", "win", "loss", "tie"]

    with ScriptedServer(responder=lambda messages, params, index: "A") as server:
        engine = judge_engine(server, tmp_path / "biased")
        biased = judge_win_rate(prompts, answers, engine, templates, JudgeConfig())
        engine.close()
    assert (biased["wins"], biased["ties"], biased["losses"]) == (0, 4, 0)


def test_evaluate_command_rejects_a_bad_field_or_column_in_one_line(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "test.jsonl"
    data.write_text(json.dumps({"problem": "What is 2 + 2?", "solution": "4"}) + "\n")
    code = main(["evaluate", "--model", "smollm2-135m", "--data", str(data), "--field", "question"])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and "FIELD=COLUMN" in err
    args = ["evaluate", "--model", "smollm2-135m", "--data", str(data), "--field", "question=nope"]
    code = main(args)
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and "'nope' not found" in err and "problem" in err


@pytest.mark.slow
def test_evaluate_command_measures_a_model_on_a_file(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "test.jsonl"
    rows = [{"problem": f"What is {a} + {a}?", "solution": str(2 * a)} for a in (1, 2, 3)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["evaluate", "--model", "smollm2-135m", "--data", str(data), "--field", "question=problem"]
    args += ["--field", "answer=solution", "--max-tokens", "12", "--out", "ev"]
    code = main(args)
    out, err = capfd.readouterr()
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["student"]["n"] == 3 and 0 <= metrics["student"]["correct"] <= 3
    assert "base" not in metrics
    assert json.loads(Path("ev/metrics.json").read_text()) == metrics
    assert len(list(read_records(Path("ev/predictions-student.jsonl")))) == 3
    assert Path("ev/accuracy.png").is_file()


@pytest.mark.slow
def test_evaluate_command_measures_an_adapter_folder_over_its_base(tmp_path, monkeypatch, capfd):
    from model_helpers import make_adapter

    monkeypatch.chdir(tmp_path)
    adapter = make_adapter(tmp_path / "student")
    data = tmp_path / "test.jsonl"
    rows = [{"problem": f"What is {a} + {a}?", "solution": str(2 * a)} for a in (4, 7)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["evaluate", "--model", str(adapter), "--base", "smollm2-135m", "--data", str(data)]
    args += ["--field", "question=problem", "--field", "answer=solution", "--max-tokens", "12", "--out", "ev"]
    code = main(args)
    out, err = capfd.readouterr()
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["student"]["n"] == 2 and metrics["base"]["n"] == 2

    def answers(label: str) -> list[tuple[str, str]]:
        rows = read_records(Path(f"ev/predictions-{label}.jsonl"))
        return [(r.samples[0].text, r.samples[0].cache_key) for r in rows]

    # The adapter was applied over its base: other answers, under cache keys of its own.
    student, base = answers("student"), answers("base")
    assert [text for text, _ in student] != [text for text, _ in base]
    assert not {key for _, key in student} & {key for _, key in base}


def test_evaluate_command_help_names_its_options(capfd):
    code = main(["evaluate", "--help"])
    out, _ = capfd.readouterr()
    assert code == 0
    for option in ("--model", "--data", "--field", "--base", "--template", "--limit", "--out"):
        assert option in out
