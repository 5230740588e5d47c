"""The engine's slots for calls in flight: `max_concurrency` of them, granted to the oldest request first."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

Slot = Callable[[], AbstractAsyncContextManager[None]]
"""Holds one of the engine's slots for requests in flight, at one request's priority."""


class Slots:
    """`max_concurrency` slots for calls in flight, granted to the waiting call of the oldest request first.

    An asyncio.Semaphore wakes waiters first come, first served; here a retry or a hedge of an early
    request would queue behind the whole window of later requests (a thousand, some seconds), while
    results leave in input order and wait for it. Granting slots by input index keeps the oldest
    requests moving, so the window does not stall behind them. asyncio has no priority semaphore.
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @asynccontextmanager
    async def hold(self, priority: int) -> AsyncIterator[None]:
        """Hold a slot; a lower `priority` number is served first."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if not granted.cancelled():  # granted just as the waiter was cancelled: pass the slot on
                self._release()
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():  # a cancelled waiter's future is done
                granted.set_result(None)
                return
        self._free += 1
