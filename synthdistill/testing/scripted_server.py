"""A scripted OpenAI-compatible HTTP server for tests and benchmarks.

`ScriptedServer` answers `POST /v1/chat/completions` and `GET /v1/models` on 127.0.0.1 from a
background thread with its own event loop, so synchronous tests and async code alike can call it
over real sockets. What it answers comes from a `responder` callable; how it misbehaves comes from
fault rates drawn from a seeded random generator, so a flaky run can be replayed:

    with ScriptedServer(latency=0.2, rate_429=0.1, seed=0) as server:
        client = AsyncOpenAI(base_url=server.url, api_key="not-needed")
        ...
        assert server.stats.peak_in_flight == 32

Every setting is a constructor argument and a plain attribute that may be changed while the server
runs (`server.rate_500 = 1.0`); a request reads them when it arrives.

Token counts are whitespace-split words (`len(text.split())`), which is enough to test accounting
without a tokenizer. `stop` cuts a completion before the first stop string (finish_reason "stop");
`max_tokens` keeps the first that many words (finish_reason "length").

Fault kinds, one drawn per chat request (at most one; rates should sum to at most 1):
    rate_429        429 with a `Retry-After: <retry_after_s>` header and an OpenAI-shaped error body
    rate_500        500 with an OpenAI-shaped error body
    rate_hang       sleep `hang_s` seconds, then answer normally (clients should time out first)
    rate_malformed  200 with `Content-Type: application/json` and a JSON body cut off mid-way
    rate_truncated  200 whose completions are cut to half their words, finish_reason "length"
With `hang_once` set, the first request whose messages contain that text hangs, every later copy of the
same request is answered: a deterministic stuck call (counted as a "hang" fault).
With `required_key` set, a request without `Authorization: Bearer <required_key>` gets a 401
(counted in `stats.faults["401"]`), before any fault is drawn.

With `rpm_limit` set, the server enforces a request quota per fixed window of `limit_window_s`
seconds the way OpenAI reports it: every chat response carries `x-ratelimit-limit-requests`,
`x-ratelimit-remaining-requests` and `x-ratelimit-reset-requests` (such as "0.8s"), and a request
over the quota gets a 429 with those headers (counted in `stats.faults["quota"]`).

It also speaks OpenAI's batch API for offline jobs: `POST /v1/files` (purpose "batch", a JSONL file of
{custom_id, method, url, body} lines), `POST /v1/batches`, `GET /v1/batches/{id}` and
`GET /v1/files/{id}/content`. A batch stays "in_progress" for `batch_delay_s` seconds after it is
created, then its lines are answered by the same responder (a share `batch_line_error_rate` of them
as error lines with status 500) and it turns "completed". Batches live in memory, so a client that
restarts finds its batch where it left it while the server runs.

Run it on its own for benchmarks or manual tests; it prints its URL on stdout, then serves until
interrupted:

    python -m synthdistill.testing.scripted_server --port 8000 --latency 0.2 --rate-429 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import math
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

Responder = Callable[[list[dict[str, Any]], dict[str, Any], int], str | Awaitable[str]]
"""(messages, params, sample_index) -> completion text; params is the request body without messages."""

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


def default_responder(messages: list[dict[str, Any]], params: dict[str, Any], sample_index: int) -> str:
    """A short rationale ending in "The answer is N.", N a deterministic hash of the prompt and sample.

    The server cannot solve the question it is asked, so N (0 to 99) is only stable, not right: the
    same prompt and sample index always give the same N, and different samples of one prompt usually
    differ, which is what tests of voting and caching need. Tests that need right answers pass their
    own responder.
    """
    prompt = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    digest = hashlib.sha256(f"{prompt}\x00{sample_index}".encode()).digest()
    answer = int.from_bytes(digest[:4], "big") % 100
    return f"Let me work through the problem step by step. Combining the numbers gives {answer}. " + (
        f"The answer is {answer}."
    )


class ScriptedServer:
    """An OpenAI-compatible server on 127.0.0.1, run from a background thread; use it as a context manager."""

    def __init__(
        self,
        *,
        port: int = 0,
        latency: float = 0.0,
        responder: Responder | None = None,
        model: str = "scripted",
        rate_429: float = 0.0,
        retry_after_s: float = 1.0,
        rate_500: float = 0.0,
        rate_hang: float = 0.0,
        hang_s: float = 30.0,
        hang_once: str | None = None,
        hang_once_then: str | None = None,
        rate_malformed: float = 0.0,
        rate_truncated: float = 0.0,
        required_key: str | None = None,
        rpm_limit: int | None = None,
        limit_window_s: float = 60.0,
        batch_delay_s: float = 0.5,
        batch_line_error_rate: float = 0.0,
        seed: int = 0,
        record_bodies: int = 100,
    ) -> None:
        """Configure the server; `start()` (or `with`) binds the port.

        Args:
            port: TCP port on 127.0.0.1; 0 picks a free one (read it back from `.port` or `.url`).
            latency: Seconds each chat request waits before it is answered, 429s and 500s included
                (a hang waits `hang_s` instead).
            responder: Gives each completion's text; None uses `default_responder`.
            model: Model id listed by /v1/models (chat responses echo the requested model).
            rate_429, rate_500, rate_hang, rate_malformed, rate_truncated: Fault probabilities.
            retry_after_s: Seconds sent in the Retry-After header of a 429.
            hang_s: Seconds a hanging request sleeps before it answers.
            hang_once: Text that makes the first request carrying it in its messages hang.
            hang_once_then: A fault kind ("429", "500", "malformed") for the second request with those
                messages (a hung call's hedge copy or retry); the third is answered.
            required_key: When set, requests need `Authorization: Bearer <required_key>`.
            rpm_limit: Chat requests allowed per window, reported in x-ratelimit-* headers; None: no quota.
            limit_window_s: Length of the quota's window in seconds (60 for a per-minute quota).
            batch_delay_s: Seconds a batch job stays in progress before it completes.
            batch_line_error_rate: Probability that a line of a batch gets an error instead of an answer.
            seed: Seeds the generator that draws faults.
            record_bodies: How many recent chat request bodies `stats.bodies` keeps; 0 keeps none.
        """
        total = rate_429 + rate_500 + rate_hang + rate_malformed + rate_truncated
        if total > 1.0:
            raise ValueError(
                f"fault rates sum to {total:g}; at most one fault is drawn a request, keep them <= 1"
            )
        self.port = port
        self.latency = latency
        self.responder: Responder = responder or default_responder
        self.model = model
        self.rate_429 = rate_429
        self.retry_after_s = retry_after_s
        self.rate_500 = rate_500
        self.rate_hang = rate_hang
        self.hang_s = hang_s
        self.hang_once = hang_once
        self.hang_once_then = hang_once_then
        self._hung: set[str] = set()
        self._hung_then: set[str] = set()
        self.rate_malformed = rate_malformed
        self.rate_truncated = rate_truncated
        self.required_key = required_key
        self.rpm_limit = rpm_limit
        self.limit_window_s = limit_window_s
        self.record_bodies = record_bodies
        self._window_start = time.monotonic()
        self._window_count = 0
        self.batch_delay_s = batch_delay_s
        self.batch_line_error_rate = batch_line_error_rate
        self._files: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._rng = random.Random(seed)
        # Counters are written on the server's loop and read from the caller's thread.
        self._lock = threading.Lock()
        self._counters = _Counters(record_bodies)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The base URL clients use, such as http://127.0.0.1:8123/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def stats(self) -> ServerStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return self._counters.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and forget the recorded bodies (requests in flight stay counted)."""
        with self._lock:
            in_flight = self._counters.in_flight
            self._counters = _Counters(self.record_bodies)
            self._counters.in_flight = self._counters.peak_in_flight = in_flight

    def start(self) -> ScriptedServer:
        """Bind the port and serve from a background thread; returns once the server accepts requests."""
        if self._thread is not None:
            raise RuntimeError("the scripted server is already running; stop() it before starting it again")
        sock = _bind(self.port)
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ready, failure), name=f"scripted-server-{self.port}", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging requests, and join the thread."""
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._thread = None
        self._loop = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start_site(sock))
        except BaseException as exc:
            failure.append(exc)
            sock.close()
            ready.set()
            return
        ready.set()
        self._loop.run_forever()

    async def _start_site(self, sock: socket.socket) -> None:
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._count])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches/{batch_id}", self._get_batch)
        # handler_cancellation: a client that gives up (a timeout) ends its request, as vLLM does.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=1024).start()

    async def _shutdown(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Everything here runs on the one server loop, so the in-flight count and its peak are exact.
        with self._lock:
            counters = self._counters
            counters.requests += 1
            counters.by_path[request.path] = counters.by_path.get(request.path, 0) + 1
            counters.in_flight += 1
            counters.peak_in_flight = max(counters.peak_in_flight, counters.in_flight)
        try:
            if self.required_key is not None and request.headers.get("Authorization") != (
                f"Bearer {self.required_key}"
            ):
                self._fault("401")
                # Never echo the key that came in: tests check that no key reaches an error message.
                return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            return await handler(request)
        finally:
            with self._lock:
                self._counters.in_flight -= 1

    async def _models(self, request: web.Request) -> web.Response:
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "synthdistill"}
        return web.json_response({"object": "list", "data": [model]})

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or form.get("purpose") != "batch":
            return _error(
                400, "Send a multipart form with purpose=batch and a file.", "invalid_request_error"
            )
        content = upload.file.read()
        file_id = f"file-{len(self._files) + 1:06d}"
        self._files[file_id] = {"content": content, "filename": upload.filename}
        return web.json_response(_file_object(file_id, upload.filename, len(content)))

    async def _file_content(self, request: web.Request) -> web.Response:
        file = self._files.get(request.match_info["file_id"])
        if file is None:
            return _error(404, "No such file.", "invalid_request_error")
        return web.Response(body=file["content"], content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        file = self._files.get(body.get("input_file_id", ""))
        if file is None or body.get("endpoint") != "/v1/chat/completions":
            return _error(
                400,
                "input_file_id must name an uploaded file; endpoint /v1/chat/completions.",
                "invalid_request_error",
            )
        batch_id = f"batch_{len(self._batches) + 1:06d}"
        lines = [json.loads(line) for line in file["content"].decode().splitlines() if line.strip()]
        self._batches[batch_id] = {
            "created": time.time(),
            "due": time.monotonic() + self.batch_delay_s,
            "input_file_id": body["input_file_id"],
            "lines": lines,
            "output_file_id": None,
            "error_file_id": None,
            "counts": {"total": len(lines), "completed": 0, "failed": 0},
        }
        return web.json_response(self._batch_object(batch_id))

    async def _get_batch(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        batch = self._batches.get(batch_id)
        if batch is None:
            return _error(404, "No such batch.", "invalid_request_error")
        if batch["output_file_id"] is None and time.monotonic() >= batch["due"]:
            await self._finish_batch(batch_id, batch)
        return web.json_response(self._batch_object(batch_id))

    async def _finish_batch(self, batch_id: str, batch: dict[str, Any]) -> None:
        outputs, errors = [], []
        for number, line in enumerate(batch["lines"]):
            custom_id = line.get("custom_id")
            if self._rng.random() < self.batch_line_error_rate:
                body = {"error": {"message": "The scripted server failed this line.", "type": "server_error"}}
                errors.append(
                    {
                        "id": f"{batch_id}-{number}",
                        "custom_id": custom_id,
                        "response": {"status_code": 500, "body": body},
                        "error": None,
                    }
                )
                continue
            payload = await self._completion(line["body"], truncate=False)
            outputs.append(
                {
                    "id": f"{batch_id}-{number}",
                    "custom_id": custom_id,
                    "response": {"status_code": 200, "request_id": f"req-{number}", "body": payload},
                    "error": None,
                }
            )
        for kind, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self._files) + 1:06d}"
                content = "".join(json.dumps(row) + "\n" for row in rows).encode()
                self._files[file_id] = {"content": content, "filename": f"{batch_id}-{kind}.jsonl"}
                batch[kind] = file_id
        batch["output_file_id"] = batch["output_file_id"] or ""
        batch["counts"].update(completed=len(outputs), failed=len(errors))

    def _batch_object(self, batch_id: str) -> dict[str, Any]:
        batch = self._batches[batch_id]
        done = batch["output_file_id"] is not None
        return {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "created_at": int(batch["created"]),
            "input_file_id": batch["input_file_id"],
            "status": "completed" if done else "in_progress",
            "output_file_id": batch["output_file_id"] or None,
            "error_file_id": batch["error_file_id"],
            "request_counts": batch["counts"],
        }

    async def _chat(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "The request body is not valid JSON.", "invalid_request_error")
        problem = _check_chat_body(body)
        if problem:
            return _error(400, problem, "invalid_request_error")
        if self.record_bodies:
            with self._lock:
                self._counters.bodies.append(body)
                self._counters.arrivals.append(time.monotonic())
                self._counters.queries.append(request.query_string)
        quota = self._quota_headers()
        if quota is not None and quota["x-ratelimit-remaining-requests"] == "-1":
            self._fault("quota")
            quota["x-ratelimit-remaining-requests"] = "0"
            return _error(
                429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded", headers=quota
            )
        fault = self._hang_once(body) or self._draw_fault()
        if fault == "hang":
            assert self._closing is not None
            # Wakes early when the server stops, so a hanging request never delays shutdown.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hang_s)
        elif self.latency > 0:
            await asyncio.sleep(self.latency)
        if fault == "429":
            return _error(
                429,
                "Rate limit reached; please retry after a while.",
                "requests",
                "rate_limit_exceeded",
                headers={"Retry-After": f"{self.retry_after_s:g}"},
            )
        if fault == "500":
            return _error(
                500, "The scripted server had an error while processing your request.", "server_error"
            )
        try:
            payload = await self._completion(body, truncate=fault == "truncated")
        except Exception as exc:
            logger.exception("the scripted server's responder raised")
            return _error(500, f"the responder raised {type(exc).__name__}: {exc}", "server_error")
        if fault == "malformed":
            text = json.dumps(payload)
            return web.Response(text=text[: len(text) // 2], content_type="application/json")
        return web.json_response(payload, headers=quota)

    def _quota_headers(self) -> dict[str, str] | None:
        """Count this request against the window's quota; remaining "-1" marks one over it."""
        if self.rpm_limit is None:
            return None
        now = time.monotonic()
        if now - self._window_start >= self.limit_window_s:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        reset = self._window_start + self.limit_window_s - now
        return {
            "x-ratelimit-limit-requests": str(self.rpm_limit),
            "x-ratelimit-remaining-requests": str(max(self.rpm_limit - self._window_count, -1)),
            # Rounded up, so a client that waits exactly this long lands in the next window.
            "x-ratelimit-reset-requests": f"{math.ceil(reset * 1000) / 1000:.3f}s",
        }

    async def _completion(self, body: dict[str, Any], *, truncate: bool) -> dict[str, Any]:
        messages = body["messages"]
        params = {key: value for key, value in body.items() if key != "messages"}
        stop = params.get("stop") or []
        stops = [stop] if isinstance(stop, str) else list(stop)
        max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
        choices = []
        completion_tokens = 0
        for index in range(int(params.get("n") or 1)):
            text = self.responder(messages, params, index)
            if inspect.isawaitable(text):
                text = await text
            text, finish_reason = _finish(str(text), stops, max_tokens, truncate)
            completion_tokens += _count_tokens(text)
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            )
        prompt_tokens = sum(_count_tokens(str(m.get("content") or "")) for m in messages)
        return {
            "id": f"chatcmpl-scripted-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": params.get("model") or self.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _draw_fault(self) -> str | None:
        draw = self._rng.random()
        for kind, rate in (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("hang", self.rate_hang),
            ("malformed", self.rate_malformed),
            ("truncated", self.rate_truncated),
        ):
            if draw < rate:
                self._fault(kind)
                return kind
            draw -= rate
        return None

    def _hang_once(self, body: dict[str, Any]) -> str | None:
        """A `hang_once` request's fault: a hang the first time, then `hang_once_then`, then none."""
        if self.hang_once is None:
            return None
        messages = json.dumps(body["messages"], sort_keys=True)
        if self.hang_once not in messages:
            return None
        if messages not in self._hung:
            self._hung.add(messages)
            self._fault("hang")
            return "hang"
        if self.hang_once_then is None or messages in self._hung_then:
            return None
        self._hung_then.add(messages)
        self._fault(self.hang_once_then)
        return self.hang_once_then

    def _fault(self, kind: str) -> None:
        with self._lock:
            self._counters.faults[kind] += 1


class _Counters:
    """The mutable counters behind `ServerStats`; guarded by the server's lock."""

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


def _file_object(file_id: str, filename: str, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": "batch",
        "status": "processed",
    }


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def _check_chat_body(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be a non-empty list of {role, content} objects."
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or n < 1):
        return f"'n' must be a positive integer, got {n!r}."
    return None


def _finish(text: str, stops: Sequence[str], max_tokens: int | None, truncate: bool) -> tuple[str, str]:
    finish_reason = "stop"
    cuts = [text.index(stop) for stop in stops if stop and stop in text]
    if cuts:
        text = text[: min(cuts)]
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        text, finish_reason = " ".join(words[:max_tokens]), "length"
    if truncate:
        words = text.split()
        text, finish_reason = " ".join(words[: len(words) // 2]), "length"
    return text, finish_reason


def _count_tokens(text: str) -> int:
    return len(text.split())


def _error(
    status: int, message: str, kind: str, code: str | None = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m synthdistill.testing.scripted_server",
        description="Serve a scripted OpenAI-compatible API on 127.0.0.1 for tests and benchmarks.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (printed).")
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds before each answer.")
    parser.add_argument("--model", default="scripted", help="Model id listed by /v1/models.")
    parser.add_argument("--rate-429", type=float, default=0.0, help="Probability of a 429.")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds of a 429.")
    parser.add_argument("--rate-500", type=float, default=0.0, help="Probability of a 500.")
    parser.add_argument("--rate-hang", type=float, default=0.0, help="Probability of a hang.")
    parser.add_argument("--hang-s", type=float, default=30.0, help="Seconds a hanging request sleeps.")
    parser.add_argument(
        "--rate-malformed", type=float, default=0.0, help="Probability of a broken JSON body."
    )
    parser.add_argument("--rate-truncated", type=float, default=0.0, help="Probability of a cut-off answer.")
    parser.add_argument("--required-key", default=None, help="Bearer key requests must carry (a test key).")
    parser.add_argument("--rpm-limit", type=int, default=None, help="Requests allowed per window.")
    parser.add_argument("--limit-window", type=float, default=60.0, help="Seconds of the quota's window.")
    parser.add_argument("--batch-delay", type=float, default=0.5, help="Seconds a batch job takes.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the fault draws.")
    args = parser.parse_args(argv)
    server = ScriptedServer(
        port=args.port,
        latency=args.latency,
        model=args.model,
        rate_429=args.rate_429,
        retry_after_s=args.retry_after,
        rate_500=args.rate_500,
        rate_hang=args.rate_hang,
        hang_s=args.hang_s,
        rate_malformed=args.rate_malformed,
        rate_truncated=args.rate_truncated,
        required_key=args.required_key,
        rpm_limit=args.rpm_limit,
        limit_window_s=args.limit_window,
        batch_delay_s=args.batch_delay,
        seed=args.seed,
        record_bodies=0,
    )
    with server:
        # Printed once the port accepts requests, so a script reading stdout can connect at once.
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    _main()
