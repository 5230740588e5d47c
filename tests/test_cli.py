"""The command line: help text, one-line errors with exit code 2, and nothing in outputs/ damaged."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from synthdistill.cli import main

REPO = Path(__file__).resolve().parents[1]
COT = str(REPO / "pipelines" / "cot.yaml")


def call(capfd, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capfd.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--help"], ["run", "validate", "cache", "plugins"]),
        (["run", "--help"], ["--limit", "--set", "--run-name", "--force", "--resume"]),
        (["validate", "--help"], ["without running it"]),
        (["cache", "--help"], ["stats", "clear"]),
    ],
)
def test_help_lists_commands_and_options(capfd, args, words):
    code, out, _ = call(capfd, *args)
    assert code == 0
    for word in words:
        assert word in out


def test_validate_accepts_the_shipped_pipeline(capfd):
    code, out, err = call(capfd, "validate", COT)
    assert code == 0 and "ok (5 stages" in out and err == ""


def test_plugins_lists_builtins(capfd):
    code, out, _ = call(capfd, "plugins")
    assert code == 0
    # Every stage the project declares, as an installed plugin's would be found.
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    stages = ", ".join(sorted(declared["synthdistill.stages"]))
    assert f"stages: {stages}" in out
    assert {"generate", "train", "evaluate", "star", "select"} <= set(declared["synthdistill.stages"])
    assert "teachers: litellm, openai, transformers" in out


@pytest.mark.parametrize(
    ("yaml_text", "args", "expected"),
    [
        (None, ["run", "missing.yaml"], "'missing.yaml' does not exist"),
        (None, ["run", COT, "--bogus"], "No such option: --bogus"),
        (None, ["run", COT, "--set", "seed"], "is not key=value"),
        ("name: t\nstages: [{generate: {template: nope.j2}}]\n", ["validate"], "'nope.j2' not found"),
        ("name: t\nstages: [{filter: {critics: [nope]}}]\n", ["run"], "unknown critic 'nope'"),
        ("name: t\nstages: [generate\n", ["run"], "YAML syntax error"),
        (
            "name: t\ndata: {source: data.jsonl}\nstages: [generate]\n",
            ["run"],
            "data.jsonl",
        ),
        (
            "name: t\ndata: {source: d.jsonl, fields: {question: nope}}\nstages: [generate]\n",
            ["run"],
            "nope",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(capfd, tmp_path, monkeypatch, yaml_text, args, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.jsonl").write_text('{"q": "1+1", "answer": "2"}\n')
    if yaml_text is not None:
        (tmp_path / "p.yaml").write_text(yaml_text)
        args = [*args, str(tmp_path / "p.yaml")]
    code, out, err = call(capfd, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("synthdistill: error: ")
    assert expected in err
    assert "Traceback" not in err and out == ""


def test_template_variable_missing_from_the_data_is_one_line(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ask.j2").write_text("{{ question }} Context: {{ context }}")
    (tmp_path / "p.yaml").write_text(
        "name: t\nteacher: {backend: openai, model: m, api_base: 'http://127.0.0.1:9/v1'}\n"
        "data: {split: {train: 2, test: 1}}\nstages: [{generate: {template: ask.j2}}]\n"
    )
    code, out, err = call(capfd, "run", "p.yaml")
    assert code == 2 and out == ""
    # Named before anything runs: the template, the variable, the stage and what the records do have.
    assert err.count("\n") == 1 and "stages[0].generate: template ask.j2 uses {{ context }}" in err
    assert "data.fields" in err and "question" in err


def test_bad_input_leaves_an_existing_run_untouched(capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "outputs" / "t"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text('{"keep": "me"}')
    (tmp_path / "p.yaml").write_text("name: t\ndata: {source: missing.csv}\nstages: [generate]\n")
    code, _, _ = call(capfd, "run", "p.yaml")
    assert code == 2
    assert (run_dir / "manifest.json").read_text() == '{"keep": "me"}'
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json"]


def test_debug_shows_the_traceback(capfd, tmp_path):
    (tmp_path / "p.yaml").write_text("name: t\nstages: [nope]\n")
    with pytest.raises(Exception, match="unknown stage"):
        main(["--debug", "validate", str(tmp_path / "p.yaml")])


def test_console_script_exits_2_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "synthdistill", "validate", "no-such.yaml"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no-such.yaml" in result.stderr


PIPELINE = (
    "name: t\nteacher: {backend: openai, model: m, api_base: 'http://127.0.0.1:9/v1'}\nstages: [generate]\n"
)


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(
    ("text", "args", "where", "fix"),
    [
        (
            b"name: t\nstages:\n  - generate: {template: caf\xe9.j2}\n",
            [],
            "p.yaml: stages[0].generate.template: byte 0xe9 at line 3",
            "save the file as UTF-8",
        ),
        (PIPELINE.encode(), ["--set", "generate.n=[1"], "--set: generate.n: the value", "close its brackets"),
        (
            PIPELINE.encode(),
            ["--set", "train.max_steps=2"],
            "--set: train.max_steps: the pipeline",
            "has no train stage (its stages are generate)",
        ),
        (
            PIPELINE.replace("http://", "").encode(),
            [],
            "p.yaml: teacher.api_base: '127.0.0.1:9/v1'",
            "for example http://127.0.0.1:9/v1",
        ),
        (
            PIPELINE.replace("openai", "anthropic").encode(),
            [],
            "p.yaml: teacher.backend: unknown backend 'anthropic'",
            "registered backends: litellm, openai, transformers",
        ),
        (PIPELINE.replace("name: t", "name: ../x").encode(), [], "p.yaml: name:", "no path separators"),
    ],
)
def test_bad_input_names_file_and_key_with_a_fix_under_validate_and_run(
    capfd, tmp_path, monkeypatch, command, text, args, where, fix
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_bytes(text)
    code, out, err = call(capfd, command, "p.yaml", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("synthdistill: error: ")
    assert where in err and fix in err
    assert "Traceback" not in err
    assert not (tmp_path / "outputs").exists()


def test_a_run_name_that_is_a_path_is_refused_and_nothing_is_written(capfd, tmp_path, monkeypatch):
    root = tmp_path / "root"
    project = root / "a" / "project"
    project.mkdir(parents=True)
    monkeypatch.chdir(project)
    (project / "p.yaml").write_text(PIPELINE)
    for name in ("../../x", "a/b", "..", "."):
        code, out, err = call(capfd, "run", "p.yaml", "--run-name", name)
        assert code == 2 and out == "" and err.count("\n") == 1
        assert "'--run-name'" in err and "not a plain name" in err and "Traceback" not in err
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["a", "a/project", "a/project/p.yaml"]


def test_the_python_api_refuses_a_run_name_that_is_a_path(tmp_path, monkeypatch):
    from synthdistill.errors import ConfigError
    from synthdistill.pipeline import run

    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    (project / "p.yaml").write_text(PIPELINE)
    with pytest.raises(ConfigError, match=r"run_name: run name '\.\./x' is not a plain name"):
        run(project / "p.yaml", run_name="../x")
    assert sorted(p.name for p in project.iterdir()) == ["p.yaml"] and not (tmp_path / "x").exists()


def test_version_prints_the_package_version(capfd):
    from importlib.metadata import version

    code, out, err = call(capfd, "--version")
    assert code == 0 and out == f"synthdistill {version('synthdistill')}\n" and err == ""


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["rnu"], "Did you mean 'run'? (see synthdistill --help)"),
        (["--bogus"], "(see synthdistill --help)"),
        (["cache", "rnu"], "(see synthdistill cache --help)"),
        (["run", "--bogus", COT], "(see synthdistill run --help)"),
    ],
)
def test_a_usage_error_names_the_help_of_its_command_once(capfd, args, hint):
    code, out, err = call(capfd, *args)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.rstrip().endswith(hint) and "synthdistill synthdistill" not in err


COMMANDS = [
    [],
    ["run"],
    ["validate"],
    ["plugins"],
    ["review"],
    ["inspect"],
    ["export"],
    ["evaluate"],
    ["cache"],
    ["cache", "stats"],
    ["cache", "clear"],
    ["critic"],
    ["critic", "train"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_help_has_an_example_and_names_arguments_alike(capfd, command):
    code, out, _ = call(capfd, *command, "--help")
    assert code == 0
    example = out[out.index("Example") :]
    assert f"synthdistill {' '.join(command)}".rstrip() in example
    usage = out.splitlines()[1]
    for name in ("{pipeline}", "{run_dir}", "RUN_DIR", "PIPELINE_"):
        assert name not in usage
    if command in (["run"], ["validate"]):
        assert "{PIPELINE}" in usage
    if command in (["review"], ["inspect"], ["export"], ["critic", "train"]):
        assert "{RUN}" in usage


def test_the_top_level_help_documents_debug_and_version(capfd):
    _, out, _ = call(capfd, "--help")
    assert "--debug" in out and "traceback" in out and "--version" in out


def test_export_help_says_which_out_folders_it_takes(capfd):
    _, out, _ = call(capfd, "export", "--help")
    assert "an earlier export is replaced" in " ".join(out.split())


def test_the_run_tables_read_whole_at_80_columns():
    import io

    from rich.console import Console

    from synthdistill.cli.report import plan_table, summary_table
    from synthdistill.dryrun import StagePlan
    from synthdistill.runs.folder import Manifest, StageManifest
    from synthdistill.teachers.counters import Planned, TeacherCounters

    spent = {"calls": 1000, "cache_hits": 3000, "prompt_tokens": 450000, "completion_tokens": 450000}
    stages = [
        StageManifest(name=name, folder=f"0{i}-{name}", status=status, records_in=1000, records_out=3960,
                      seconds=2520.4, teacher={**spent, "cost_usd": 0.52})
        for i, (name, status) in enumerate(
            [("generate", "done"), ("self_consistency", "skipped"), ("filter", "done")], 1
        )
    ]  # fmt: skip
    manifest = Manifest(
        name="cot-arith", pipeline="p.yaml", status="done", stages=stages, seconds=5111.0,
        teacher=TeacherCounters(calls=3000, cache_hits=9000, prompt_tokens=1350000, completion_tokens=1350000,
                                cost_usd=1.56),
    )  # fmt: skip
    planned = Planned(
        requests=1000, samples=4000, cached=120, prompt_tokens=450000, completion_tokens=1024000
    )
    plans = [
        StagePlan("01-generate", 1000, planned, priced=False),
        StagePlan("02-self_consistency", None, None, note="input unknown until 01-generate runs"),
    ]
    for table, words in (
        (summary_table(manifest), ["02-self_consistency", "skipped", "cache", "hits", "2700000", "5111.0"]),
        (plan_table(plans), ["02-self_consistency", "samples", "1024000", "input unknown until 01-generate"]),
    ):
        console = Console(file=io.StringIO(), width=80)
        console.print(table)
        text = console.file.getvalue()
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
        for word in words:
            assert word in text


def test_ctrl_c_during_a_run_prints_how_to_resume_and_exits_130(tmp_path):
    import os
    import signal
    import time

    from synthdistill.testing import ScriptedServer

    with ScriptedServer(latency=0.2) as server:
        (tmp_path / "p.yaml").write_text(
            f"name: c\nteacher: {{backend: openai, model: scripted, api_base: '{server.url}', "
            "max_concurrency: 2}\ndata: {split: {train: 40, test: 1}}\n"
            "stages: [{generate: {template: cot_rationale.j2, n: 1}}]\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "synthdistill", "run", "p.yaml"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while server.stats.by_path.get("/v1/chat/completions", 0) < 3 and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.01)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err == "synthdistill: error: interrupted; run the same command again to resume\n"
    assert out == ""
