"""Rate limits: requests and tokens per minute, from the config and from the provider's own headers.

The engine asks the limiter before every call. Limits from the config are token buckets refilled
continuously (a minute's quota spread over the minute, as providers enforce them); a provider's
`x-ratelimit-*` headers saying its window is used up pause every request of the teacher until the
window resets, so the requests in flight do not turn into a storm of 429s. (A single 429's Retry-After
holds back only its own request: see the engine.)
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict


class RateLimitInfo(BaseModel):
    """What a provider's response headers say of its limits; None where a header is absent."""

    model_config = ConfigDict(extra="forbid")

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """Read OpenAI-style `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers (vLLM, Azure too)."""
        info = cls(
            remaining_requests=_int(headers.get("x-ratelimit-remaining-requests")),
            remaining_tokens=_int(headers.get("x-ratelimit-remaining-tokens")),
            reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
            reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        )
        return info if info != cls() else None


class RateLimiter:
    """Requests-per-minute and tokens-per-minute buckets plus a shared pause, for one teacher."""

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._requests = _Bucket(rpm, clock) if rpm else None
        self._tokens = _Bucket(tpm, clock) if tpm else None
        self._paused_until = 0.0

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of about `tokens` tokens may be sent, then take its share."""
        while True:
            wait = max(
                self._paused_until - self._clock(),
                self._requests.wait(1) if self._requests else 0.0,
                self._tokens.wait(tokens) if self._tokens else 0.0,
            )
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        if self._requests:
            self._requests.take(1)
        if self._tokens:
            self._tokens.take(tokens)

    def settle(self, estimated: int, used: int) -> None:
        """Give back what a request's estimate took beyond the tokens it used (or take the excess)."""
        if self._tokens:
            self._tokens.take(used - estimated)

    def pause(self, seconds: float) -> None:
        """Hold every request back for `seconds` (an exhausted window)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, info: RateLimitInfo | None) -> None:
        """Pause until the provider's window resets when its headers say the window is used up."""
        if info is None:
            return
        if info.remaining_requests == 0 and info.reset_requests_s:
            self.pause(info.reset_requests_s)
        if info.remaining_tokens == 0 and info.reset_tokens_s:
            self.pause(info.reset_tokens_s)


def parse_duration(value: str | None) -> float | None:
    """Seconds in a provider's reset header: "1s", "6m0s", "20ms", "1h2m3.5s" or a bare number."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(value.strip())
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


class _Bucket:
    """A token bucket holding one second's worth of a per-minute rate, refilled continuously."""

    def __init__(self, per_minute: float, clock: Callable[[], float]) -> None:
        self.rate = per_minute / 60.0
        # One second's worth: providers enforce a minute's quota in finer slices (OpenAI: per second),
        # so a full minute's burst at start would be refused.
        self.capacity = max(self.rate, 1.0)
        self.level = self.capacity
        self._clock = clock
        self._last = clock()

    def wait(self, amount: float) -> float:
        """Seconds until `amount` may be taken; an amount above capacity needs only a full bucket."""
        self._refill()
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        """Take `amount`, or give it back when negative; a debt below zero is repaid before the next take."""
        self._refill()
        self.level = min(self.capacity, self.level - amount)

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._last) * self.rate)
        self._last = now


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None
