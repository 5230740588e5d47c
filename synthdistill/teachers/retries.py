"""How long a failed call waits before its retry: none while failures are sparse, growing once they are not.

Exponential backoff protects a teacher that is failing broadly (down, overloaded) from a storm of
retries; it does nothing for one whose calls fail now and then (a stray 500, a malformed body, a dropped
connection): the next attempt is as likely to succeed at once as in two seconds. Waiting then only
lengthens the record's chain of attempts, and the run ends with the last such chain: with 10% faults
(bench/teacher_throughput.py) the last records' backoffs of up to 0.5, 1 and 2 s left a tail of 2 to 3 s
with few calls in flight. So, as retry budgets do (Finagle, gRPC's retry throttling), the policy looks at
the share of recent calls that failed: under `SPARSE` a retry goes out at once; at or above it, or while
too few calls are known, it backs off exponentially with jitter. A 429's Retry-After is always waited
out, and a provider's rate-limit headers pause every call (limits.py).
"""

from __future__ import annotations

import random
from collections import deque


class Backoff:
    """The delay before each retry, from the recent share of failed calls and the attempt's number."""

    WINDOW = 100
    """How many of the latest calls' outcomes the failure share is taken over."""
    MIN_SAMPLES = 20
    """Below this many known outcomes every retry backs off: a teacher that is down fails its first calls."""
    SPARSE = 0.2
    """Failure share under which retries go out at once: 10% faults stay well under it, an outage far over."""

    def __init__(self, base_s: float, max_s: float, seed: int = 0) -> None:
        """Back off `base_s` x 2^attempt seconds at most, never over `max_s`, with jitter seeded by `seed`."""
        self.base_s = base_s
        self.max_s = max_s
        self._outcomes: deque[bool] = deque(maxlen=self.WINDOW)
        self._random = random.Random(seed)

    def observe(self, failed: bool) -> None:
        """Note whether one finished call failed (a cancelled call is not noted)."""
        self._outcomes.append(failed)

    def sparse(self) -> bool:
        """Whether failures are few enough among the recent calls that a retry may go out at once."""
        known = len(self._outcomes)
        return known >= self.MIN_SAMPLES and sum(self._outcomes) < self.SPARSE * known

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retrying after failed attempt number `attempt` (0 for the first call)."""
        if retry_after:
            return retry_after
        if self.sparse():
            return 0.0
        # Jitter keeps many calls that failed together from retrying together.
        ceiling = min(self.max_s, self.base_s * 2**attempt)
        return self._random.uniform(ceiling / 2, ceiling)
