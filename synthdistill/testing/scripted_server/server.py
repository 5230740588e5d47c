"""The `ScriptedServer` itself: its settings, the background thread and event loop it serves from, its
routes, and the middleware that counts every request and checks the API key."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

from synthdistill.testing.scripted_server.batch import BatchAPI
from synthdistill.testing.scripted_server.chat import ChatEndpoint
from synthdistill.testing.scripted_server.completions import Responder, default_responder
from synthdistill.testing.scripted_server.errors import error_response
from synthdistill.testing.scripted_server.faults import Faults
from synthdistill.testing.scripted_server.stats import ServerStats, StatsRecorder


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
        self.rate_malformed = rate_malformed
        self.rate_truncated = rate_truncated
        self.required_key = required_key
        self.rpm_limit = rpm_limit
        self.limit_window_s = limit_window_s
        self.record_bodies = record_bodies
        self.batch_delay_s = batch_delay_s
        self.batch_line_error_rate = batch_line_error_rate
        # One generator for fault draws and failed batch lines, so a seed replays the whole run.
        rng = random.Random(seed)
        self._stats = StatsRecorder(record_bodies)
        self._faults = Faults(self, rng, self._stats)
        self._batch_api = BatchAPI(self, rng)
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
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and forget the recorded bodies (requests in flight stay counted)."""
        self._stats.reset(self.record_bodies)

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
        ChatEndpoint(self, self._faults, self._stats, self._closing).add_routes(app)
        self._batch_api.add_routes(app)
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
        self._stats.request_started(request.path)
        try:
            if self.required_key is not None and request.headers.get("Authorization") != (
                f"Bearer {self.required_key}"
            ):
                self._stats.fault("401")
                # Never echo the key that came in: tests check that no key reaches an error message.
                return error_response(
                    401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
                )
            return await handler(request)
        finally:
            self._stats.request_finished()


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock
