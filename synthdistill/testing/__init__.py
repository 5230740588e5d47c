"""Test helpers that ship with the package: a scripted OpenAI-compatible server for tests and benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthdistill.testing.scripted_server import ScriptedServer, ServerStats, default_responder

__all__ = ["ScriptedServer", "ServerStats", "default_responder"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so aiohttp loads only when a test or benchmark asks for the server.
    if name in __all__:
        from synthdistill.testing import scripted_server

        return getattr(scripted_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
