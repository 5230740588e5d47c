"""The `litellm` teacher backend, for hosted providers only litellm speaks (Anthropic, Bedrock, Vertex, ...).

litellm is an optional extra: it brings many packages and takes seconds to import, so it is imported
only when this backend is built. OpenAI itself and OpenAI-compatible servers are faster through the
`openai` backend (LAB.md measured about twice the requests a second). The call's arguments, the
response and the error mapping are shared with that backend (teachers/chat.py): litellm returns
OpenAI-shaped responses and its exceptions subclass openai's.
"""

from __future__ import annotations

import os
from typing import Any

from synthdistill.config import TeacherConfig
from synthdistill.errors import TeacherError
from synthdistill.teachers.base import Request, Response
from synthdistill.teachers.chat import (
    LOCAL_API_KEY,
    REQUEST_ARGUMENTS,
    api_key_from_env,
    chat_arguments,
    check_options,
    error_from_exception,
    first_api_base,
    response_from_chat,
)

_LITELLM_ARGUMENTS = REQUEST_ARGUMENTS | {"api_key", "api_base", "num_retries", "max_retries"}


class LiteLLMBackend:
    """Chat completions through `litellm.acompletion`."""

    name = "litellm"

    def __init__(self, config: TeacherConfig, device: str = "auto") -> None:
        """Build the client; `device` is part of the backend interface and unused by a remote teacher."""
        self._config = config
        self._secret = api_key_from_env(config)
        self._base_url = first_api_base(config)
        self._options = dict(config.options)
        # acompletion takes **kwargs and hands them to the provider, so only clashes can be checked here.
        check_options(self._options, _LITELLM_ARGUMENTS, None)
        self._litellm = _import_litellm()

    def identity(self) -> str:
        """The model name, provider prefix included (anthropic/claude-...)."""
        return self._config.model

    async def complete(self, request: Request) -> Response:
        """Draw `request.n` samples in one call; raise `TransientError` for what a retry may fix."""
        arguments = chat_arguments(self._config.model, request, self._options)
        # The engine retries with its own backoff and limiter; litellm and the SDK under it must not.
        arguments.update(timeout=self._config.timeout_s, num_retries=0, max_retries=0)
        if self._base_url is not None:
            arguments["api_base"] = self._base_url
        if self._secret is not None:
            arguments["api_key"] = self._secret
        elif self._base_url is not None:
            # A local server needs no key, but litellm's openai route refuses to call without one.
            arguments["api_key"] = LOCAL_API_KEY
        # Otherwise litellm reads the provider's own variable (ANTHROPIC_API_KEY, ...).
        try:
            result = await self._litellm.acompletion(**arguments)
        except Exception as exc:
            error = error_from_exception(exc, self._where(), self._config, self._secret)
            if error is None:
                raise
            raise error from None
        return response_from_chat(result, self._where())

    async def aclose(self) -> None:
        """Nothing to release: litellm caches its HTTP clients process-wide and closes them at exit."""

    def _where(self) -> str:
        where = f"litellm teacher {self._config.model!r}"
        return f"{where} at {self._base_url}" if self._base_url else where


def _import_litellm() -> Any:
    # Without this, importing litellm fetches its price map from the network (LAB.md).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise TeacherError(
            "the litellm backend needs the litellm extra: pip install 'synthdistill[litellm]'"
        ) from None
    litellm.suppress_debug_info = True
    return litellm
