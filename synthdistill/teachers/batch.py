"""Batch jobs: a teacher's requests sent through an OpenAI-style batch API instead of one by one.

Requests gather until a batch is full (or none has come for `flush_s` seconds); the batch is uploaded
as a JSONL file (`POST /v1/files`), submitted (`POST /v1/batches`), and polled until the provider has
answered; each request then gets its own completion, or a `TransientError` that makes the engine ask
again (in a later batch). Every submitted job is written to a journal in the run folder
(outputs/<run>/batches.jsonl) before it is polled: after a kill or a restart, a request that belongs to
a job still open attaches to that job and waits for it, instead of being paid for a second time.

A request's `custom_id` is the hash of its body, so the same request finds its job again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from synthdistill.config import BatchAPIConfig
from synthdistill.records import stable_hash
from synthdistill.teachers.base import Response, TransientError

log = logging.getLogger(__name__)

_DONE = ("completed", "failed", "expired", "cancelled")


class BatchQueue:
    """Collects requests into batch jobs, submits and polls them, and answers each request."""

    def __init__(self, client: Any, config: BatchAPIConfig, where: str, to_response: Any) -> None:
        """`to_response(body, where)` turns a chat-completion JSON body into a `Response`."""
        self._client = client
        self._config = config
        self._where = where
        self._to_response = to_response
        self._journal: Path | None = None
        self._waiting: list[tuple[str, dict[str, Any]]] = []
        self._futures: dict[str, list[asyncio.Future[Response]]] = {}
        self._reopen: dict[str, str] = {}
        """custom_id -> id of a job submitted before a restart and not yet seen finished."""
        self._jobs: dict[str, list[str]] = {}
        """Those jobs' custom ids."""
        self._unclaimed: dict[str, Response | Exception] = {}
        """Answers from reopened jobs to requests not asked (again) yet."""
        self._polls: dict[str, asyncio.Task[None]] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def aclose(self) -> None:
        """Close the client."""
        await self._client.close()

    def use_journal(self, path: Path) -> None:
        """Keep job ids in `path`, and reopen the jobs it lists as unfinished."""
        self._journal = path
        self._jobs = _unfinished(path)
        for batch_id, custom_ids in self._jobs.items():
            for custom_id in custom_ids:
                self._reopen[custom_id] = batch_id

    async def complete(self, body: dict[str, Any]) -> Response:
        """The answer to one chat-completions body, once its batch job has finished."""
        custom_id = stable_hash(body, length=32)
        if custom_id in self._unclaimed:
            answer = self._unclaimed.pop(custom_id)
            if isinstance(answer, Exception):
                raise answer
            return answer
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        first = custom_id not in self._futures
        self._futures.setdefault(custom_id, []).append(future)
        batch_id = self._reopen.pop(custom_id, None)
        if batch_id is not None:
            if batch_id not in self._polls:
                log.info("reopening batch job %s after a restart", batch_id)
                self._polls[batch_id] = asyncio.ensure_future(self._poll(batch_id, self._jobs[batch_id]))
        elif first:
            self._waiting.append((custom_id, body))
            if len(self._waiting) >= self._config.max_requests:
                self._submit()
            else:
                self._schedule_flush()
        try:
            return await future
        finally:
            waiting = self._futures.get(custom_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._futures[custom_id]

    def _schedule_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._config.flush_s, self._submit)

    def _submit(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._waiting = self._waiting, []
        if items:
            task = asyncio.ensure_future(self._send(items))
            self._polls[f"pending-{id(task)}"] = task

    async def _send(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        custom_ids = [custom_id for custom_id, _ in items]
        lines = "".join(
            json.dumps({"custom_id": c, "method": "POST", "url": "/v1/chat/completions", "body": b}) + "\n"
            for c, b in items
        )
        try:
            file = await self._client.files.create(
                file=("synthdistill-batch.jsonl", lines.encode()), purpose="batch"
            )
            batch = await self._client.batches.create(
                input_file_id=file.id,
                endpoint="/v1/chat/completions",
                completion_window=self._config.completion_window,
            )
        except Exception as exc:
            self._fail(custom_ids, f"could not submit a batch job ({type(exc).__name__}: {exc})")
            return
        self._write(
            {"event": "submitted", "batch_id": batch.id, "file_id": file.id, "custom_ids": custom_ids}
        )
        log.info("submitted batch job %s with %d requests", batch.id, len(items))
        await self._poll(batch.id, custom_ids)

    async def _poll(self, batch_id: str, custom_ids: list[str]) -> None:
        """Wait for a job to finish and answer its requests."""
        while True:
            try:
                batch = await self._client.batches.retrieve(batch_id)
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                if status == 404:  # the provider no longer knows it: ask again in a new job
                    self._write({"event": "finished", "batch_id": batch_id, "status": "lost"})
                    self._fail(custom_ids, f"batch job {batch_id} is gone")
                    return
                log.info("polling batch job %s failed (%s); trying again", batch_id, exc)
            else:
                if batch.status in _DONE:
                    break
            await asyncio.sleep(self._config.poll_s)
        answered: set[str] = set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                answered |= await self._deliver(file_id)
        self._write({"event": "finished", "batch_id": batch_id, "status": batch.status})
        missing = [c for c in custom_ids if c not in answered]
        for custom_id in custom_ids:
            self._reopen.pop(custom_id, None)  # answered or failed above: no later ask waits on this job
        if missing:
            self._fail(missing, f"batch job {batch_id} ended {batch.status} without answering")

    async def _deliver(self, file_id: str) -> set[str]:
        content = await self._client.files.content(file_id)
        answered = set()
        for line in content.text.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            custom_id = row.get("custom_id", "")
            answered.add(custom_id)
            response = row.get("response") or {}
            if response.get("status_code") == 200:
                try:
                    result: Response | Exception = self._to_response(response.get("body"), self._where)
                except TransientError as exc:
                    result = exc
            else:
                error = (response.get("body") or {}).get("error") or row.get("error") or {}
                result = TransientError(
                    f"{self._where}: a batch line failed (HTTP {response.get('status_code')}): "
                    f"{error.get('message', 'no message')}"
                )
            futures = [f for f in self._futures.get(custom_id, []) if not f.done()]
            if not futures and custom_id in self._reopen:
                self._unclaimed[custom_id] = result
            for future in futures:
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        return answered

    def _fail(self, custom_ids: list[str], reason: str) -> None:
        error = TransientError(f"{self._where}: {reason}")
        for custom_id in custom_ids:
            if custom_id in self._reopen:
                self._unclaimed[custom_id] = error
            for future in self._futures.get(custom_id, []):
                if not future.done():
                    future.set_exception(error)

    def _write(self, event: dict[str, Any]) -> None:
        if self._journal is None:
            return
        # Appended and flushed before polling starts, so a kill right after submitting still finds the job.
        with self._journal.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **event}) + "\n")
            handle.flush()


def _unfinished(path: Path) -> dict[str, list[str]]:
    """Jobs a journal lists as submitted and not finished: job id -> custom ids."""
    if not path.exists():
        return {}
    open_jobs: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill
        if event.get("event") == "submitted":
            open_jobs[event["batch_id"]] = event["custom_ids"]
        elif event.get("event") == "finished":
            open_jobs.pop(event["batch_id"], None)
    return open_jobs
