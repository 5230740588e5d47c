"""A user's first hour, as a table: bad pipelines, data files and command lines.

Each case goes through `validate` and through `run`, against the run folder of an earlier good run of
the same name. Each must answer with exit code 2 and one stderr line naming the file (or the option) and
the key, no traceback, nothing sent to the teacher; and the good run's files must stay byte-identical.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthdistill.cli import main
from synthdistill.testing import ScriptedServer

GOOD = {
    "name": "good",
    "seed": 0,
    "teacher": {"backend": "openai", "model": "scripted", "max_concurrency": 4, "max_retries": 0},
    "data": {"source": "problems.jsonl", "split": {"train": 6, "test": 2}},
    "stages": [
        {"generate": {"template": "cot_rationale.j2", "n": 2, "temperature": 0.7}},
        {"self_consistency": {"keep": "all"}},
        {"filter": {"critics": ["answer_match", {"length": {"max_words": 60}}]}},
    ],
}
PROBLEMS = "".join(f'{{"question": "What is {i} plus {i}?", "answer": "{2 * i}"}}\n' for i in range(1, 11))
TRAIN = {"train": {"max_steps": 1}}
EVALUATE = {"evaluate": {"max_tokens": 8}}

Edit = Callable[[dict[str, Any], Path], None]


def _set(path: str, value: Any) -> Edit:
    """An edit setting `path` (dots; digits index lists) of the pipeline to `value`."""

    def edit(pipeline: dict[str, Any], project: Path) -> None:
        *parents, last = path.split(".")
        target: Any = pipeline
        for part in parents:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return edit


def _stages(*stages: Any) -> Edit:
    def edit(pipeline: dict[str, Any], project: Path) -> None:
        pipeline["stages"] = copy.deepcopy(list(stages))

    return edit


def _template(text: str, stage: int = 0, stage_name: str = "generate", key: str = "template") -> Edit:
    def edit(pipeline: dict[str, Any], project: Path) -> None:
        (project / "pipelines" / "mine.j2").write_text(text, encoding="utf-8")
        pipeline["stages"][stage][stage_name][key] = "mine.j2"

    return edit


def _data(text: str | bytes, name: str = "mine.jsonl") -> Edit:
    def edit(pipeline: dict[str, Any], project: Path) -> None:
        path = project / "pipelines" / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        pipeline["data"]["source"] = name

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(pipeline: dict[str, Any], project: Path) -> None:
        for one in edits:
            one(pipeline, project)

    return edit


GENERATE, CONSISTENCY, FILTER = GOOD["stages"]

# (case id, edit of the good pipeline, extra command-line arguments, words the error line must hold)
PIPELINE_CASES: list[tuple[str, Edit | None, list[str], list[str]]] = [
    ("template syntax error", _template("{{ question "), [], ["stages[0].generate", "mine.j2", "line 1"]),
    (
        "undefined variable",
        _template("Solve {{ questoin }}"),
        [],
        ["stages[0].generate", "questoin", "question"],
    ),
    ("unclosed block", _template("{% for x in y %}{{ x }}"), [], ["stages[0].generate", "mine.j2"]),
    (
        "missing template",
        _set("stages.0.generate.template", "nope.j2"),
        [],
        ["stages[0].generate", "nope.j2"],
    ),
    (
        "train template error",
        _both(
            _stages(GENERATE, CONSISTENCY, FILTER, {"train": {"template": "x.j2"}}),
            _template("{{ x ", 3, "train"),
        ),
        [],
        ["stages[3].train", "mine.j2"],
    ),
    (
        "evaluate template variable",
        _both(
            _stages(GENERATE, FILTER, TRAIN, {"evaluate": {"template": "x.j2"}}),
            _template("{{ nope }}", 3, "evaluate"),
        ),
        [],
        ["stages[3].evaluate", "nope"],
    ),
    (
        "critic option typo",
        _set("stages.2.filter.critics", [{"length": {"max_wordz": 10}}]),
        [],
        ["stages[2].filter", "max_wordz"],
    ),
    (
        "critic option type",
        _set("stages.2.filter.critics", [{"length": {"max_words": "many"}}]),
        [],
        ["stages[2].filter", "max_words"],
    ),
    (
        "unknown critic",
        _set("stages.2.filter.critics", ["answer_matches"]),
        [],
        ["stages[2].filter", "answer_matches"],
    ),
    (
        "critic twice",
        _set("stages.2.filter.critics", ["answer_match", "answer_match"]),
        [],
        ["stages[2].filter", "twice"],
    ),
    ("critics not a list", _set("stages.2.filter.critics", "answer_match"), [], ["stages[2].filter.critics"]),
    (
        "judge template missing",
        _set("stages.2.filter.critics", [{"llm_judge": {"template": "nope.j2"}}]),
        [],
        ["stages[2].filter", "nope.j2"],
    ),
    ("unknown backend", _set("teacher.backend", "anthropic"), [], ["teacher.backend", "anthropic"]),
    (
        "student does not resolve",
        _both(_stages(GENERATE, FILTER, TRAIN), _set("student", {"model": "no/such-model"})),
        [],
        ["student.model", "no/such-model"],
    ),
    (
        "student folder missing",
        _both(_stages(GENERATE, FILTER, TRAIN), _set("student", {"model": "./nowhere"})),
        [],
        ["student.model", "nowhere"],
    ),
    (
        "local teacher does not resolve",
        _set("teacher", {"backend": "transformers", "model": "no/such-model"}),
        [],
        ["teacher.model", "no/such-model"],
    ),
    ("missing data file", _set("data.source", "nowhere.jsonl"), [], ["data.source", "nowhere.jsonl"]),
    ("empty data file", _data(""), [], ["data.source", "mine.jsonl"]),
    ("broken data file", _data('{"question": "What'), [], ["data.source", "mine.jsonl"]),
    ("binary data file", _data(b"\x00\xff\xfe garbage"), [], ["data.source", "mine.jsonl"]),
    (
        "csv without the column",
        _data("text,label\n" + "".join(f"hello {i},1\n" for i in range(10)), "mine.csv"),
        [],
        ["data", "question"],
    ),
    (
        "jsonl without the mapped column",
        _set("data.fields", {"question": "prompt"}),
        [],
        ["data.fields.question", "prompt"],
    ),
    (
        "regex that does not compile",
        _set("data.fields", {"answer": {"from": "answer", "regex": "(["}}),
        [],
        ["data.fields.answer"],
    ),
    (
        "jinja field with a syntax error",
        _set("data.fields", {"question": "{{ question "}),
        [],
        ["data.fields.question"],
    ),
    ("unknown builtin task", _set("data.source", "builtin:nosuch"), [], ["data.source", "nosuch"]),
    (
        "missing test source",
        _set("data.test_source", "nowhere.jsonl"),
        [],
        ["data.test_source", "nowhere.jsonl"],
    ),
    (
        "too few rows for any test item",
        _data('{"question": "q", "answer": "1"}\n'),
        [],
        ["data", "mine.jsonl"],
    ),
    (
        "train first on data without answers",
        _both(_data("".join(f'{{"question": "Why {i}?"}}\n' for i in range(10))), _stages(TRAIN)),
        [],
        ["stages[0].train", "data.fields.answer"],
    ),
    (
        "train first on replies",
        _stages({"train": {"target": "response"}}),
        [],
        ["stages[0].train", "generate"],
    ),
    ("filter before generate", _stages(FILTER, GENERATE), [], ["stages[0].filter", "generate"]),
    ("self_consistency first", _stages(CONSISTENCY), [], ["stages[0].self_consistency", "generate"]),
    (
        "adversarial without train",
        _stages(GENERATE, {"adversarial": {}}),
        [],
        ["stages[1].adversarial", "train"],
    ),
    (
        "adversarial answers recorded",
        _stages(GENERATE, TRAIN, {"adversarial": {"answer": {"recorded": {"field": "answer"}}}}),
        [],
        ["stages[2].adversarial.answer", "recorded"],
    ),
    ("unknown stage", _stages(GENERATE, {"filtre": {}}), [], ["stages[1]", "filtre"]),
    ("stage options not a mapping", _stages({"generate": 5}), [], ["stages[0].generate"]),
    ("two stages in one entry", _stages({"generate": {}, "filter": {}}), [], ["stages[0]"]),
    ("no stages", _stages(), [], ["stages"]),
    ("n zero", _set("stages.0.generate.n", 0), [], ["stages[0].generate.n"]),
    (
        "temperature too high",
        _set("stages.0.generate.temperature", 5),
        [],
        ["stages[0].generate.temperature"],
    ),
    ("unknown generate option", _set("stages.0.generate.samples", 3), [], ["stages[0].generate.samples"]),
    (
        "expand with no values",
        _set("stages.0.generate.expand", {"relation": []}),
        [],
        ["stages[0].generate.expand"],
    ),
    (
        "min_agreement above 1",
        _set("stages.1.self_consistency.min_agreement", 2),
        [],
        ["stages[1].self_consistency.min_agreement"],
    ),
    ("negative split", _set("data.split.train", -1), [], ["data.split.train"]),
    ("seed not a number", _set("seed", "abc"), [], ["seed"]),
    ("unknown top-level key", _set("teachr", {}), [], ["teachr"]),
    ("api key inline", _set("teacher.api_key", "sk-test-123"), [], ["teacher", "api_key_env"]),
    (
        "key in options",
        _set("teacher.options", {"api_key": "sk-test-123"}),
        [],
        ["teacher.options", "api_key_env"],
    ),
    (
        "key in a header",
        _set("teacher.options", {"extra_headers": {"Authorization": "Bearer sk-test-123"}}),
        [],
        ["teacher.options", "Authorization"],
    ),
    (
        "api_base without a scheme",
        _set("teacher.api_base", "127.0.0.1:9"),
        [],
        ["teacher.api_base", "http://"],
    ),
    (
        "key variable not set",
        _set("teacher.api_key_env", "SYNTHDISTILL_TEST_NO_SUCH_KEY"),
        [],
        ["api_key_env", "SYNTHDISTILL_TEST_NO_SUCH_KEY"],
    ),
    (
        "lora option unknown",
        _stages(GENERATE, FILTER, {"train": {"lora": {"rank": 8}}}),
        [],
        ["stages[2].train.lora"],
    ),
    ("max_cost_usd with no price", _set("max_cost_usd", 1.0), [], ["teacher.price"]),
    (
        "a named teacher's key variable unset",
        _set(
            "teachers",
            {"b": {"backend": "openai", "model": "other", "api_key_env": "SYNTHDISTILL_TEST_NO_KEY"}},
        ),
        [],
        ["teachers.b.api_key_env", "SYNTHDISTILL_TEST_NO_KEY"],
    ),
    (
        "unknown train target",
        _stages(GENERATE, FILTER, {"train": {"target": "answer"}}),
        [],
        ["stages[2].train.target"],
    ),
    (
        "unknown evaluate option",
        _stages(GENERATE, FILTER, TRAIN, {"evaluate": {"metric": "f1"}}),
        [],
        ["stages[3].evaluate.metric"],
    ),
    ("name with a slash", _set("name", "a/b"), [], ["name"]),
    # Command-line overrides of a good pipeline.
    ("--set YAML error", None, ["--set", "stages.0.generate.n=[1"], ["--set", "stages.0.generate.n"]),
    ("--set without =", None, ["--set", "seed"], ["--set", "seed"]),
    ("--set on an absent stage", None, ["--set", "train.max_steps=2"], ["--set", "train", "generate"]),
    ("--set past the stages", None, ["--set", "stages.9.generate.n=1"], ["--set", "stages"]),
    ("--set a bad value", None, ["--set", "generate.n=-1"], ["stages[0].generate.n"]),
    ("--set an unknown backend", None, ["--set", "teacher.backend=nope"], ["teacher.backend", "nope"]),
    (
        "--set a key inline",
        None,
        ["--set", "teacher.options={api_key: sk-test-123}"],
        ["teacher.options", "api_key_env"],
    ),
]
RUN_ONLY_CASES: list[tuple[str, list[str], list[str]]] = [
    ("--run-name with ..", ["--run-name", "../../x"], ["--run-name", "../../x"]),
    ("--run-name with a slash", ["--run-name", "a/b"], ["--run-name", "a/b"]),
    ("--limit 0", ["--limit", "0"], ["--limit"]),
    ("--limit not a number", ["--limit", "abc"], ["--limit"]),
    ("unknown option", ["--frobnicate"], ["--frobnicate"]),
]


@pytest.fixture(scope="module")
def good_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, ScriptedServer, dict[str, str]]]:
    """A project with a finished good run (outputs/good) made through the scripted server."""
    project = tmp_path_factory.mktemp("project")
    (project / "pipelines").mkdir()
    (project / "pipelines" / "problems.jsonl").write_text(PROBLEMS, encoding="utf-8")
    home = tmp_path_factory.mktemp("home")
    with ScriptedServer() as server:
        server.responder = lambda messages, params, index: "2 + 2 = 4.\nThe answer is 4."
        good = {**GOOD, "teacher": {**GOOD["teacher"], "api_base": server.url}}
        (project / "pipelines" / "good.yaml").write_text(yaml.safe_dump(good, sort_keys=False))
        before = os.getcwd()
        os.chdir(project)
        old_home = os.environ.get("SYNTHDISTILL_HOME")
        os.environ["SYNTHDISTILL_HOME"] = str(home)
        try:
            assert main(["run", "pipelines/good.yaml"]) == 0
        finally:
            os.chdir(before)
            if old_home is None:
                os.environ.pop("SYNTHDISTILL_HOME", None)
            else:
                os.environ["SYNTHDISTILL_HOME"] = old_home
        yield project, server, _snapshot(project / "outputs")


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(
    ("case", "edit", "args", "words"), PIPELINE_CASES, ids=[c[0] for c in PIPELINE_CASES]
)
def test_a_bad_pipeline_is_one_line_and_exit_2_and_the_good_run_is_untouched(
    good_run, capfd, monkeypatch, case, edit, args, words, command
):
    project, server, before = good_run
    monkeypatch.chdir(project)
    # The good pipeline file itself is edited, as a user would: the run lands in the good run's folder.
    path = project / "pipelines" / "good.yaml"
    good = path.read_text()
    pipeline = yaml.safe_load(good)
    if edit is not None:
        edit(pipeline, project)
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    requests = server.stats.requests
    try:
        # An override's error names the option; a file's error names the file.
        named = ["good.yaml"] if edit is not None else []
        _assert_one_line_error(capfd, [command, "pipelines/good.yaml", *args], [*named, *words])
    finally:
        path.write_text(good)
    assert server.stats.requests == requests, "a refused pipeline must not reach the teacher"
    assert _snapshot(project / "outputs") == before


def test_a_non_utf8_pipeline_file_is_one_line(good_run, capfd, monkeypatch):
    project, _, before = good_run
    monkeypatch.chdir(project)
    text = (project / "pipelines" / "good.yaml").read_bytes().replace(b"name: good", b"name: g\xe9od")
    (project / "pipelines" / "latin1.yaml").write_bytes(text)
    for command in ("validate", "run"):
        _assert_one_line_error(capfd, [command, "pipelines/latin1.yaml"], ["latin1.yaml", "UTF-8"])
    assert _snapshot(project / "outputs") == before


@pytest.mark.parametrize(("case", "args", "words"), RUN_ONLY_CASES, ids=[c[0] for c in RUN_ONLY_CASES])
def test_a_bad_command_line_is_one_line_and_exit_2(good_run, capfd, monkeypatch, case, args, words):
    project, _, before = good_run
    monkeypatch.chdir(project)
    _assert_one_line_error(capfd, ["run", "pipelines/good.yaml", *args], words)
    assert _snapshot(project / "outputs") == before
    assert not (project.parent / "x").exists()


def _assert_one_line_error(capfd: pytest.CaptureFixture[str], argv: list[str], words: list[str]) -> None:
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, f"{argv}: exit {code}; stderr: {err}"
    assert len(lines) == 1, f"{argv}: {err}"
    assert "Traceback" not in err and lines[0].startswith("synthdistill: error: ")
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert out == ""


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, with the hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
