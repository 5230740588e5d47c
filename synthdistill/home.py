"""Where caches and converted models live: `SYNTHDISTILL_HOME`, default ~/.cache/synthdistill."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The synthdistill home folder, created on first use."""
    root = Path(os.environ.get("SYNTHDISTILL_HOME") or Path.home() / ".cache" / "synthdistill")
    root.mkdir(parents=True, exist_ok=True)
    return root
