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
