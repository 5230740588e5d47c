"""The interface every teacher backend implements: a request in, completions with usage out."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.teachers.limits import RateLimitInfo


class Request(BaseModel):
    """One chat request for `n` samples."""

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, str]] = Field(description="Chat messages: [{role, content}, ...].")
    n: int = Field(1, ge=1, description="How many samples to draw.")
    temperature: float = Field(0.0, ge=0.0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(256, ge=1, description="Most new tokens a completion may have.")
    stop: list[str] = Field(default_factory=list, description="Strings that end a completion.")
    seed: int | None = Field(None, description="Sampling seed, where the backend honours one.")
    json_schema: dict[str, Any] | None = Field(None, description="Structured output schema, if any.")

    def params(self) -> dict[str, Any]:
        """The sampling parameters, without messages and n (part of the cache key)."""
        return self.model_dump(exclude={"messages", "n"})


class Completion(BaseModel):
    """One sample returned for a request."""

    model_config = ConfigDict(extra="forbid")

    text: str
    finish_reason: str | None = None
    completion_tokens: int = 0


class Response(BaseModel):
    """All samples of one request, with the prompt's token count."""

    model_config = ConfigDict(extra="forbid")

    completions: list[Completion]
    prompt_tokens: int = 0
    rate_limit: RateLimitInfo | None = Field(
        None, description="The provider's rate-limit headers, where it sends them."
    )


class Backend(Protocol):
    """What the engine needs of a teacher backend."""

    name: str
    """Registry name of the backend, for provenance and the cache key."""
    # A backend may also set `local = True`: its requests wait in its own queue, so the engine sets no
    # per-request timeout on them.

    def identity(self) -> str:
        """What identifies the model for the cache: its name, or the hash of a local checkpoint."""
        ...

    async def complete(self, request: Request) -> Response:
        """Draw `request.n` samples; raise `TransientError` for what a retry may fix."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and models."""
        ...


class TransientError(Exception):
    """A failure a retry may fix: rate limit, server error, timeout, dropped connection."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
