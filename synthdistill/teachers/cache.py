"""The call cache: SQLite in WAL mode, one row per teacher sample, keyed by the hash of the call.

A key hashes (backend, model identity, messages, sampling parameters, sample index); the endpoint
address is left out so that several endpoints of one model share hits. Each sample is committed as
soon as it arrives, so a kill loses at most the calls in flight.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from synthdistill.records import stable_hash

# Named migrations, applied in order; PRAGMA user_version counts those done (as simonw/llm does).
_MIGRATIONS: list[tuple[str, str]] = [
    (
        "create_calls",
        """CREATE TABLE IF NOT EXISTS calls (
            key TEXT PRIMARY KEY,
            backend TEXT NOT NULL,
            model TEXT NOT NULL,
            response TEXT NOT NULL,
            created REAL NOT NULL
        )""",
    ),
]


def call_key(
    backend: str, model: str, messages: list[dict[str, str]], params: dict[str, Any], index: int
) -> str:
    """The cache key of sample `index` of a call."""
    return stable_hash(backend, model, messages, params, index, length=32)


class CallCache:
    """A thread-safe SQLite store of teacher samples."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # The engine's event loop runs in its own thread; one connection guarded by a lock serves it.
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable against a process kill (not a power cut), and much faster than FULL.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored sample for `key`, or None."""
        with self._lock:
            row = self._db.execute("SELECT response FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, backend: str, model: str, response: dict[str, Any]) -> None:
        """Store one sample; the first answer for a key wins."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO calls (key, backend, model, response, created) VALUES (?, ?, ?, ?, ?)",
                (key, backend, model, json.dumps(response, ensure_ascii=False), time.time()),
            )

    def stats(self) -> dict[str, Any]:
        """Row counts per backend and model, and the file size."""
        with self._lock:
            rows = self._db.execute(
                "SELECT backend, model, COUNT(*) FROM calls GROUP BY backend, model ORDER BY 3 DESC"
            ).fetchall()
        return {
            "path": str(self.path),
            "entries": sum(row[2] for row in rows),
            "bytes": self.path.stat().st_size if self.path.exists() else 0,
            "models": [{"backend": b, "model": m, "entries": n} for b, m, n in rows],
        }

    def clear(self, model: str | None = None) -> int:
        """Delete every entry, or those of one model; returns how many went."""
        with self._lock:
            if model is None:
                cursor = self._db.execute("DELETE FROM calls")
            else:
                cursor = self._db.execute("DELETE FROM calls WHERE model = ?", (model,))
            self._db.execute("VACUUM")
        return cursor.rowcount

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        with self._lock:
            done = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number, (_name, sql) in enumerate(_MIGRATIONS[done:], start=done + 1):
                self._db.execute(sql)
                self._db.execute(f"PRAGMA user_version = {number}")
