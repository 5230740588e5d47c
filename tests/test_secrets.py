"""API keys never reach the disk: by every route a key can come in, no file of the run folder (run.log
and pipeline.yaml included) or of SYNTHDISTILL_HOME (the call cache) holds its bytes afterwards.

A key named by `api_key_env` (set in the environment, or in a .env file of the working directory) is
sent to a scripted server that requires it; a key written into the pipeline itself (inline, in an
option, in a header, in a judge's or referee's teacher, or through --set) is refused before anything is
written or sent, and the refusal does not echo it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from synthdistill.cli import main
from synthdistill.testing import ScriptedServer

KEY = "sk-secret-route-0123456789abcdef"
VARIABLE = "SYNTHDISTILL_SECRETS_TEST_KEY"
CHAT = "/v1/chat/completions"
PIPELINE = """
name: s
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_retries: 4{teacher}}}
data: {{source: builtin:arith, split: {{train: 4, test: 1}}}}
stages:
  - generate: {{template: cot_rationale.j2, n: 2, temperature: 0.7}}
  - self_consistency: {{keep: all}}
  - filter: {{critics: [answer_match{critics}]}}
{more}"""


def run(tmp_path: Path, capfd, server: ScriptedServer, *args: str, teacher="", critics="", more=""):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(url=server.url, teacher=teacher, critics=critics, more=more))
    capfd.readouterr()
    code = main(["run", str(path), *args])
    out, err = capfd.readouterr()
    return code, out, err


def files_holding_the_key(*roots: Path) -> list[str]:
    """Every file under `roots` (symlinked folders, such as the shared models, not followed) with KEY."""
    holding = []
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path.is_file() and KEY.encode() in path.read_bytes():
                    holding.append(str(path))
    return holding


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(VARIABLE, raising=False)
    return tmp_path


@pytest.mark.parametrize("route", ["environment", "dotenv"])
def test_a_key_named_by_api_key_env_authenticates_and_is_written_nowhere(
    project, synthdistill_home, capfd, monkeypatch, route
):
    if route == "environment":
        monkeypatch.setenv(VARIABLE, KEY)
    else:
        (project / ".env").write_text(f"{VARIABLE}={KEY}\n")
    # Server errors make the engine log its retries, so that run.log has lines to scan.
    with ScriptedServer(required_key=KEY, rate_500=0.5, seed=1) as server:
        code, out, err = run(project, capfd, server, teacher=f", api_key_env: {VARIABLE}")
        stats = server.stats
    assert code == 0, err
    assert stats.faults.get("500", 0) > 0 and stats.faults.get("401", 0) == 0
    run_dir = project / "outputs" / "s"
    assert (run_dir / "run.log").is_file() and (run_dir / "pipeline.yaml").is_file()
    assert VARIABLE in (run_dir / "pipeline.yaml").read_text()  # the variable's name, never its value
    assert files_holding_the_key(run_dir, synthdistill_home) == []
    assert KEY not in out + err
    assert VARIABLE not in os.environ or route == "environment"  # .env feeds the client, not the process


def options(text: str) -> dict[str, str]:
    return {"teacher": f", options: {{{text}}}"}


BEARER = f'"Bearer {KEY}"'
JUDGE_TEACHER = f"{{backend: openai, options: {{extra_headers: {{Authorization: {BEARER}}}}}}}"
JUDGE = f"{{llm_judge: {{teacher: {JUDGE_TEACHER}}}}}"
REFEREE = f"{{referee: {{backend: openai, options: {{client_secret: {KEY}}}}}}}"
INLINE = [
    ("teacher", {"teacher": f", api_key: {KEY}"}),
    ("teacher.options: api_key", options(f"api_key: {KEY}")),
    ("teacher.options: extra_headers.Authorization", options(f"extra_headers: {{Authorization: {BEARER}}}")),
    ("teacher.options: extra_headers.x-api-key", options(f"extra_headers: {{x-api-key: {KEY}}}")),
    ("teacher.options: extra_headers.api-key", options(f"extra_headers: {{api-key: {KEY}}}")),
    (
        "teacher.options: extra_body.auth.access_token",
        options(f"extra_body: {{auth: {{access_token: {KEY}}}}}"),
    ),
    ("teacher.options: extra_headers.X-Custom", options(f"extra_headers: {{X-Custom: {BEARER}}}")),
    (
        "stages[2].filter.critics[1].llm_judge.teacher.options.extra_headers.Authorization",
        {"critics": f", {JUDGE}"},
    ),
    (
        "stages[4].adversarial.referee.options.client_secret",
        {"more": f"  - train: {{}}\n  - adversarial: {REFEREE}\n"},
    ),
]
"""Where the refusal points, and the pipeline fields that carry the key there."""


@pytest.mark.parametrize(("where", "fields"), INLINE, ids=[where for where, _ in INLINE])
def test_a_key_written_into_the_pipeline_is_refused_before_anything_is_written_or_sent(
    project, synthdistill_home, capfd, where, fields
):
    with ScriptedServer(required_key=KEY) as server:
        code, out, err = run(project, capfd, server, **fields)
        sent = server.stats.requests
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"p.yaml: {where}" in err and "api_key_env" in err
    assert KEY not in err
    assert sent == 0 and not (project / "outputs").exists()
    assert files_holding_the_key(synthdistill_home) == []


def test_a_key_passed_with_set_is_refused_and_not_echoed(project, synthdistill_home, capfd):
    with ScriptedServer(required_key=KEY) as server:
        for override in (
            f"teacher.options.api_key={KEY}",
            f"teacher.options={{extra_headers: {{X-Api-Key: {KEY}}}}}",
        ):
            code, out, err = run(project, capfd, server, "--set", override)
            assert code == 2 and err.count("\n") == 1 and "api_key_env" in err
            assert KEY not in out + err
        sent = server.stats.requests
    assert sent == 0 and not (project / "outputs").exists()
    assert files_holding_the_key(synthdistill_home) == []
