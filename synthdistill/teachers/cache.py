"""The call cache: SQLite in WAL mode, one row per teacher sample, keyed by the hash of the call.

A key hashes (backend, model identity, messages, sampling parameters, sample index); the endpoint
address is left out so that several endpoints of one model share hits. Each sample is committed as
soon as it arrives, so a kill loses at most the calls in flight. The file is made at the first sample
stored: a run that only reads (a dry run) leaves none behind.
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
        self._lock = threading.Lock()
        # The engine's event loop runs in its own thread; one connection guarded by a lock serves it.
        self._db: sqlite3.Connection | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored sample for `key`, or None."""
        with self._lock:
            db = self._existing()
            if db is None:
                return None
            row = db.execute("SELECT response FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, backend: str, model: str, response: dict[str, Any]) -> None:
        """Store one sample; the first answer for a key wins."""
        with self._lock:
            self._open().execute(
                "INSERT OR IGNORE INTO calls (key, backend, model, response, created) VALUES (?, ?, ?, ?, ?)",
                (key, backend, model, json.dumps(response, ensure_ascii=False), time.time()),
            )

    def stats(self) -> dict[str, Any]:
        """Row counts per backend and model, and the file size."""
        with self._lock:
            db = self._existing()
            query = "SELECT backend, model, COUNT(*) FROM calls GROUP BY backend, model ORDER BY 3 DESC"
            rows = [] if db is None else db.execute(query).fetchall()
        return {
            "path": str(self.path),
            "entries": sum(row[2] for row in rows),
            "bytes": self.path.stat().st_size if self.path.exists() else 0,
            "models": [{"backend": b, "model": m, "entries": n} for b, m, n in rows],
        }

    def clear(self, model: str | None = None) -> int:
        """Delete every entry, or those of one model; returns how many went."""
        with self._lock:
            db = self._existing()
            if db is None:
                return 0
            if model is None:
                cursor = db.execute("DELETE FROM calls")
            else:
                cursor = db.execute("DELETE FROM calls WHERE model = ?", (model,))
            db.execute("VACUUM")
        return cursor.rowcount

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _existing(self) -> sqlite3.Connection | None:
        """The connection, or None while no sample was ever stored (no file). Called with the lock held."""
        if self._db is None and not self.path.is_file():
            return None
        return self._open()

    def _open(self) -> sqlite3.Connection:
        """The connection, opened at first use (making the file and its folder). Called with the lock held."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode is durable against a kill (not a power cut), and much faster than FULL.
            db.execute("PRAGMA synchronous=NORMAL")
            done = db.execute("PRAGMA user_version").fetchone()[0]
            for number, (_name, sql) in enumerate(_MIGRATIONS[done:], start=done + 1):
                db.execute(sql)
                db.execute(f"PRAGMA user_version = {number}")
            self._db = db
        return self._db
