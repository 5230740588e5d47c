"""OpenAI-shaped error responses, the form every refusal and injected failure of the scripted server takes."""

from __future__ import annotations

from aiohttp import web


def error_response(
    status: int, message: str, kind: str, code: str | None = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    """A `{"error": {message, type, param, code}}` JSON response with `status`, as OpenAI sends them."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)
