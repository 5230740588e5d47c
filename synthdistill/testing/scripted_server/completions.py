"""How the scripted server writes an answer: the responder's texts, cut by `stop` and `max_tokens`, in an
OpenAI chat.completion object whose token counts are whitespace-split words."""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthdistill.testing.scripted_server.server import ScriptedServer

Responder = Callable[[list[dict[str, Any]], dict[str, Any], int], str | Awaitable[str]]
"""(messages, params, sample_index) -> completion text; params is the request body without messages."""


def default_responder(messages: list[dict[str, Any]], params: dict[str, Any], sample_index: int) -> str:
    """A short rationale ending in "The answer is N.", N a deterministic hash of the prompt and sample.

    The server cannot solve the question it is asked, so N (0 to 99) is only stable, not right: the
    same prompt and sample index always give the same N, and different samples of one prompt usually
    differ, which is what tests of voting and caching need. Tests that need right answers pass their
    own responder.
    """
    prompt = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    digest = hashlib.sha256(f"{prompt}\x00{sample_index}".encode()).digest()
    answer = int.from_bytes(digest[:4], "big") % 100
    return f"Let me work through the problem step by step. Combining the numbers gives {answer}. " + (
        f"The answer is {answer}."
    )


async def complete(server: ScriptedServer, body: dict[str, Any], *, truncate: bool) -> dict[str, Any]:
    """The chat.completion object answering a checked request `body`, from the server's responder.

    Args:
        truncate: Whether to cut each completion to half its words (the "truncated" fault).
    """
    messages = body["messages"]
    params = {key: value for key, value in body.items() if key != "messages"}
    stop = params.get("stop") or []
    stops = [stop] if isinstance(stop, str) else list(stop)
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
    choices = []
    completion_tokens = 0
    for index in range(int(params.get("n") or 1)):
        text = server.responder(messages, params, index)
        if inspect.isawaitable(text):
            text = await text
        text, finish_reason = _finish(str(text), stops, max_tokens, truncate)
        completion_tokens += _count_tokens(text)
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        )
    prompt_tokens = sum(_count_tokens(str(m.get("content") or "")) for m in messages)
    return {
        "id": f"chatcmpl-scripted-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": params.get("model") or server.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _finish(text: str, stops: Sequence[str], max_tokens: int | None, truncate: bool) -> tuple[str, str]:
    finish_reason = "stop"
    cuts = [text.index(stop) for stop in stops if stop and stop in text]
    if cuts:
        text = text[: min(cuts)]
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        text, finish_reason = " ".join(words[:max_tokens]), "length"
    if truncate:
        words = text.split()
        text, finish_reason = " ".join(words[: len(words) // 2]), "length"
    return text, finish_reason


def _count_tokens(text: str) -> int:
    return len(text.split())
