"""Registries of stages, teachers, critics and data sources, filled from entry points.

Built-ins are declared as entry points in synthdistill's own pyproject.toml, exactly as a plugin
declares its own, so both are found the same way. An entry point is loaded only when its name is
asked for, which keeps `synthdistill --help` free of heavy imports.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from synthdistill.errors import SynthdistillError

GROUPS = {
    "stage": "synthdistill.stages",
    "teacher": "synthdistill.teachers",
    "critic": "synthdistill.critics",
    "source": "synthdistill.sources",
}


class Registry:
    """Names to objects for one kind of plugin; unknown names list the valid ones."""

    def __init__(self, kind: str, error: type[SynthdistillError] = SynthdistillError) -> None:
        self.kind = kind
        self.group = GROUPS[kind]
        self._error = error
        self._loaded: dict[str, Any] = {}
        self._entry_points: dict[str, EntryPoint] | None = None

    def names(self) -> list[str]:
        """The sorted names registered so far or declared by entry points."""
        return sorted(set(self._eps()) | set(self._loaded))

    def register(self, name: str, obj: Any) -> None:
        """Register `obj` under `name` at run time (tests, notebooks)."""
        self._loaded[name] = obj

    def get(self, name: str) -> Any:
        """The object registered under `name`, loading its entry point on first use."""
        if name in self._loaded:
            return self._loaded[name]
        ep = self._eps().get(name)
        if ep is None:
            valid = ", ".join(self.names()) or "none"
            raise self._error(f"unknown {self.kind} {name!r}; valid names: {valid}")
        self._loaded[name] = ep.load()
        return self._loaded[name]

    def __contains__(self, name: str) -> bool:
        return name in self._loaded or name in self._eps()

    def _eps(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points


def registry(kind: str) -> Registry:
    """The process-wide registry of `kind` (stage, teacher, critic or source)."""
    if kind not in _REGISTRIES:
        from synthdistill import errors

        error: type[SynthdistillError] = {
            "critic": errors.CriticError,
            "teacher": errors.TeacherError,
            "source": errors.DataError,
        }.get(kind, errors.ConfigError)
        _REGISTRIES[kind] = Registry(kind, error)
    return _REGISTRIES[kind]


_REGISTRIES: dict[str, Registry] = {}
