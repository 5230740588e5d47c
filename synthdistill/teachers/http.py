"""Chat completions over a bare aiohttp session: the HTTP path of the `openai` backend.

Why not the openai SDK here: on this 2-core machine the teacher's request rate is bound by the client's
CPU, and the SDK spent about 1.4 ms of CPU a request (building its request model, parsing the reply into
pydantic objects) against 0.2 ms for a bare aiohttp loop; at 64 requests in flight that held synthdistill
to 0.70 of the bare loop (bench/teacher_throughput.py). The chat-completions protocol is small and stable,
so one POST, a JSON decode and the status codes below are all it takes. The SDK still serves what is not
on the hot path (batch jobs, and the list of arguments `teacher.options` may pass).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from synthdistill.errors import TeacherError
from synthdistill.teachers.base import Completion, Response, TransientError
from synthdistill.teachers.limits import RateLimitInfo

OPENAI_API = "https://api.openai.com/v1"

# What to do about a 4xx that a retry cannot fix; 401 and 403 name the key's variable instead.
_HINTS = {
    400: "check the request's parameters against what the server supports (teacher.options passes extras)",
    404: "check teacher.model and teacher.api_base",
    413: "the prompt is too large for the server; shorten it",
    422: "check the request's parameters against what the server supports",
}


class ChatEndpoint:
    """One OpenAI-compatible server: its session, and the requests it has in flight."""

    def __init__(self, url: str | None, max_connections: int, timeout_s: float) -> None:
        self.url = url
        self.in_flight = 0
        self.down_until = 0.0
        self._chat_url = f"{(url or OPENAI_API).rstrip('/')}/chat/completions"
        self._max_connections = max_connections
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    @property
    def where(self) -> str:
        """The endpoint, for messages."""
        return self.url or "the OpenAI API"

    async def post(
        self, body: dict[str, Any], headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send one chat-completions body (with `query` in the URL); the status, headers and raw body."""
        if self._session is None:
            # Created on the engine's loop, on first use; the pool holds every request the engine allows.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=self._max_connections
                ),
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                json_serialize=json.dumps,
            )
        async with self._session.post(self._chat_url, json=body, headers=headers, params=query) as answer:
            return answer.status, answer.headers, await answer.read()

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def response_from_body(body: Any, where: str) -> Response:
    """A `Response` from a chat completion's JSON body (a reply, or a batch job's output line).

    The API reports completion tokens only in total over the n choices, so each completion gets a share
    in proportion to its whitespace-split length: exact when n is 1, and the shares sum to the total.
    """
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        # A 200 whose body is not a chat completion (some servers answer text/plain or an empty object).
        raise TransientError(f"{where}: the response held no choices; the server sent a malformed body")
    try:
        ordered = sorted(choices, key=lambda choice: choice.get("index") or 0)
        texts = [str((choice.get("message") or {}).get("content") or "") for choice in ordered]
        finish_reasons = [choice.get("finish_reason") for choice in ordered]
    except (AttributeError, TypeError) as exc:
        raise TransientError(f"{where}: a choice is malformed ({type(exc).__name__}: {exc})") from None
    usage = body.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    shares = split_tokens(int(usage.get("completion_tokens") or 0), [len(text.split()) for text in texts])
    completions = [
        Completion(text=text, finish_reason=reason, completion_tokens=share)
        for text, reason, share in zip(texts, finish_reasons, shares, strict=True)
    ]
    return Response(completions=completions, prompt_tokens=prompt_tokens)


def read_reply(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    where: str,
    key_variable: str | None,
    secret: str | None,
) -> Response:
    """The `Response` of a 200, or the right error: `TransientError` for what a retry may fix."""
    if status == 200:
        try:
            body = json.loads(raw)
        except ValueError:
            raise TransientError(f"{where}: the server sent a malformed body (invalid JSON)") from None
        response = response_from_body(body, where)
        response.rate_limit = RateLimitInfo.from_headers(headers)
        return response
    # Scrubbed before it is shortened, so no part of the key survives a cut.
    message = shorten(scrub(_server_message(raw), secret))
    raise status_error(status, message, where, key_variable, retry_after(headers))


def status_error(
    status: int, message: str, where: str, key_variable: str | None, retry_after_s: float | None
) -> TransientError | TeacherError:
    """The error for an HTTP status other than 200: 429, 408 and 5xx are transient, other 4xx are not."""
    if status == 429:
        return TransientError(f"{where}: rate limited (HTTP 429): {message}", retry_after=retry_after_s)
    if status >= 500 or status == 408:
        return TransientError(f"{where}: server error (HTTP {status}): {message}")
    hint = _HINTS.get(status, "check the request and the teacher settings")
    if status in (401, 403):
        hint = (
            f"check the key in ${key_variable}"
            if key_variable
            else "set teacher.api_key_env to the environment variable holding the key"
        )
    return TeacherError(f"{where}: HTTP {status}: {message}; {hint}")


def connection_error(exc: BaseException, where: str, timeout_s: float, secret: str | None) -> TransientError:
    """The `TransientError` for a request that got no answer: a timeout or a failed connection."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TransientError(f"{where}: no answer within {timeout_s:g} s (teacher.timeout_s)")
    return TransientError(
        f"{where}: connection failed ({scrub(str(exc), secret)}); check that the server is up"
    )


def split_tokens(total: int, weights: list[int]) -> list[int]:
    """`total` tokens shared out in proportion to `weights`, as whole tokens that add up to the total."""
    if not weights:
        return []
    if sum(weights) == 0:
        weights = [1] * len(weights)
    exact = [total * weight / sum(weights) for weight in weights]
    shares = [int(value) for value in exact]
    # Largest remainder first.
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a 429 asks to wait: `retry-after-ms`, `retry-after` in seconds, or an HTTP date."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(date.timestamp() - time.time(), 0.0)


def scrub(text: str, secret: str | None) -> str:
    """`text` with the key replaced, so it never reaches a message or a log."""
    return text.replace(secret, "***") if secret else text


def _server_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip() or "no message"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return json.dumps(body)[:300]


def shorten(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "..."
