"""What every backend speaking the OpenAI chat-completions protocol shares (the openai and litellm backends).

Reading the API key from the environment or .env, the endpoints of `teacher.api_base`, checking
`teacher.options` against what the backend sets itself, building one call's arguments, turning a chat
completion into a `Response`, and sorting the openai SDK's exceptions (litellm's subclass them) into
`TransientError` (the engine retries) and `TeacherError` (it does not).

The key is read once from the variable `api_key_env` names and never appears in a log line or an
error message: server messages are scrubbed of it before they are raised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import openai
import pydantic

from synthdistill.config import TeacherConfig
from synthdistill.errors import TeacherError
from synthdistill.teachers.base import Request, Response, TransientError
from synthdistill.teachers.http import response_from_body, retry_after, scrub, shorten, status_error

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


def _dotenv() -> dict[str, str | None]:
    from dotenv import dotenv_values

    path = Path(".env")
    return dotenv_values(path) if path.is_file() else {}
