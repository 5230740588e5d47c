"""synthdistill: distil large language models through their outputs.

    >>> import synthdistill
    >>> manifest = synthdistill.run("pipelines/cot.yaml", limit=10)

Names are imported on first use, so `import synthdistill` (and the CLI's --help) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CallCache": "synthdistill.teachers.cache",
    "ConfigError": "synthdistill.errors",
    "CriticError": "synthdistill.errors",
    "DataError": "synthdistill.errors",
    "Engine": "synthdistill.teachers.engine",
    "Manifest": "synthdistill.runs.folder",
    "Pipeline": "synthdistill.config",
    "Record": "synthdistill.records",
    "RunError": "synthdistill.errors",
    "Sample": "synthdistill.records",
    "StageError": "synthdistill.errors",
    "SynthdistillError": "synthdistill.errors",
    "TeacherError": "synthdistill.errors",
    "TemplateError": "synthdistill.errors",
    "Verdict": "synthdistill.records",
    "load_pipeline": "synthdistill.config",
    "run": "synthdistill.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'synthdistill' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
