"""What the scripted server counts: the `ServerStats` snapshot and the lock-guarded counters behind it."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FAULT_KINDS = ("429", "500", "hang", "malformed", "truncated", "401", "quota")
"""Names of the counters in `ServerStats.faults`."""


class ServerStats(BaseModel):
    """A snapshot of what the server has seen since it started or since `reset_stats()`."""

    model_config = ConfigDict(extra="forbid")

    requests: int = Field(0, description="Requests received, on every path, faults included.")
    by_path: dict[str, int] = Field(default_factory=dict, description="Requests received per URL path.")
    in_flight: int = Field(0, description="Requests being handled when the snapshot was taken.")
    peak_in_flight: int = Field(0, description="Most requests handled at the same moment.")
    bodies: list[dict[str, Any]] = Field(
        default_factory=list, description="The last `record_bodies` chat request bodies, oldest first."
    )
    queries: list[str] = Field(
        default_factory=list, description="The query strings of the last `record_bodies` chat requests."
    )
    arrivals: list[float] = Field(
        default_factory=list,
        description="time.monotonic() at which each of the last `record_bodies` chat requests arrived.",
    )
    faults: dict[str, int] = Field(
        default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0),
        description="How often each fault was injected: 429, 500, hang, malformed, truncated, 401, "
        "and quota (a 429 for a request over `rpm_limit`).",
    )


class StatsRecorder:
    """Counts what the server sees; written on the server's loop, read from the caller's thread."""

    def __init__(self, record_bodies: int) -> None:
        """Start from zero, keeping the last `record_bodies` chat request bodies."""
        self._lock = threading.Lock()
        self._counters = _Counters(record_bodies)

    def snapshot(self) -> ServerStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return self._counters.snapshot()

    def reset(self, record_bodies: int) -> None:
        """Zero the counters and forget the recorded bodies (requests in flight stay counted)."""
        with self._lock:
            in_flight = self._counters.in_flight
            self._counters = _Counters(record_bodies)
            self._counters.in_flight = self._counters.peak_in_flight = in_flight

    def request_started(self, path: str) -> None:
        """Count a request on `path` as received and in flight."""
        with self._lock:
            counters = self._counters
            counters.requests += 1
            counters.by_path[path] = counters.by_path.get(path, 0) + 1
            counters.in_flight += 1
            counters.peak_in_flight = max(counters.peak_in_flight, counters.in_flight)

    def request_finished(self) -> None:
        """Count a request as no longer in flight."""
        with self._lock:
            self._counters.in_flight -= 1

    def chat_request(self, body: dict[str, Any], query: str) -> None:
        """Keep a chat request's body, arrival time and query string among the recent ones."""
        with self._lock:
            self._counters.bodies.append(body)
            self._counters.arrivals.append(time.monotonic())
            self._counters.queries.append(query)

    def fault(self, kind: str) -> None:
        """Count one fault of `kind`, one of `FAULT_KINDS`."""
        with self._lock:
            self._counters.faults[kind] += 1


class _Counters:
    """The mutable counters behind `ServerStats`; guarded by the recorder's lock."""

    def __init__(self, record_bodies: int) -> None:
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self.bodies: deque[dict[str, Any]] = deque(maxlen=max(record_bodies, 0))
        self.arrivals: deque[float] = deque(maxlen=max(record_bodies, 0))
        self.queries: deque[str] = deque(maxlen=max(record_bodies, 0))
        self.faults = dict.fromkeys(FAULT_KINDS, 0)

    def snapshot(self) -> ServerStats:
        return ServerStats(
            requests=self.requests,
            by_path=dict(self.by_path),
            in_flight=self.in_flight,
            peak_in_flight=self.peak_in_flight,
            bodies=list(self.bodies),
            arrivals=list(self.arrivals),
            queries=list(self.queries),
            faults=dict(self.faults),
        )
