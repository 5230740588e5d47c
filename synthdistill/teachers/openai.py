"""The `openai` teacher backend: OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama).

It also holds what any backend speaking the chat-completions protocol shares, which the litellm
backend reuses: reading the API key from the environment, building the call's arguments, turning a
chat completion into a `Response`, and sorting the SDK's exceptions into `TransientError` (the engine
retries) and `TeacherError` (it does not).

The key is read once from the variable `api_key_env` names and never appears in a log line or an
error message: server messages are scrubbed of it before they are raised.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import os
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pydantic

from synthdistill.config import TeacherConfig
from synthdistill.errors import TeacherError
from synthdistill.limits import RateLimitInfo
from synthdistill.teachers.base import Completion, Request, Response, TransientError
from synthdistill.teachers.batch import BatchQueue

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

# What to do about a 4xx that a retry cannot fix; 401 and 403 name the key's variable instead.
_HINTS = {
    400: "check the request's parameters against what the server supports (teacher.options passes extras)",
    404: "check teacher.model and teacher.api_base",
    413: "the prompt is too large for the server; shorten it",
    422: "check the request's parameters against what the server supports",
}


class OpenAIBackend:
    """Chat completions through the openai SDK on its aiohttp transport, over one or several endpoints."""

    name = "openai"

    def __init__(self, config: TeacherConfig, device: str = "auto") -> None:
        """Build a client per endpoint; `device` is part of the backend interface and unused here."""
        self._config = config
        self._secret = api_key_from_env(config)
        self._options = dict(config.options)
        self._endpoints = [_Endpoint(url, self._client_for(url)) for url in api_bases(config)]
        self._turn = 0
        self._batches = (
            BatchQueue(
                self._endpoints[0].client, config.batch_api, self._endpoints[0].where, _chat_body_response
            )
            if config.batch_api is not None
            else None
        )
        self.queued = self._batches is not None
        """Whether requests wait in batch jobs, so that no per-request timeout applies."""
        check_options(
            self._options,
            REQUEST_ARGUMENTS,
            inspect.signature(self._endpoints[0].client.chat.completions.create).parameters,
        )
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
        if self._batches is not None:
            return await self._batches.complete(chat_arguments(self._config.model, request, self._options))
        endpoint = self._pick()
        where = f"openai teacher {self._config.model!r} at {endpoint.where}"
        arguments = chat_arguments(self._config.model, request, self._options)
        endpoint.in_flight += 1
        try:
            # The raw response carries the provider's rate-limit headers, which the engine's limiter reads.
            raw = await endpoint.client.chat.completions.with_raw_response.create(**arguments)
            result = raw.parse()
        except Exception as exc:
            error = error_from_exception(exc, where, self._config, self._secret)
            if error is None:
                raise
            if isinstance(exc, openai.APIConnectionError) and len(self._endpoints) > 1:
                endpoint.down_until = time.monotonic() + ENDPOINT_COOLDOWN_S
            raise error from None
        finally:
            endpoint.in_flight -= 1
        response = response_from_chat(result, where)
        response.rate_limit = RateLimitInfo.from_headers(raw.headers)
        return response

    async def aclose(self) -> None:
        """Close the clients and their connections."""
        for endpoint in self._endpoints:
            await endpoint.client.close()

    def _pick(self) -> _Endpoint:
        """The endpoint with the fewest requests in flight, skipping ones that refused a connection lately."""
        now = time.monotonic()
        up = [e for e in self._endpoints if e.down_until <= now] or self._endpoints
        # Rotating the starting point breaks ties fairly, so idle endpoints share the first requests.
        self._turn = (self._turn + 1) % len(up)
        rotated = up[self._turn :] + up[: self._turn]
        return min(rotated, key=lambda e: e.in_flight)

    def _client_for(self, url: str | None) -> openai.AsyncOpenAI:
        # httpx2 comes with openai 3; imported here so the shared helpers below also load under
        # openai 2, which the litellm extra installs.
        import httpx2

        config = self._config
        # The engine retries with its own backoff and limiter, so the SDK must not retry behind it.
        return openai.AsyncOpenAI(
            api_key=self._secret or LOCAL_API_KEY,
            base_url=url,
            max_retries=0,
            timeout=config.timeout_s,
            # The aiohttp transport served 251 requests/s at 64 in flight, near a bare aiohttp loop's 300
            # (LAB.md); its pool is sized to the engine's concurrency so no request waits for a socket.
            http_client=openai.DefaultAioHttpClient(
                limits=httpx2.Limits(
                    max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency
                ),
                timeout=config.timeout_s,
            ),
        )


ENDPOINT_COOLDOWN_S = 5.0
"""How long an endpoint that refused a connection is passed over while others are up."""


@dataclass
class _Endpoint:
    """One server of a teacher, with the requests it has in flight."""

    url: str | None
    client: openai.AsyncOpenAI
    in_flight: int = 0
    down_until: float = 0.0

    @property
    def where(self) -> str:
        return self.url or "the OpenAI API"


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


def _chat_body_response(body: Any, where: str) -> Response:
    """A `Response` from a chat completion's JSON body (a batch job's output line)."""
    from openai.types.chat import ChatCompletion

    try:
        completion = ChatCompletion.model_validate(body)
    except pydantic.ValidationError:
        raise TransientError(f"{where}: a batch line held a malformed completion") from None
    return response_from_chat(completion, where)


def response_from_chat(result: Any, where: str) -> Response:
    """Turn a chat completion (the SDK's or litellm's) into a `Response`.

    The API reports completion tokens only in total over the n choices, so each completion gets a
    share in proportion to its whitespace-split length: exact when n is 1, and the shares always
    sum to the reported total.
    """
    choices = getattr(result, "choices", None)
    if not isinstance(choices, list) or not choices:
        # A 200 whose body is not a chat completion (some servers answer text/plain or an empty object).
        raise TransientError(f"{where}: the response held no choices; the server sent a malformed body")
    try:
        ordered = sorted(choices, key=lambda choice: choice.index or 0)
        texts = [choice.message.content or "" for choice in ordered]
        finish_reasons = [choice.finish_reason for choice in ordered]
    except (AttributeError, TypeError) as exc:
        raise TransientError(f"{where}: a choice is malformed ({type(exc).__name__}: {exc})") from None
    usage = getattr(result, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    shares = _split(completion_tokens, [len(text.split()) for text in texts])
    completions = [
        Completion(text=text, finish_reason=reason, completion_tokens=share)
        for text, reason, share in zip(texts, finish_reasons, shares, strict=True)
    ]
    return Response(completions=completions, prompt_tokens=prompt_tokens)


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
        # The aiohttp transport reports a refused connection as a connect timeout, so the cause decides.
        timed_out = isinstance(exc, openai.APITimeoutError) and not any(
            isinstance(cause, OSError) and not isinstance(cause, TimeoutError) for cause in causes
        )
        if timed_out:
            return TransientError(f"{where}: no answer within {config.timeout_s:g} s (teacher.timeout_s)")
        detail = _scrub(str(causes[-1] if causes else exc), secret)
        return TransientError(f"{where}: connection failed ({detail}); check that the server is up")
    # litellm's APIError subclasses openai.APIError, not APIStatusError, but carries a status_code too.
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.APIError) and isinstance(status, int):
        # Scrubbed before it is shortened, so no part of the key survives a cut.
        message = _shorten(_scrub(_server_message(exc), secret))
        if status == 429:
            return TransientError(
                f"{where}: rate limited (HTTP 429): {message}", retry_after=_retry_after(exc)
            )
        if status >= 500 or status == 408:
            return TransientError(f"{where}: server error (HTTP {status}): {message}")
        hint = _HINTS.get(status, "check the request and the teacher settings")
        if status in (401, 403):
            hint = (
                f"check the key in ${config.api_key_env}"
                if config.api_key_env
                else "set teacher.api_key_env to the environment variable holding the key"
            )
        return TeacherError(f"{where}: HTTP {status}: {message}; {hint}")
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


def _split(total: int, weights: list[int]) -> list[int]:
    # Largest remainder, so the shares are whole tokens that add up to the total.
    if not weights:
        return []
    if sum(weights) == 0:
        weights = [1] * len(weights)
    exact = [total * weight / sum(weights) for weight in weights]
    shares = [int(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


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


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _retry_after(exc: Exception) -> float | None:
    # litellm keeps the provider's headers apart from the (often empty) response it attaches.
    for headers in (
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "litellm_response_headers", None),
    ):
        if headers is not None:
            seconds = _retry_after_seconds(headers)
            if seconds is not None:
                return seconds
    return None


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
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
    # Retry-After may also be an HTTP date.
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(date.timestamp() - time.time(), 0.0)
