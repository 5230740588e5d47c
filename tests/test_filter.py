"""The filter stage: critics found by name, folder or dotted path, dropped records kept with their reasons,
per-critic statistics in the manifest and the terminal, and broken critics reported in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from critic_helpers import record

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.data import load_splits
from synthdistill.errors import ConfigError, CriticError
from synthdistill.runs.folder import read_records
from synthdistill.stages.filter import FilterConfig, run
from synthdistill.testing.scripted_server import ScriptedServer

PIPELINE = """
name: f
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
data: {{source: builtin:arith, split: {{train: 10, test: 4}}}}
stages:
  - generate: {{n: 2, temperature: 0.7}}
  - self_consistency: {{keep: all}}
  - filter: {{critics: {critics}}}
"""

USER_CRITICS = """
from synthdistill.critics import BaseCritic
from synthdistill.records import Verdict


class EvenAnswer(BaseCritic):
    name = "even_answer"

    def score(self, records):
        return [Verdict(passed=int(r.answer) % 2 == 0, reason=f"answer {r.answer}") for r in records]


class Explodes(BaseCritic):
    name = "explodes"

    def score(self, records):
        raise ValueError("boom")


class Miscounts(BaseCritic):
    name = "miscounts"

    def score(self, records):
        return [Verdict(passed=True)]
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project: pipelines/f.yaml, critics/checks.py, and a teacher right on sample 0, off by one on 1."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "critics").mkdir()
    (tmp_path / "critics" / "checks.py").write_text(USER_CRITICS)
    with ScriptedServer() as server:

        def write(critics: str) -> Path:
            path = tmp_path / "pipelines" / "f.yaml"
            path.write_text(PIPELINE.format(url=server.url, critics=critics))
            return path

        path = write("[answer_match]")
        train, _ = load_splits(load_pipeline(path).config.data, seed=0, base_dir=path.parent)
        gold = {r.input["question"]: int(r.input["answer"]) for r in train}

        def responder(messages, params, i):
            answer = gold[messages[-1]["content"]] + i
            return f"Adding gives {answer}.\nThe answer is {answer}."

        server.responder = responder
        yield write


def test_filter_keeps_dropped_records_flagged_with_critic_and_reason_and_reports_per_critic(project, capfd):
    path = project("[answer_match, even_answer, {exact_dup: {field: answer}}]")
    assert main(["run", str(path)]) == 0
    _, err = capfd.readouterr()
    records = list(read_records(Path("outputs/f/03-filter/records.jsonl")))
    assert len(records) == 20  # every input is written, kept or not
    wrong = [r for r in records if r.dropped_by == "answer_match"]
    assert len(wrong) == 10 and all(not r.kept and r.answer != r.gold for r in wrong)
    assert all(r.verdicts["answer_match"].reason.startswith("answer ") for r in wrong)
    assert all("even_answer" not in r.verdicts for r in wrong)  # a dropped record meets no later critic
    odd = [r for r in records if r.dropped_by == "even_answer"]
    assert odd and all(int(r.answer) % 2 == 1 and r.verdicts["answer_match"].passed for r in odd)
    repeats = [r for r in records if r.dropped_by == "exact_dup"]
    kept = [r for r in records if r.kept]
    assert len({r.answer for r in kept}) == len(kept)
    assert all(r.verdicts["exact_dup"].reason.startswith("repeats record") for r in repeats)

    manifest = json.loads(Path("outputs/f/manifest.json").read_text())
    filter_stage = next(s for s in manifest["stages"] if s["name"] == "filter")
    stats = filter_stage["details"]["critics"]
    assert list(stats) == ["answer_match", "even_answer", "exact_dup"]
    assert stats["answer_match"] | {"seconds": 0} == {"seen": 20, "passed": 10, "dropped": 10, "seconds": 0}
    assert stats["even_answer"]["seen"] == 10
    assert stats["even_answer"]["dropped"] == len(odd)
    assert stats["exact_dup"]["seen"] == 10 - len(odd)
    assert stats["exact_dup"]["passed"] == len(kept) == filter_stage["records_out"]
    assert all(stat["seconds"] >= 0 for stat in stats.values())
    assert "critics of 03-filter" in err
    assert re.search(r"answer_match\W+20\W+10\W+10\W", err)


def test_filter_finds_a_critic_by_dotted_path(project, tmp_path, monkeypatch):
    (tmp_path / "dotted_critics").mkdir()
    (tmp_path / "dotted_critics" / "__init__.py").write_text(USER_CRITICS)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = project("[answer_match, dotted_critics:EvenAnswer]")
    assert main(["run", str(path)]) == 0
    records = list(read_records(Path("outputs/f/03-filter/records.jsonl")))
    assert {r.dropped_by for r in records} <= {None, "answer_match", "even_answer"}
    assert all(r.kept == (r.answer == r.gold and int(r.answer) % 2 == 0) for r in records)


def test_a_critic_that_raises_is_one_line_naming_it_and_the_record(project, capfd):
    path = project("[answer_match, explodes]")
    assert main(["run", str(path)]) == 2
    _, err = capfd.readouterr()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("synthdistill: error:")]
    assert len(lines) == 1
    assert "critic 'explodes' raised ValueError: boom on a batch starting at record " in lines[0]
    assert "fix the critic or remove it from the filter" in lines[0]


def test_a_critic_returning_the_wrong_number_of_verdicts_is_named(project, capfd):
    path = project("[miscounts]")
    assert main(["run", str(path)]) == 2
    _, err = capfd.readouterr()
    assert "critic 'miscounts' returned 1 verdicts for 20 records (batch starting at record " in err
    assert "Traceback" not in err


def test_an_unknown_critic_is_a_config_error_with_file_key_and_valid_names(project):
    path = project("[answer_match, no_such_critic]")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: stages[2].filter.critics: unknown critic 'no_such_critic'")
    assert "valid critics: answer_match," in message and "even_answer" in message and "near_dup" in message


def test_the_validator_finds_critics_beside_the_pipeline_given_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "elsewhere"
    (folder / "critics").mkdir(parents=True)
    (folder / "critics" / "mine.py").write_text(USER_CRITICS)
    with pytest.raises(ValueError, match="unknown critic 'even_answer'"):
        FilterConfig.model_validate({"critics": ["even_answer"]})
    config = FilterConfig.model_validate({"critics": ["even_answer"]}, context={"base_dir": folder})
    assert config.critics == ["even_answer"]


def test_a_critic_named_twice_is_refused():
    with pytest.raises(ValueError, match="critic 'length' is named twice"):
        FilterConfig.model_validate({"critics": [{"length": {"max_words": 9}}, {"length": {"min_words": 2}}]})


def test_filter_run_on_records_marks_the_dropping_critic(tmp_path, make_ctx):
    ctx = make_ctx(tmp_path, options="{critics: [answer_match, answer_rationale_consistency], batch_size: 2}")
    records = [
        record("a", gold="12", rationale="7 + 5 = 12.", answer="12"),
        record("b", gold="12", rationale="7 + 5 = 13.", answer="12"),
        record("c", gold="9", rationale="4 + 4 = 8.", answer="8"),
    ]
    out = list(run(records, ctx))
    assert [(r.kept, r.dropped_by) for r in out] == [
        (True, None),
        (False, "answer_rationale_consistency"),
        (False, "answer_match"),
    ]
    assert ctx.details["critics"]["answer_rationale_consistency"]["seen"] == 2


def test_a_critic_error_about_a_field_names_the_critic_and_the_record(tmp_path, make_ctx):
    ctx = make_ctx(tmp_path, options="{critics: [{regex: {field: input.topic, pattern: x}}]}")
    with pytest.raises(
        CriticError, match=r"critic 'regex' on a batch starting at record \w+: record \w+ has no"
    ):
        list(run([record("a")], ctx))


@pytest.mark.parametrize(
    "critic", ["{exact_dup: {field: input.question}}", "{near_dup: {field: input.question, method: rouge_l}}"]
)
def test_a_resumed_filter_remembers_what_its_dedup_critics_passed_before_the_stop(tmp_path, make_ctx, critic):
    from synthdistill.runs.folder import RecordWriter

    options = f"{{critics: [{critic}]}}"
    ctx = make_ctx(tmp_path, options=options)
    before = list(run([record("Liam has 7 marbles and finds 5 more."), record("Sofia sells 9 rolls.")], ctx))
    with RecordWriter(ctx.folder / "records.jsonl.partial") as writer:
        writer.write(before)  # what the stage had written when it was killed
    again = make_ctx(tmp_path, options=options)
    again.written = ctx.folder / "records.jsonl.partial"  # as the step runner hands a resumed stage
    resumed = list(run([record("liam has 7 marbles and finds 5 more."), record("Ana has 4 boxes.")], again))
    assert [r.kept for r in before] == [True, True]
    assert [r.kept for r in resumed] == [False, True]
