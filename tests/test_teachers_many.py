"""Several teachers in one pipeline: named under `teachers:`, asked together by generate, counted apart.

Each teacher is a scripted OpenAI-compatible server (teacher a answers every problem right; teacher b
agrees with it on the first half of the problems and answers one more on the rest), so each count below
is exact: who wrote each sample, the calls each teacher got, which answer a weighted vote picks and which
records a quorum of teachers keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthdistill.cli import main
from synthdistill.cli.report import summary_table
from synthdistill.config import load_pipeline
from synthdistill.critics.teacher_agreement import TeacherAgreement
from synthdistill.data import load_splits
from synthdistill.errors import ConfigError
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.records import Record, Sample
from synthdistill.runs.folder import read_records
from synthdistill.testing.scripted_server import ScriptedServer

TRAIN = 6


def _teacher(url: str, model: str) -> dict[str, Any]:
    return {"backend": "openai", "model": model, "api_base": url, "max_concurrency": 4, "max_retries": 0}


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ScriptedServer, ...]]:
    """Servers a (right on every problem) and b (right on the first half, one more on the rest)."""
    monkeypatch.chdir(tmp_path)
    data = {"source": "builtin:arith", "split": {"train": TRAIN, "test": 0}}
    config = load_pipeline(_write(tmp_path, {"name": "x", "data": data, "stages": ["generate"]}))
    train, _ = load_splits(config.config.data, seed=0, base_dir=tmp_path)
    gold = {r.input["question"]: int(r.input["answer"]) for r in train}
    agreed = {r.input["question"] for r in train[: TRAIN // 2]}

    def right(messages: list[dict[str, Any]], params: dict[str, Any], index: int) -> str:
        answer = gold[messages[-1]["content"]]
        return f"Working it out gives {answer}.\nThe answer is {answer}."

    def half_right(messages: list[dict[str, Any]], params: dict[str, Any], index: int) -> str:
        question = messages[-1]["content"]
        answer = gold[question] + (0 if question in agreed else 1)
        return f"Working it out gives {answer}.\nThe answer is {answer}."

    with ScriptedServer() as a, ScriptedServer() as b:
        a.responder, b.responder = right, half_right
        a.gold, a.agreed = gold, agreed  # type: ignore[attr-defined]
        yield a, b


def _write(folder: Path, pipeline: dict[str, Any], name: str = "many.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return path


def _pipeline(a: ScriptedServer, b: ScriptedServer, *stages: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": "many",
        "seed": 0,
        "teachers": {"a": _teacher(a.url, "model-a"), "b": _teacher(b.url, "model-b")},
        "data": {"source": "builtin:arith", "split": {"train": TRAIN, "test": 0}},
        "stages": [
            {
                "generate": {
                    "template": "cot_rationale.j2",
                    "n": 2,
                    "temperature": 0.7,
                    "teachers": ["a", "b"],
                }
            },
            *stages,
        ],
        **extra,
    }


def test_each_sample_names_its_teacher_and_a_record_holds_every_teachers_samples_in_order(servers, tmp_path):
    a, b = servers
    manifest = run_pipeline(load_pipeline(_write(tmp_path, _pipeline(a, b))), RunOptions())
    records = list(read_records(tmp_path / "outputs/many/01-generate/records.jsonl"))
    assert len(records) == TRAIN and all(r.kept for r in records)
    for record in records:
        assert [s.teacher for s in record.samples] == ["a", "a", "b", "b"]
        own = [p for p in record.provenance if p.stage == "generate"]
        assert [(p.params["teacher_name"], p.model, p.teacher) for p in own] == [
            ("a", "model-a", "openai"),
            ("b", "model-b", "openai"),
        ]
        answers = [s.fields["answer"] for s in record.samples]
        gold = str(a.gold[record.input["question"]])  # type: ignore[attr-defined]
        assert answers[:2] == [gold, gold]
    # Calls are counted per teacher, exactly as each server saw them, and add up to the stage's.
    stage = manifest.stages[0]
    by_teacher = stage.details["by_teacher"]
    assert by_teacher["a"]["calls"] == a.stats.requests > 0
    assert by_teacher["b"]["calls"] == b.stats.requests > 0
    assert by_teacher["a"]["calls"] + by_teacher["b"]["calls"] == stage.teacher["calls"]
    tokens = sum(t["prompt_tokens"] + t["completion_tokens"] for t in by_teacher.values())
    assert tokens == stage.teacher["prompt_tokens"] + stage.teacher["completion_tokens"]


def test_the_summary_table_shows_a_row_per_teacher(servers, tmp_path):
    a, b = servers
    manifest = run_pipeline(load_pipeline(_write(tmp_path, _pipeline(a, b))), RunOptions())
    table = summary_table(manifest)
    stages = list(table.columns[0].cells)
    calls = list(table.columns[4].cells)
    assert stages[:3] == ["01-generate", "  a", "  b"]
    assert calls[1:3] == [str(a.stats.requests), str(b.stats.requests)]


def test_a_one_teacher_run_shows_no_teacher_rows_and_writes_no_teacher_on_samples(servers, tmp_path):
    a, _ = servers
    pipeline = {
        "name": "one",
        "teacher": _teacher(a.url, "model-a"),
        "data": {"source": "builtin:arith", "split": {"train": TRAIN, "test": 0}},
        "stages": [{"generate": {"template": "cot_rationale.j2", "n": 2}}],
    }
    manifest = run_pipeline(load_pipeline(_write(tmp_path, pipeline)), RunOptions())
    assert "by_teacher" not in manifest.stages[0].details
    assert list(summary_table(manifest).columns[0].cells)[:2] == ["01-generate", "total"]
    text = (tmp_path / "outputs/one/01-generate/records.jsonl").read_text()
    assert '"teacher":' not in text.replace('"teacher":"openai"', "")


def test_self_consistency_votes_across_teachers_and_weights_can_flip_the_majority(servers, tmp_path):
    a, b = servers
    # A third teacher on b's server answers as b does: 4 samples of b's answer against a's 2.
    pipeline = _pipeline(a, b, {"self_consistency": {}})
    pipeline["teachers"]["c"] = _teacher(b.url, "model-c")
    pipeline["stages"][0]["generate"]["teachers"] = "all"
    path = _write(tmp_path, pipeline)
    gold: dict[str, int] = a.gold  # type: ignore[attr-defined]
    agreed: set[str] = a.agreed  # type: ignore[attr-defined]

    run_pipeline(load_pipeline(path), RunOptions())
    plain = _answers(tmp_path / "outputs/many/02-self_consistency/records.jsonl")
    assert plain == {q: str(g if q in agreed else g + 1) for q, g in gold.items()}

    # Weighing a's votes 3 to 1 (6 against 4) makes its answer the majority where b and c disagree.
    weighted = ["name=weighted", "self_consistency.teacher_weights={a: 3.0}"]
    sent = a.stats.requests + b.stats.requests
    run_pipeline(load_pipeline(path, weighted), RunOptions())
    assert a.stats.requests + b.stats.requests == sent  # the call cache answered every sample
    records = list(read_records(tmp_path / "outputs/weighted/02-self_consistency/records.jsonl"))
    assert _answers(tmp_path / "outputs/weighted/02-self_consistency/records.jsonl") == {
        q: str(g) for q, g in gold.items()
    }
    disputed = [r for r in records if r.input["question"] not in agreed]
    assert {r.agreement for r in disputed} == {0.6}  # a's weight 6 of 10


def test_teacher_agreement_with_quorum_2_keeps_only_what_both_teachers_gave(servers, tmp_path):
    a, b = servers
    stages = [
        {"self_consistency": {"keep": "all"}},
        {"filter": {"critics": [{"teacher_agreement": {"quorum": 2}}]}},
    ]
    run_pipeline(load_pipeline(_write(tmp_path, _pipeline(a, b, *stages))), RunOptions())
    records = list(read_records(tmp_path / "outputs/many/03-filter/records.jsonl"))
    agreed: set[str] = a.agreed  # type: ignore[attr-defined]
    kept = {r.input["question"] for r in records if r.kept}
    assert kept == agreed
    dropped = [r for r in records if not r.kept]
    assert dropped and all(r.dropped_by == "teacher_agreement" for r in dropped)
    assert all("1 of 2 teachers needed" in r.verdicts["teacher_agreement"].reason for r in dropped)
    # Each disputed problem hands on a's rationale and b's, each backed by one teacher only.
    assert len(dropped) == 2 * (TRAIN - len(agreed))


def test_teacher_agreement_counts_a_share_of_the_pipelines_teachers():
    record = Record(
        id="r",
        input={"question": "1 + 1?", "answer": "2"},
        answer="2",
        samples=[
            Sample(text="", fields={"answer": "2"}, teacher="a"),
            Sample(text="", fields={"answer": "2.0"}, teacher="b"),
            Sample(text="", fields={"answer": "3"}, teacher="c"),
        ],
    )
    critic = TeacherAgreement(quorum=0.5)
    assert critic.score([record])[0].passed is True  # no context: a share of one teacher
    assert TeacherAgreement(quorum=3).score([record])[0].passed is False
    verdict = TeacherAgreement(quorum=2).score([record])[0]
    assert verdict.passed and verdict.score == 2.0 and "(a, b)" in verdict.reason


def test_the_judge_can_be_another_named_teacher(servers, tmp_path):
    a, b = servers
    b.responder = lambda messages, params, index: '{"score": 9, "reason": "clear"}'
    judge = {"llm_judge": {"teacher": "b", "field": "rationale"}}
    pipeline = _pipeline(a, b, {"filter": {"critics": [judge]}})
    pipeline["stages"][0]["generate"]["teachers"] = ["a"]
    run_pipeline(load_pipeline(_write(tmp_path, pipeline)), RunOptions())
    records = list(read_records(tmp_path / "outputs/many/02-filter/records.jsonl"))
    assert all(r.kept and r.verdicts["llm_judge"].score == 9.0 for r in records)
    # a wrote the rationales; b only judged them, once per record.
    assert all({s.teacher for s in r.samples} == {"a"} for r in records)
    assert b.stats.requests == TRAIN


def test_changing_a_named_teacher_re_runs_the_generate_stage_that_asks_it(servers, tmp_path):
    a, b = servers
    path = _write(tmp_path, _pipeline(a, b))
    run_pipeline(load_pipeline(path), RunOptions())
    again = run_pipeline(load_pipeline(path), RunOptions())
    assert again.stages[0].status == "skipped"
    changed = run_pipeline(load_pipeline(path, ["teachers.b.model=model-b2"]), RunOptions())
    assert changed.stages[0].status == "done"


def test_a_teachers_list_reads_as_the_named_map_and_the_first_is_the_default(servers, tmp_path):
    a, b = servers
    pipeline = _pipeline(a, b)
    pipeline["teachers"] = [
        {"name": "a", **_teacher(a.url, "model-a")},
        {"name": "b", **_teacher(b.url, "model-b")},
    ]
    config = load_pipeline(_write(tmp_path, pipeline)).config
    assert list(config.teachers) == ["a", "b"]
    assert config.teacher == config.teachers["a"] == config.teacher_named("default")


# (case, edit of the good pipeline, words the error line must hold)
BAD: list[tuple[str, Any, list[str]]] = [
    (
        "two teachers with one name",
        lambda p: p.update(teachers=[{"name": "a", **t} for t in p["teachers"].values()]),
        ["teachers", "two teachers are named 'a'"],
    ),
    (
        "unknown teacher in generate",
        lambda p: p["stages"][0]["generate"].update(teachers=["a", "gpt"]),
        ["stages[0].generate.teachers[1]", "unknown teacher 'gpt'", "default, a, b"],
    ),
    (
        "unknown teacher in llm_judge",
        lambda p: p["stages"].append({"filter": {"critics": [{"llm_judge": {"teacher": "judge"}}]}}),
        ["stages[1].filter.critics[0].llm_judge.teacher", "unknown teacher 'judge'"],
    ),
    (
        "unknown teacher in teacher_weights",
        lambda p: p["stages"].append({"self_consistency": {"teacher_weights": {"z": 2.0}}}),
        ["stages[1].self_consistency.teacher_weights.z", "unknown teacher 'z'"],
    ),
    (
        "teachers a cache cannot tell apart",
        lambda p: p["teachers"]["b"].update(model="model-a"),
        ["teachers", "'a' and 'b'", "call cache"],
    ),
    (
        "generate asks the default and a named teacher of one model",
        lambda p: (
            p.update(teacher=dict(p["teachers"]["a"])),
            p["stages"][0]["generate"].update(teachers=["default", "a"]),
        ),
        ["stages[0].generate", "'default' and 'a'", "call cache"],
    ),
    (
        "a teacher named default",
        lambda p: p["teachers"].update(default=p["teachers"].pop("b")),
        ["teachers", "'default' cannot name a teacher"],
    ),
]


@pytest.mark.parametrize(("case", "edit", "words"), BAD, ids=[c[0] for c in BAD])
def test_bad_teachers_are_one_line_exit_2_and_nothing_sent(servers, tmp_path, capfd, case, edit, words):
    a, b = servers
    pipeline = _pipeline(a, b)
    edit(pipeline)
    path = _write(tmp_path, pipeline)
    for command in ("validate", "run"):
        capfd.readouterr()
        code = main([command, str(path)])
        out, err = capfd.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, err
        assert out == ""
        assert len(lines) == 1 and lines[0].startswith("synthdistill: error: ") and "many.yaml" in lines[0]
        assert all(word in lines[0] for word in words), lines[0]
    assert a.stats.requests == b.stats.requests == 0
    assert not (tmp_path / "outputs").exists()


def test_an_unknown_teacher_name_is_a_config_error_when_loading(servers, tmp_path):
    a, b = servers
    pipeline = _pipeline(a, b)
    pipeline["stages"][0]["generate"]["teachers"] = "c"
    with pytest.raises(ConfigError, match=r"stages\[0\]\.generate\.teachers: unknown teacher 'c'"):
        load_pipeline(_write(tmp_path, pipeline))


def _answers(path: Path) -> dict[str, str | None]:
    return {r.input["question"]: r.answer for r in read_records(path) if r.kept}
