"""Which fault a chat request gets: the seeded draw over the fault rates, the `hang_once` script, and the
`rpm_limit` quota with its x-ratelimit-* headers."""

from __future__ import annotations

import json
import math
import random
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthdistill.testing.scripted_server.server import ScriptedServer
    from synthdistill.testing.scripted_server.stats import StatsRecorder


class Faults:
    """Decides each chat request's fault from the server's settings at its arrival, and counts the fault."""

    def __init__(self, server: ScriptedServer, rng: random.Random, stats: StatsRecorder) -> None:
        """Read rates and quota from `server`, draw from `rng`, and count what is drawn in `stats`."""
        self._server = server
        self._rng = rng
        self._stats = stats
        self._hung: set[str] = set()
        self._hung_then: set[str] = set()
        self._window_start = time.monotonic()
        self._window_count = 0

    def draw(self, body: dict[str, Any]) -> str | None:
        """The fault of a request with `body` ("429", "500", "hang", ...), or None to answer it normally."""
        return self._hang_once(body) or self._draw_rate()

    def quota_headers(self) -> dict[str, str] | None:
        """Count this request against the window's quota; remaining "-1" marks one over it."""
        server = self._server
        if server.rpm_limit is None:
            return None
        now = time.monotonic()
        if now - self._window_start >= server.limit_window_s:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        reset = self._window_start + server.limit_window_s - now
        return {
            "x-ratelimit-limit-requests": str(server.rpm_limit),
            "x-ratelimit-remaining-requests": str(max(server.rpm_limit - self._window_count, -1)),
            # Rounded up, so a client that waits exactly this long lands in the next window.
            "x-ratelimit-reset-requests": f"{math.ceil(reset * 1000) / 1000:.3f}s",
        }

    def _draw_rate(self) -> str | None:
        server = self._server
        draw = self._rng.random()
        for kind, rate in (
            ("429", server.rate_429),
            ("500", server.rate_500),
            ("hang", server.rate_hang),
            ("malformed", server.rate_malformed),
            ("truncated", server.rate_truncated),
        ):
            if draw < rate:
                self._stats.fault(kind)
                return kind
            draw -= rate
        return None

    def _hang_once(self, body: dict[str, Any]) -> str | None:
        """A `hang_once` request's fault: a hang the first time, then `hang_once_then`, then none."""
        server = self._server
        if server.hang_once is None:
            return None
        messages = json.dumps(body["messages"], sort_keys=True)
        if server.hang_once not in messages:
            return None
        if messages not in self._hung:
            self._hung.add(messages)
            self._stats.fault("hang")
            return "hang"
        if server.hang_once_then is None or messages in self._hung_then:
            return None
        self._hung_then.add(messages)
        self._stats.fault(server.hang_once_then)
        return server.hang_once_then
