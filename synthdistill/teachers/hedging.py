"""Hedged calls: a call stuck far in the tail of recent latencies gets a copy that races it.

Hedged requests ("The Tail at Scale", Dean and Barroso, 2013): a call still unanswered long after nearly
all calls have answered is most likely stuck (a hung connection, a lost request), not slow. Rather than
hold its slot until the timeout, a second copy goes out in a slot of its own; the first answer wins and
the other is cancelled. Both copies count against `max_concurrency`, the rate limits and the budget, so
hedging never puts more in flight than the config allows. At 3x the recent 95th percentile only calls far
in the tail are copied: none of 4,000 calls to a steady server (0.2 s each, 64 in flight); 124 for the
124 hangs among 5,000 calls with 10% faults. A copy stuck too gets a copy of its own (`MAX_COPIES`), and
the race as a whole ends at the first call's timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

from synthdistill.teachers.base import Response
from synthdistill.teachers.costs import BudgetExceeded
from synthdistill.teachers.counters import TeacherCounters

Attempt = Callable[[asyncio.Event | None], Awaitable[Response]]
"""Sends one request once; sets the event it is given, if any, once the call has its slot and goes out."""

HEDGE_RECHECK_S = 0.25
"""While too few calls have answered to set a hedge delay, how often a waiting call looks again."""

MAX_COPIES = 2
"""Copies one request's call may get. A copy that is stuck too (at 10% faults, about 1 in 40 copies of a
hung call hang as well) gets one of its own, rather than both holding the request to its timeout."""


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
    that reaches `timeout_s` sends no copy. A copy that outlives its own delay gets one too, up to
    `MAX_COPIES`. The race ends with the first answer, with the latest copy's failure, or `timeout_s`
    after the first call went out, whichever comes first.
    """
    calls = [_Call(attempt)]
    deadline: float | None = None
    error: BaseException | None = None
    try:
        while True:
            newest = calls[-1]
            racing = {call.task for call in calls if not call.task.done()}
            if not racing:
                break
            now = time.monotonic()
            overdue, wake_in = _overdue(newest, latencies, factor, timeout_s, now)
            if overdue and len(calls) <= MAX_COPIES:
                stats.hedges += 1
                calls.append(_Call(attempt))
                continue
            waits: set[asyncio.Future[Any]] = set(racing)
            went_out = None
            if factor is not None and newest.sent_at is None:
                went_out = asyncio.ensure_future(newest.sending.wait())
                waits.add(went_out)
            if deadline is not None and len(calls) > 1:
                # A copy gets what is left of the first call's timeout, not a timeout of its own: where the
                # copy is stuck too, its own timeout would hold the retry back by its late start.
                wake_in = min(wake_in or timeout_s or 0.0, max(deadline - now, 0.0))
            done, _ = await asyncio.wait(waits, timeout=wake_in, return_when=asyncio.FIRST_COMPLETED)
            if went_out is not None:
                went_out.cancel()
                if newest.sending.is_set():
                    newest.sent_at = time.monotonic()
                    if deadline is None and timeout_s is not None:
                        deadline = newest.sent_at + timeout_s
            for task in done & racing:
                if task.exception() is None:
                    return cast(Response, task.result())
                if error is None or isinstance(task.exception(), BudgetExceeded):
                    error = task.exception()
            if len(calls) > 1 and newest.task in done:
                # The calls before it were judged stuck when it went out: waiting on them to their timeout
                # after the latest copy failed would hold the retry back by up to the whole timeout.
                break
            if len(calls) > 1 and deadline is not None and time.monotonic() >= deadline:
                break
        raise error or TimeoutError(f"no answer within {timeout_s:g} s from the call or its hedged copies")
    finally:
        unfinished = [call.task for call in calls if not call.task.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)


class _Call:
    """One call of a hedged request: its task, and when it went out (None until it has)."""

    def __init__(self, attempt: Attempt) -> None:
        self.sending = asyncio.Event()
        self.task = asyncio.ensure_future(attempt(self.sending))
        self.sent_at: float | None = None


def _overdue(
    call: _Call, latencies: Latencies, factor: float | None, timeout_s: float | None, now: float
) -> tuple[bool, float | None]:
    """Whether `call` has outlived its hedge delay, and if not, in how many seconds to look again (None: not
    before something happens; no copy is due)."""
    if factor is None or call.sent_at is None or call.task.done():
        return False, None
    # Recomputed on each look: the first calls of a run go out before any latency is known.
    delay = latencies.hedge_delay(factor)
    if delay is None:
        return False, HEDGE_RECHECK_S
    if timeout_s is not None and delay >= timeout_s:
        return False, None
    left = call.sent_at + delay - now
    return left <= 0, max(left, 0.0) or None
