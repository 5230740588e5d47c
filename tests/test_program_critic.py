"""Programs of thought: generate's `parse: program`, the program_executes critic, the shipped template.

The teacher is the scripted server; each question's reply is a program written for it, so every way a
program can fail is traced from its request to the dropped record and its reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.critics import build_critic
from synthdistill.parsing import parse_program, program_of
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.records import Record
from synthdistill.runs.folder import read_records
from synthdistill.sandbox import run_program
from synthdistill.teachers.engine import ParseError
from synthdistill.templates import Templates
from synthdistill.testing.scripted_server import ScriptedServer

PROMPTS = Path(__file__).resolve().parents[1] / "prompts"


def fenced(code: str) -> str:
    return f"```python\n{code}\n```"


def record(program: str | None, answer: str | None = "12", gold: str | None = "12") -> Record:
    fields = {"question": "Liam has 7 marbles and finds 5 more. How many?"}
    if gold is not None:
        fields["answer"] = gold
    rationale = fenced(program) if program is not None else "7 + 5 = 12."
    return Record.from_input(fields).model_copy(update={"rationale": rationale, "answer": answer})


CRITIC_CASES = [
    # (case, record, passed, words of the reason)
    ("prints the stated and gold answer", record("print(7 + 5)"), True, ["prints 12", "gold"]),
    ("prints 12.0", record("print((7 + 5) / 1)"), True, ["prints 12.0"]),
    ("no gold answer", record("print(7 + 5)", gold=None), True, ["no gold answer"]),
    (
        "prints other than the stated answer",
        record("print(7 + 6)", answer="13"),
        False,
        ["prints 13", "gold answer is 12"],
    ),
    ("stated answer differs", record("print(7 + 5)", answer="11"), False, ["record's answer is 11"]),
    ("states no answer", record("print(7 + 5)", answer=None), False, ["states none"]),
    ("raises", record("print(7 / 0)"), False, ["program failed", "ZeroDivisionError", "line 1"]),
    ("imports os", record("import os\nprint(12)"), False, ["program failed", "blocked: import of os"]),
    ("reads a file", record("print(open('/etc/hostname').read())"), False, ["read of /etc/hostname"]),
    ("prints nothing", record("answer = 12"), False, ["printed nothing"]),
    ("no program", record(None), False, ["no ```python block in rationale"]),
]


@pytest.mark.parametrize(("case", "item", "passed", "words"), CRITIC_CASES, ids=[c[0] for c in CRITIC_CASES])
def test_program_executes_runs_the_program_and_says_why_it_fails(case, item, passed, words):
    (verdict,) = build_critic("program_executes").score([item])
    assert verdict.passed is passed, verdict
    for word in words:
        assert word in verdict.reason, (word, verdict.reason)


def test_program_executes_may_pass_a_record_without_a_program_and_judges_a_batch_in_order():
    critic = build_critic({"program_executes": {"missing_program": True, "workers": 2}})
    batch = [record("print(12)"), record(None), record("print(1/0)"), record("print(6 * 2)")]
    assert [v.passed for v in critic.score(batch)] == [True, True, False, True]


def test_parse_program_takes_the_first_block_and_a_stated_answer():
    text = "Let me compute.\n```python\nx = 7 + 5\nprint(x)\n```\nThe answer is 12.\n"
    text += "```python\nprint(0)\n```"
    assert parse_program(text) == {
        "program": "x = 7 + 5\nprint(x)",
        "rationale": "```python\nx = 7 + 5\nprint(x)\n```",
        "stated_answer": "12",
    }
    assert program_of("```py\nprint(1)\n```") == "print(1)"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("7 + 5 = 12. The answer is 12.", "no program"),
        ("```python\nx = 7 + 5\nprint(", "not closed"),
        ("```python\n\n```", "empty"),
        ("```\nprint(12)\n```", "no program"),
    ],
)
def test_parse_program_refuses_a_completion_without_a_whole_program(text, words):
    with pytest.raises(ParseError, match=words):
        parse_program(text)


def test_every_few_shot_program_of_the_shipped_template_prints_its_answer():
    messages = Templates([PROMPTS]).render_messages("pot_rationale.j2", {"question": "Q?"})
    turns = [
        (m["content"], messages[i + 1]["content"]) for i, m in enumerate(messages[:-1]) if m["role"] == "user"
    ]
    assert len(turns) >= 3 and messages[-1]["content"] == "Q?"
    for question, reply in turns:
        result = run_program(parse_program(reply)["program"])
        numbers = [int(word) for word in question.replace("?", " ").split() if word.isdigit()]
        assert result.ok and int(result.answer) not in numbers, (question, result)


# Replies by question: a right program, a wrong one, and one of each way a program fails.
PROGRAMS = {
    0: fenced("a = {a}\nb = {b}\nprint(a + b)"),
    1: fenced("print({a} - {b})"),
    2: fenced("import os\nprint(os.listdir('/'))"),
    3: fenced("while True:\n    pass"),
    4: "I think it is {a}. The answer is {a}.",
    5: fenced("print({a} + {b})") + "\nThe answer is 1000.",
}
PIPELINE = """
name: pot
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
data: {{source: problems.jsonl, split: {{train: 6, test: 0}}}}
stages:
  - generate: {{template: pot_rationale.j2, parse: program, n: 1, sandbox: {{cpu_seconds: 1}}}}
  - filter: {{critics: [program_executes]}}
"""


def reply(messages, params, index):
    question = messages[-1]["content"]
    number, a, b = (int(word) for word in question.rstrip("?").split()[1::2])
    return PROGRAMS[number].format(a=a, b=b)


@pytest.fixture
def pot_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Problem i: add i + 3 to 10 i; the gold answer is 11 i + 3.
    problems = [
        {"question": f"Problem {i} add {i + 3} to {10 * i}?", "answer": str(11 * i + 3)} for i in range(6)
    ]
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    with ScriptedServer() as server:
        server.responder = reply
        path = tmp_path / "pot.yaml"
        path.write_text(PIPELINE.format(url=server.url))
        yield path, server


def test_parse_program_runs_each_sample_in_the_sandbox_and_drops_what_fails_with_the_reason(pot_project):
    path, server = pot_project
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    generated = _by_problem("outputs/pot/01-generate/records.jsonl")
    kept = {number for number, r in generated.items() if r.kept}
    assert kept == {"0", "1"}
    assert generated["0"].answer == "3" and generated["0"].rationale == fenced("a = 3\nb = 0\nprint(a + b)")
    reasons = {number: generated[number].verdicts["generate"].reason for number in "2345"}
    assert "blocked: import of os" in reasons["2"]
    assert "CPU time" in reasons["3"]
    assert "no program" in reasons["4"]
    assert "the program printed 58, but the text says 1000" in reasons["5"]
    assert manifest.stages[0].details["parse_rate"] == round(2 / 6, 4)
    filtered = _by_problem("outputs/pot/02-filter/records.jsonl")
    # Question 1's program runs but subtracts: its answer is its own, not the gold one.
    assert filtered["0"].kept and not filtered["1"].kept
    assert "prints -6, but the gold answer is 14" in filtered["1"].verdicts["program_executes"].reason
    assert server.stats.requests == 6


def _by_problem(path: str) -> dict[str, Record]:
    return {r.input["question"].split()[1]: r for r in read_records(Path(path))}


def test_a_pot_template_without_a_program_block_is_one_line_and_exit_2_before_anything_is_sent(
    pot_project, capfd
):
    path, server = pot_project
    comment = "{# a ```python\nblock in a comment shows nothing #}\n"
    (path.parent / "cot.j2").write_text(comment + "Solve: {{ question }}")
    text = path.read_text().replace("template: pot_rationale.j2", "template: cot.j2")
    path.write_text(text)
    for command in ("validate", "run"):
        capfd.readouterr()
        assert main([command, str(path)]) == 2
        out, err = capfd.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err and out == "", err
        for word in ("pot.yaml", "stages[0].generate.template", "cot.j2", "```python"):
            assert word in lines[0], (word, lines[0])
    assert server.stats.requests == 0
    assert not Path("outputs/pot").exists()


def test_recorded_programs_are_run_in_the_sandbox_as_sampled_ones_are(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [
        {"question": "What is 2 plus 3?", "answer": "5", "written": fenced("print(2 + 3)")},
        {"question": "What is 4 plus 4?", "answer": "8", "written": fenced("import socket\nprint(8)")},
    ]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "p.yaml").write_text(
        "name: rec\nseed: 0\ndata: {source: rows.jsonl, split: {train: 2, test: 0}}\n"
        "stages:\n  - generate: {parse: program, recorded: {field: written, model: a book}}\n"
    )
    run_pipeline(load_pipeline(tmp_path / "p.yaml"), RunOptions())
    done = {r.input["answer"]: r for r in read_records(Path("outputs/rec/01-generate/records.jsonl"))}
    assert done["5"].kept and done["5"].answer == "5"
    assert not done["8"].kept and "blocked: import of socket" in done["8"].verdicts["generate"].reason
