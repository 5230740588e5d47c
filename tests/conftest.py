"""Shared fixtures: each test gets its own SYNTHDISTILL_HOME; the embedded model is converted once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder shared by the session, so the GGUF is converted once (it costs ~25 s)."""
    return tmp_path_factory.mktemp("models-home")


@pytest.fixture(autouse=True)
def synthdistill_home(tmp_path: Path, models_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SYNTHDISTILL_HOME per test; only converted models are shared between tests."""
    home = tmp_path / "synthdistill-home"
    home.mkdir()
    (home / "models").symlink_to(models_home, target_is_directory=True)
    monkeypatch.setenv("SYNTHDISTILL_HOME", str(home))
    return home


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (GSM8K, SVAMP, Self-Instruct seeds), or skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


REVIEW_PIPELINE = """
name: r
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
data: {{source: builtin:arith, split: {{train: 8, test: 2}}}}
stages:
  - generate: {{template: cot_rationale.j2, n: 3, temperature: 0.7}}
  - self_consistency: {{keep: all}}
  - filter: {{critics: [answer_match]}}
"""
HOSTILE_TEXT = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
"""Markup a teacher might write; the review page must show it as text and never run it."""


@pytest.fixture
def review_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A finished run (outputs/r: generate, self_consistency, filter) made through the scripted server.

    Sample 0 of each problem is right and the others are off by one, so the filter keeps one record in
    three; the first problem's rationales carry HOSTILE_TEXT. Yields (pipeline path, run folder, server).
    """
    from synthdistill.config import load_pipeline
    from synthdistill.data import load_splits
    from synthdistill.pipeline import RunOptions, run_pipeline
    from synthdistill.testing.scripted_server import ScriptedServer

    monkeypatch.chdir(tmp_path)
    with ScriptedServer() as server:
        path = tmp_path / "r.yaml"
        path.write_text(REVIEW_PIPELINE.format(url=server.url))
        train, _ = load_splits(load_pipeline(path).config.data, seed=0, base_dir=tmp_path)
        gold = {r.input["question"]: int(r.input["answer"]) for r in train}
        first = train[0].input["question"]

        def respond(messages, params, index):
            question = messages[-1]["content"]
            answer = gold[question] + index
            extra = f" {HOSTILE_TEXT}" if question == first else ""
            return f"Working it out gives {answer}.{extra}\nThe answer is {answer}."

        server.responder = respond
        run_pipeline(load_pipeline(path), RunOptions())
        yield path, tmp_path / "outputs" / "r", server


@pytest.fixture
def make_ctx():
    """Makes real StageContexts (tests/critic_helpers.py `stage_context`), closing them after the test."""
    from critic_helpers import stage_context

    made = []

    def make(*args, **kwargs):
        made.append(stage_context(*args, **kwargs))
        return made[-1]

    yield make
    for ctx in made:
        ctx.run.close()
