"""The `openai` teacher backend: OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama).

Chat completions go over a bare aiohttp session (teachers/http.py says why); batch jobs go through the
openai SDK (teachers/batch.py). What it shares with the litellm backend, which speaks the same protocol
(the API key, the call's arguments, the check of `teacher.options`), lives in teachers/chat.py.

The key never appears in a log line or an error message: server messages are scrubbed of it before
they are raised.
"""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path

import aiohttp
import openai
from openai.resources.chat.completions import AsyncCompletions

from synthdistill.config import TeacherConfig
from synthdistill.teachers.base import Request, Response
from synthdistill.teachers.batch import BatchQueue
from synthdistill.teachers.chat import (
    LOCAL_API_KEY,
    REQUEST_ARGUMENTS,
    api_bases,
    api_key_from_env,
    chat_arguments,
    check_options,
)
from synthdistill.teachers.http import ChatEndpoint, connection_error, read_reply, response_from_body

logger = logging.getLogger(__name__)


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
