"""The engine's asyncio loop, run in a background thread so that stages stay synchronous.

Async lives only at the I/O edge (DESIGN.md): stages are plain functions over records, so `Engine.map`
is an ordinary iterator that hands its coroutines to this loop and takes the results back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any


class LoopThread:
    """One asyncio loop in a daemon thread, started on first use and again after `stop`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started (with its thread) if it is not."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name=self._name, daemon=True)
            self._thread.start()
        return self._loop

    def stop(self, last: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Cancel what still runs on the loop (a map its caller left, by Ctrl-C or an error), run `last()`,
        then stop the loop and its thread; nothing if it was never started."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(_cancel_then(last), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None


async def _cancel_then(last: Callable[[], Coroutine[Any, Any, None]]) -> None:
    # Tasks left pending when the loop stops are destroyed with a warning on stderr at exit.
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await last()
