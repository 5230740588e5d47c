"""The `openai` teacher backend: OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama).

Chat completions go over a bare aiohttp session (teachers/http.py says why); batch jobs go through the
openai SDK (teachers/batch.py). This module also holds what any backend speaking the chat-completions
protocol shares, which the litellm backend reuses: reading the API key from the environment or .env,
building the call's arguments, turning a chat completion into a `Response`, and sorting the SDK's
exceptions into `TransientError` (the engine retries) and `TeacherError` (it does not).

The key is read once from the variable `api_key_env` names and never appears in a log line or an
error message: server messages are scrubbed of it before they are raised.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pydantic
from openai.resources.chat.completions import AsyncCompletions

from synthdistill.config import TeacherConfig
from synthdistill.errors import TeacherError
from synthdistill.teachers.base import Request, Response, TransientError
from synthdistill.teachers.batch import BatchQueue
from synthdistill.teachers.http import (
    ChatEndpoint,
    connection_error,
    read_reply,
    response_from_body,
    retry_after,
    scrub,
    shorten,
    status_error,
)

logger = logging.getLogger(__name__)

LOCAL_API_KEY = "not-needed"
"""Sent when no `api_key_env` is set: local servers ignore the key, but the SDK requires one."""

REQUEST_ARGUMENTS = frozenset(
    {
        "model",
        "messages",
        "n",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "response_format",
        "timeout",
    }
)
"""Arguments a backend sets from each request and the teacher config, which `options` may not override."""


class OpenAIBackend:
    """Chat completions over aiohttp to one or several OpenAI-compatible endpoints (see teachers/http.py)."""

    name = "openai"

    def __init__(self, config: TeacherConfig, device: str = "auto") -> None:
        """Set up the endpoints; `device` is part of the backend interface and unused here."""
        self._config = config
        self._secret = api_key_from_env(config)
        self._options = dict(config.options)
        # The SDK's own signature lists what `teacher.options` may pass (extra_body for the rest).
        check_options(self._options, REQUEST_ARGUMENTS, inspect.signature(AsyncCompletions.create).parameters)
        self._extra_body = dict(self._options.pop("extra_body", None) or {})
        self._headers = {
            "Authorization": f"Bearer {self._secret or LOCAL_API_KEY}",
            **dict(self._options.pop("extra_headers", None) or {}),
        }
        # The SDK's extra_query goes into the URL, as the SDK would put it.
        self._query = {k: str(v) for k, v in dict(self._options.pop("extra_query", None) or {}).items()}
        self._endpoints = [
            ChatEndpoint(url, config.max_concurrency, config.timeout_s) for url in api_bases(config)
        ]
        self._turn = 0
        self._batches: BatchQueue | None = None
        if config.batch_api is not None:
            self._batches = BatchQueue(
                self._sdk_client(self._endpoints[0].url),
                config.batch_api,
                self._endpoints[0].where,
                response_from_body,
            )
        self.queued = self._batches is not None
        """Whether requests wait in batch jobs, so that no per-request timeout applies."""
        logger.debug("openai teacher %s at %s", config.model, [e.where for e in self._endpoints])

    def identity(self) -> str:
        """The model name: a remote model has no checkpoint to hash, and the endpoint is not part of it."""
        return self._config.model

    def use_run_folder(self, folder: Path) -> None:
        """Keep batch job ids in the run folder, so a restarted run polls its jobs instead of paying again."""
        if self._batches is not None:
            self._batches.use_journal(folder / "batches.jsonl")

    async def complete(self, request: Request) -> Response:
        """Draw `request.n` samples in one call; raise `TransientError` for what a retry may fix."""
        body = {**chat_arguments(self._config.model, request, self._options), **self._extra_body}
        if self._batches is not None:
            return await self._batches.complete(body)
        endpoint = self._pick()
        where = f"openai teacher {self._config.model!r} at {endpoint.where}"
        endpoint.in_flight += 1
        try:
            status, headers, raw = await endpoint.post(body, self._headers, self._query or None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectionError) and len(self._endpoints) > 1:
                endpoint.down_until = time.monotonic() + ENDPOINT_COOLDOWN_S
            raise connection_error(exc, where, self._config.timeout_s, self._secret) from None
        finally:
            endpoint.in_flight -= 1
        return read_reply(status, headers, raw, where, self._config.api_key_env, self._secret)

    async def aclose(self) -> None:
        """Close the endpoints' connections (and the batch client)."""
        for endpoint in self._endpoints:
            await endpoint.close()
        if self._batches is not None:
            await self._batches.aclose()

    def _pick(self) -> ChatEndpoint:
        """The endpoint with the fewest requests in flight, skipping ones that refused a connection lately."""
        now = time.monotonic()
        up = [e for e in self._endpoints if e.down_until <= now] or self._endpoints
        # Rotating the starting point breaks ties fairly, so idle endpoints share the first requests.
        self._turn = (self._turn + 1) % len(up)
        rotated = up[self._turn :] + up[: self._turn]
        return min(rotated, key=lambda e: e.in_flight)

    def _sdk_client(self, url: str | None) -> openai.AsyncOpenAI:
        """An SDK client for what is off the hot path (batch jobs: files, batches)."""
        # The engine retries with its own backoff, so the SDK must not retry behind it.
        return openai.AsyncOpenAI(
            api_key=self._secret or LOCAL_API_KEY,
            base_url=url,
            max_retries=0,
            timeout=self._config.timeout_s,
            default_query=self._query or None,
            http_client=openai.DefaultAioHttpClient(timeout=self._config.timeout_s),
        )


ENDPOINT_COOLDOWN_S = 5.0
"""How long an endpoint that refused a connection is passed over while others are up."""


def api_key_from_env(config: TeacherConfig) -> str | None:
    """The key in the variable `config.api_key_env` names: the environment's, else a `.env` file's.

    The `.env` file is read from the working directory (python-dotenv's format) without changing the
    process environment, so the key reaches this client and nothing else.
    """
    if config.api_key_env is None:
        return None
    key = os.environ.get(config.api_key_env) or _dotenv().get(config.api_key_env)
    if not key:
        raise TeacherError(
            f"teacher.api_key_env names {config.api_key_env}, but neither the environment nor ./.env sets "
            f"it; export {config.api_key_env}=<your key> (or add it to .env) before running, or remove "
            "api_key_env for a local server"
        )
    return key


def _dotenv() -> dict[str, str | None]:
    from dotenv import dotenv_values

    path = Path(".env")
    return dotenv_values(path) if path.is_file() else {}


def api_bases(config: TeacherConfig) -> list[str | None]:
    """The endpoints to call: `api_base`, each of a list of them, or [None] for the provider's own."""
    if isinstance(config.api_base, list):
        if not config.api_base:
            raise TeacherError("teacher.api_base is an empty list; give at least one URL, or leave it unset")
        return list(config.api_base)
    return [config.api_base]


def first_api_base(config: TeacherConfig) -> str | None:
    """The first endpoint (litellm's backend calls one)."""
    return api_bases(config)[0]


def chat_arguments(model: str, request: Request, options: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of one chat-completions call for `request`, `options` passed through."""
    arguments: dict[str, Any] = {
        **options,
        "model": model,
        "messages": request.messages,
        "n": request.n,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
    }
    if request.stop:
        arguments["stop"] = request.stop
    if request.seed is not None:
        arguments["seed"] = request.seed
    if request.json_schema is not None:
        arguments["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": str(request.json_schema.get("title") or "output"),
                "schema": request.json_schema,
                # Strict mode refuses schemas that pydantic often writes (optional fields, no
                # additionalProperties: false) with a 400; the engine validates the output itself.
                "strict": False,
            },
        }
    return arguments


def response_from_chat(result: Any, where: str) -> Response:
    """Turn a chat completion object (litellm's, or the SDK's) into a `Response`."""
    try:
        body = result.model_dump() if hasattr(result, "model_dump") else dict(result)
    except (TypeError, ValueError):
        raise TransientError(f"{where}: the server sent a malformed body") from None
    return response_from_body(body, where)


def error_from_exception(
    exc: Exception, where: str, config: TeacherConfig, secret: str | None
) -> TransientError | TeacherError | None:
    """Sort an exception of the openai SDK (or litellm's subclasses of it) for the engine.

    429, 408, 5xx, timeouts, dropped connections and malformed bodies are `TransientError`s; other
    4xx are `TeacherError`s, which a retry cannot fix. None means the exception is not the SDK's
    (a bug to surface as it is).
    """
    # Before APIError: a body that does not fit the schema is an APIError with status 200.
    if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError | openai.APIResponseValidationError):
        return TransientError(f"{where}: the server sent a malformed body ({type(exc).__name__})")
    if isinstance(exc, openai.APIConnectionError):
        causes = list(_causes(exc))
        timed_out = isinstance(exc, openai.APITimeoutError) and not any(
            isinstance(cause, OSError) and not isinstance(cause, TimeoutError) for cause in causes
        )
        if timed_out:
            return TransientError(f"{where}: no answer within {config.timeout_s:g} s (teacher.timeout_s)")
        detail = scrub(str(causes[-1] if causes else exc), secret)
        return TransientError(f"{where}: connection failed ({detail}); check that the server is up")
    # litellm's APIError subclasses openai.APIError, not APIStatusError, but carries a status_code too.
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.APIError) and isinstance(status, int):
        # Scrubbed before it is shortened, so no part of the key survives a cut.
        message = shorten(scrub(_server_message(exc), secret))
        return status_error(status, message, where, config.api_key_env, _retry_after(exc))
    return None


def check_options(
    options: Mapping[str, Any], reserved: Collection[str], accepted: Collection[str] | None
) -> None:
    """Refuse `teacher.options` keys the backend sets itself, or (given `accepted`) that the call lacks."""
    clashes = sorted(set(reserved) & set(options))
    if clashes:
        raise TeacherError(
            f"teacher.options sets {', '.join(clashes)}, which the backend sets itself; set sampling on "
            "the stage (for example generate: {temperature: 0.8}) and the rest on the teacher (timeout_s, "
            "api_base)"
        )
    unknown = sorted(set(options) - set(accepted)) if accepted is not None else []
    if unknown:
        raise TeacherError(
            f"teacher.options has {', '.join(unknown)}, which chat.completions.create does not accept; "
            "put server-specific parameters under teacher.options.extra_body"
        )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def _server_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message: str = body["message"]
    else:
        message = exc.message
    return message


def _retry_after(exc: Exception) -> float | None:
    # litellm keeps the provider's headers apart from the (often empty) response it attaches.
    for headers in (
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "litellm_response_headers", None),
    ):
        seconds = retry_after(headers)
        if seconds is not None:
            return seconds
    return None
