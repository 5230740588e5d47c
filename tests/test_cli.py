"""The command line: help text, one-line errors with exit code 2, and nothing in outputs/ damaged."""

from __future__ import annotations

import subprocess
import sys
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
    stages = "adversarial, evaluate, evolve, filter, generate, self_consistency, self_instruct, train"
    assert f"stages: {stages}" in out
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
    assert err.count("\n") == 1 and "'ask.j2'" in err and "'context' is undefined" in err


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
