"""The chat API: `POST /v1/chat/completions`, acting out the fault a request draws, and `GET /v1/models`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from synthdistill.testing.scripted_server.completions import complete
from synthdistill.testing.scripted_server.errors import error_response

if TYPE_CHECKING:
    from synthdistill.testing.scripted_server.faults import Faults
    from synthdistill.testing.scripted_server.server import ScriptedServer
    from synthdistill.testing.scripted_server.stats import StatsRecorder

logger = logging.getLogger(__name__)


class ChatEndpoint:
    """Answers chat and model-list requests for one run of the server."""

    def __init__(
        self, server: ScriptedServer, faults: Faults, stats: StatsRecorder, closing: asyncio.Event
    ) -> None:
        """Answer from `server`'s settings; a hanging request wakes early once `closing` is set."""
        self._server = server
        self._faults = faults
        self._stats = stats
        self._closing = closing

    def add_routes(self, app: web.Application) -> None:
        """Route the chat and model-list paths of `app` here."""
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    async def _chat(self, request: web.Request) -> web.Response:
        server = self._server
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return error_response(400, "The request body is not valid JSON.", "invalid_request_error")
        problem = _check_chat_body(body)
        if problem:
            return error_response(400, problem, "invalid_request_error")
        if server.record_bodies:
            self._stats.chat_request(body, request.query_string)
        quota = self._faults.quota_headers()
        if quota is not None and quota["x-ratelimit-remaining-requests"] == "-1":
            self._stats.fault("quota")
            quota["x-ratelimit-remaining-requests"] = "0"
            return error_response(
                429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded", headers=quota
            )
        fault = self._faults.draw(body)
        if fault == "hang":
            # Wakes early when the server stops, so a hanging request never delays shutdown.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), server.hang_s)
        elif server.latency > 0:
            await asyncio.sleep(server.latency)
        if fault == "429":
            return error_response(
                429,
                "Rate limit reached; please retry after a while.",
                "requests",
                "rate_limit_exceeded",
                headers={"Retry-After": f"{server.retry_after_s:g}"},
            )
        if fault == "500":
            return error_response(
                500, "The scripted server had an error while processing your request.", "server_error"
            )
        try:
            payload = await complete(server, body, truncate=fault == "truncated")
        except Exception as exc:
            logger.exception("the scripted server's responder raised")
            return error_response(500, f"the responder raised {type(exc).__name__}: {exc}", "server_error")
        if fault == "malformed":
            text = json.dumps(payload)
            return web.Response(text=text[: len(text) // 2], content_type="application/json")
        return web.json_response(payload, headers=quota)

    async def _models(self, request: web.Request) -> web.Response:
        model = {"id": self._server.model, "object": "model", "created": 0, "owned_by": "synthdistill"}
        return web.json_response({"object": "list", "data": [model]})


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
