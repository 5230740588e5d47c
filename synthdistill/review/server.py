"""The review web server: a Starlette app on uvicorn serving the page and its JSON API for one run.

    GET  /                 the page (static HTML and JS shipped in the package; records are drawn as text)
    GET  /api/meta         the run: name, stage files, critics, the manifest's stages
    GET  /api/records      one page of records matching the filters (see query.Filters), with decisions
    GET  /api/group        one page of the records that answer the same question as one record, in file
                           order, with decisions: the side-by-side view (see query.GroupQuery)
    GET  /api/stats        counts per stage, pass rates per critic, agreement and length histograms
    POST /api/decisions    append a decision to review.jsonl (needs the session token)

It binds 127.0.0.1 by default. Every write carries the per-session token in the `X-Review-Token`
header, which only the page itself can read (a cross-site page cannot read a response from this
origin), and a request whose Host is not the loopback name is refused, so a DNS-rebinding page cannot
become same-origin. Another host serves beyond this machine, so it needs an explicit `--token`, and then
every request needs it (the page takes it from `?token=` in its address).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from synthdistill.errors import ConfigError, RunError
from synthdistill.review.index import BuildReport, ReviewIndex
from synthdistill.review.query import Filters, GroupQuery
from synthdistill.runs.decisions import DecisionEntry, DecisionLog
from synthdistill.runs.view import open_run

TOKEN_HEADER = "X-Review-Token"
_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{16,}$")
_SECURITY_HEADERS = {
    # The page loads only its own script and style; record text can never run as code.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ReviewServer:
    """The review page of one run folder, served by uvicorn in the foreground or in a thread."""

    def __init__(
        self, run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None
    ) -> None:
        self.loopback = _is_loopback(host)
        if token is None and not self.loopback:
            raise ConfigError(
                f"--host {host} serves the page beyond this machine; pass --token with a secret of at "
                "least 16 letters, digits or ._~- (or keep the default host 127.0.0.1)",
                key="--token",
            )
        if token is not None and not _TOKEN_PATTERN.match(token):
            raise ConfigError(
                "the token must be at least 16 letters, digits or ._~- characters", key="--token"
            )
        self.host = host
        self.token = token or secrets.token_urlsafe(24)
        self.run = open_run(run_dir)
        self.index, self.build = ReviewIndex.open(self.run)
        self.log = DecisionLog(self.run.root)
        self.index.set_decisions(self.log.decisions)
        self._socket = _bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        self.app = self._app()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (without the token)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def page_url(self) -> str:
        """The address to open: off this machine the page needs the token in it."""
        return self.url if self.loopback else f"{self.url}?token={self.token}"

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl+C)."""
        self._make_server().run(sockets=[self._socket])

    def start(self) -> ReviewServer:
        """Serve from a background thread; returns once the server accepts connections."""
        server = self._make_server()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RunError(f"the review server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop a server started with `start`."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.index.close()
        self._socket.close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refresh(self) -> BuildReport:
        """Pick up stage files that changed since the index was built (a re-run) and new decisions."""
        self.run = open_run(self.run.root)
        self.index.run = self.run
        report = self.index.refresh()
        self.log = DecisionLog(self.run.root)
        self.index.set_decisions(self.log.decisions)
        return report

    def _make_server(self) -> Any:
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        return self._server

    def _app(self) -> Starlette:
        static = files("synthdistill.review") / "static"
        routes = [
            Route("/", self._page),
            Route("/api/meta", self._meta),
            Route("/api/records", self._records),
            Route("/api/group", self._group),
            Route("/api/stats", self._stats),
            Route("/api/decisions", self._decide, methods=["POST"]),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ]
        # A DNS-rebinding page reaches 127.0.0.1 under its own name: refuse any Host but ours.
        hosts = ["127.0.0.1", "localhost"] if self.host in ("127.0.0.1", "localhost") else ["*"]

        async def guard(request: Request, call_next: Any) -> Response:
            if not self.loopback and request.url.path.startswith("/api/") and not self._token_ok(request):
                return _error(403, f"missing or wrong {TOKEN_HEADER}")
            response: Response = await call_next(request)
            response.headers.update(_SECURITY_HEADERS)
            return response

        middleware = [
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
            Middleware(BaseHTTPMiddleware, dispatch=guard),
        ]
        return Starlette(routes=routes, middleware=middleware)

    def _token_ok(self, request: Request) -> bool:
        given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token") or ""
        return secrets.compare_digest(given.encode(), self.token.encode())

    async def _page(self, request: Request) -> Response:
        if not self.loopback and not self._token_ok(request):
            return HTMLResponse("Open the address with ?token=... that `synthdistill review` printed.", 403)
        page = (files("synthdistill.review") / "static" / "index.html").read_text(encoding="utf-8")
        # The token is URL-safe by construction (checked above), so it cannot break out of the attribute.
        return HTMLResponse(
            page.replace("__REVIEW_TOKEN__", self.token), headers={"Cache-Control": "no-store"}
        )

    async def _meta(self, request: Request) -> Response:
        self.refresh()
        manifest = self.run.manifest
        return JSONResponse(
            {
                "run": manifest.name,
                "root": str(self.run.root),
                "status": manifest.status,
                "stages": [s.folder for s in self.run.stages],
                "default_stage": self.run.last_stage.folder if self.run.last_stage else "",
                "critics": self.index.critics(),
                "manifest": [
                    s.model_dump(include={"folder", "status", "records_in", "records_out"})
                    for s in manifest.stages
                ],
            }
        )

    async def _records(self, request: Request) -> Response:
        try:
            filters = Filters.model_validate(_query(request))
        except ValidationError as exc:
            return _error(400, _first_problem(exc))
        total, rows = self.index.query(filters)
        return JSONResponse(
            {"total": total, "offset": filters.offset, "limit": filters.limit, "records": self._decided(rows)}
        )

    async def _group(self, request: Request) -> Response:
        try:
            query = GroupQuery.model_validate(_query(request))
        except ValidationError as exc:
            return _error(400, _first_problem(exc))
        group = self.index.group(query)
        if group is None:
            where = f"stage {query.stage!r}" if query.stage else "this run"
            return _error(404, f"no record {query.record!r} in {where}; pick a record from the list")
        group["records"] = self._decided(group["records"])
        return JSONResponse(group)

    def _decided(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows, each with its record's review decision (None when undecided)."""
        for row in rows:
            decision = self.log.decisions.get(row["record"].get("id", ""))
            row["decision"] = None if decision is None else decision.model_dump()
        return rows

    async def _stats(self, request: Request) -> Response:
        stage = request.query_params.get("stage") or (
            self.run.last_stage.folder if self.run.last_stage else ""
        )
        return JSONResponse(self.index.stats(stage))

    async def _decide(self, request: Request) -> Response:
        if not self._token_ok(request):
            return _error(403, f"writes need the page's {TOKEN_HEADER} header")
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            return _error(403, "cross-origin writes are refused")
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            payload.pop("time", None)  # the server's clock decides the order of decisions
            entry = DecisionEntry.model_validate(payload)
        except ValidationError as exc:
            return _error(400, _first_problem(exc))
        except ValueError as exc:
            return _error(400, f"bad JSON body: {exc}")
        if not self.index.has_record(entry.record_id):
            return _error(404, f"no record {entry.record_id!r} in this run")
        try:
            decision = self.log.append(entry)
        except RunError as exc:
            return _error(400, str(exc))
        self.index.put_decision(decision)
        return JSONResponse(decision.model_dump())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by each connection: a small JSON answer (a group, one record) goes out at once, instead of
    # waiting ~40 ms behind its headers for the client's delayed ACK (Nagle).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); "
            "pass another --port, or --port 0 for a free one",
            key="--port",
        ) from None
    sock.listen(128)
    return sock


def _query(request: Request) -> dict[str, Any]:
    """Query parameters, with empty values left out (the page sends every field)."""
    return {k: v for k, v in request.query_params.items() if v != "" and k != "token"}


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    field = ".".join(str(part) for part in problem["loc"])
    return f"{field}: {problem['msg']}" if field else str(problem["msg"])


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
