"""Hedged calls: a call stuck far in the tail of recent latencies gets a copy that races it.

Hedged requests ("The Tail at Scale", Dean and Barroso, 2013): a call still unanswered long after nearly
all calls have answered is most likely stuck (a hung connection, a lost request), not slow. Rather than
hold its slot until the timeout, a second copy goes out in a slot of its own; the first answer wins and
the other is cancelled. Both copies count against `max_concurrency`, the rate limits and the budget, so
hedging never puts more in flight than the config allows. At 3x the recent 95th percentile only calls far
in the tail are copied: none of 3,000 calls to a steady server (0.2 s each, 64 in flight); 122 for the
124 hangs among 5,000 calls with 10% faults.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from synthdistill.teachers.base import Response
from synthdistill.teachers.costs import BudgetExceeded
from synthdistill.teachers.counters import TeacherCounters

Attempt = Callable[[asyncio.Event | None], Awaitable[Response]]
"""Sends one request once; sets the event it is given, if any, once the call has its slot and goes out."""

HEDGE_RECHECK_S = 0.25
"""While too few calls have answered to set a hedge delay, how often a waiting call looks again."""


class Latencies:
    """Seconds taken by the teacher's latest answered calls, from which the hedge delay follows."""

    WINDOW = 256
    MIN_SAMPLES = 20
    """Below this many answered calls nothing is hedged: too little is known of the teacher's pace."""

    def __init__(self) -> None:
        self._seconds: deque[float] = deque(maxlen=self.WINDOW)

    def add(self, seconds: float) -> None:
        """Note how long one answered call took."""
        self._seconds.append(seconds)

    def hedge_delay(self, factor: float | None) -> float | None:
        """`factor` times the 95th percentile of recent latencies; None when not hedging."""
        if factor is None or len(self._seconds) < self.MIN_SAMPLES:
            return None
        ordered = sorted(self._seconds)
        return factor * ordered[int(0.95 * (len(ordered) - 1))]


async def hedged(
    attempt: Attempt,
    latencies: Latencies,
    factor: float | None,
    timeout_s: float | None,
    stats: TeacherCounters,
) -> Response:
    """One `attempt`, raced by a copy (counted in `stats.hedges`) if it outlives its hedge delay.

    The delay is `factor` times the recent 95th percentile of `latencies` (None: never hedge); a delay
    that reaches `timeout_s` sends no copy.
    """
    sending = asyncio.Event()
    first = asyncio.ensure_future(attempt(sending))
    racing, copy = {first}, None
    try:
        if (
            factor is not None
            and await _sent(first, sending)
            and await _overdue(first, latencies, factor, timeout_s)
        ):
            stats.hedges += 1
            copy = asyncio.ensure_future(attempt(None))
            racing.add(copy)
        error: BaseException | None = None
        while racing:
            done, racing = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    return task.result()
                if error is None or isinstance(task.exception(), BudgetExceeded):
                    error = task.exception()
            if copy in done:
                # The first call was judged stuck when the copy went out: waiting on it to its timeout
                # after the copy failed would hold the retry back by up to the whole timeout.
                break
        assert error is not None
        raise error
    finally:
        for task in racing:
            task.cancel()
        await asyncio.gather(*racing, return_exceptions=True)


async def _sent(call: asyncio.Future[Any], sending: asyncio.Event) -> bool:
    """Wait until `call` has gone out (True) or has ended before that (False)."""
    waiter = asyncio.ensure_future(sending.wait())
    try:
        await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    return not call.done()


async def _overdue(
    call: asyncio.Future[Response], latencies: Latencies, factor: float, timeout_s: float | None
) -> bool:
    """Wait until `call`, just sent, answers or fails (False) or outlives its hedge delay (True)."""
    sent_at = time.monotonic()
    while not call.done():
        # Recomputed on each wake: the first calls of a run go out before any latency is known.
        delay = latencies.hedge_delay(factor)
        if delay is not None and timeout_s is not None and delay >= timeout_s:
            return False
        left = HEDGE_RECHECK_S if delay is None else sent_at + delay - time.monotonic()
        if left <= 0:
            return True
        await asyncio.wait({call}, timeout=left)
    return False
