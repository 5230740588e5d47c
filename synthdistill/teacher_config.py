"""A teacher's config (backend, model, limits, price) and the pipeline's named teachers.

`TeacherConfig` is one teacher as a pipeline writes it (`teacher:`, a judge's `teacher:`, a referee).
A pipeline may also name several under `teachers:` (a map {name: {...}} or a list of {name: ..., ...});
stages then ask them by name (generate's `teachers: [a, b]`, llm_judge's `teacher: a`). The name
`default` always means the pipeline's `teacher:`; without one, the first named teacher is the default.
`teacher_references` finds every name that stage options use, so that an unknown one is refused when
the pipeline loads, before anything is spent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthdistill.credentials import credential_in, refusal

_STRICT = ConfigDict(extra="forbid")


class PriceConfig(BaseModel):
    """What a teacher's tokens cost, overriding any price map."""

    model_config = _STRICT

    input_per_mtok: float = Field(ge=0, description="USD per million prompt tokens.")
    output_per_mtok: float = Field(ge=0, description="USD per million completion tokens.")


class BatchAPIConfig(BaseModel):
    """Sending a teacher's requests as batch jobs (OpenAI-style /v1/files and /v1/batches)."""

    model_config = _STRICT

    max_requests: int = Field(
        1000, ge=1, le=50_000, description="Requests per batch job (OpenAI allows up to 50,000)."
    )
    flush_s: float = Field(
        2.0, gt=0, description="Seconds without a new request after which a partial batch is sent."
    )
    poll_s: float = Field(30.0, gt=0, description="Seconds between checks of a submitted job's status.")
    completion_window: Literal["24h"] = Field("24h", description="The provider's completion window.")


class TeacherConfig(BaseModel):
    """Which model writes the data, and how the engine may call it."""

    model_config = _STRICT

    backend: str = Field(
        "transformers", description="Registered backend name: transformers (local), openai, litellm."
    )
    model: str = Field(
        "smollm2-135m",
        description="Model name for the backend; for transformers a local path, an embedded alias "
        "(smollm2-135m) or a hub id already in the local cache.",
    )
    api_base: str | list[str] | None = Field(
        None, description="Endpoint URL(s) of an OpenAI-compatible server; None means the provider's own."
    )
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (never the key itself)."
    )
    max_concurrency: int = Field(64, ge=1, le=4096, description="Most requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(
        6, ge=0, le=50, description="Retries on rate limits, server errors, timeouts and unparsable output."
    )
    hedge_after: float | None = Field(
        3.0,
        gt=1,
        description="Send a copy of a call still unanswered after this multiple of the 95th percentile of "
        "recent latencies, take the first answer and cancel the other (a hung connection then costs a "
        "fraction of the timeout); null never hedges. Local models and batch jobs are never hedged.",
    )
    # Limits: None leaves only max_concurrency and what the provider's rate-limit headers and 429s say.
    rpm: float | None = Field(
        None, gt=0, description="Requests per minute to stay under; None sets no limit of our own."
    )
    tpm: float | None = Field(
        None, gt=0, description="Tokens per minute (prompt + completion) to stay under; None sets none."
    )
    batch_api: BatchAPIConfig | None = Field(
        None,
        description="Send requests as batch jobs (openai backend): about half price at most providers, "
        "answers within the completion window; job ids are kept in the run folder so a restart resumes "
        "polling instead of paying again. None sends each request at once.",
    )
    price: PriceConfig | None = Field(
        None,
        description="USD per million tokens; None looks the model up in litellm's price map when "
        "litellm is installed (local models cost nothing).",
    )
    # With the batch's shared prompt prefix computed once, 32 sequences gave 7.6-8.3x the tokens/s of
    # batch 1 on a 2-core CPU and 16 gave 5.6x (bench/local_generation.py). 64 gave 8.8x there but made
    # the default pipeline's sampling 30% slower: a batch waits for its longest rationale.
    batch_size: int = Field(32, ge=1, description="Sequences per local generate() call (transformers only).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Passed through to the backend's client or model loader."
    )

    NOT_FINGERPRINTED: ClassVar[frozenset[str]] = frozenset({"hedge_after"})
    """Fields that change how calls are sent, never what they return, so stages need not re-run for them.
    (The older such fields, max_concurrency, timeout_s and the rest, stay in: taking them out now would
    re-run every stage of every existing run.)"""

    @model_validator(mode="before")
    @classmethod
    def _no_inline_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "API keys are never written in a pipeline; put the key in an environment variable "
                "and name it with api_key_env (for example api_key_env: OPENAI_API_KEY)"
            )
        return data

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, value: str) -> str:
        from synthdistill.registry import registry

        if value not in registry("teacher"):
            raise ValueError(
                f"unknown backend {value!r}; registered backends: {', '.join(registry('teacher').names())} "
                "(litellm reaches Anthropic, Gemini and others with model: <provider>/<model>)"
            )
        return value

    @field_validator("api_base")
    @classmethod
    def _urls(cls, value: str | list[str] | None) -> str | list[str] | None:
        for url in [value] if isinstance(value, str) else value or []:
            parts = urlsplit(url)
            if parts.password is not None:
                raise ValueError(
                    "the URL holds a password; credentials are never written in a pipeline: put the key "
                    "in an environment variable and name it with api_key_env"
                )
            if parts.scheme not in ("http", "https") or not parts.netloc:
                # Without a scheme the client reads the host as a path and reports a failed connection.
                raise ValueError(
                    f"{url!r} is not a URL with http:// or https://; write it in full, for example "
                    f"http://{url.split('://')[-1]}"
                )
        return value

    @field_validator("options")
    @classmethod
    def _no_credentials_in_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = credential_in(value, "")
        if found:
            raise ValueError(refusal(found.lstrip(".")))
        return value


DEFAULT_TEACHER = "default"
"""The name by which stages ask for the pipeline's `teacher:` beside the named ones."""
ALL_TEACHERS = "all"
"""What generate's `teachers:` says to ask every teacher listed under the pipeline's `teachers:`."""
_NAME = re.compile(r"[A-Za-z_][\w.-]*")


def named_teachers(value: Any) -> Any:
    """The pipeline's `teachers:` as a map {name: config}, from a map or a list of {name: ..., ...}."""
    if isinstance(value, dict):
        entries = list(value.items())
    elif isinstance(value, list):
        entries = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ValueError(
                    f"teachers[{index}] needs a name: write {{name: a, backend: ..., model: ...}}, or make "
                    "teachers a map {a: {backend: ..., model: ...}}"
                )
            entries.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
    else:
        return value
    named: dict[str, Any] = {}
    for name, config in entries:
        name = str(name)
        if name in named:
            raise ValueError(
                f"two teachers are named {name!r}; give each its own name (stages ask them by name)"
            )
        if name in (DEFAULT_TEACHER, ALL_TEACHERS) or not _NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} cannot name a teacher: {DEFAULT_TEACHER!r} names the pipeline's teacher: and "
                f"{ALL_TEACHERS!r} every teacher; use letters, digits, '_', '-' and '.' (for example gpt4o)"
            )
        named[name] = config
    return named


def shared_cache(teachers: dict[str, TeacherConfig]) -> tuple[str, str] | None:
    """Two named teachers the call cache could not tell apart (one backend and model), or None.

    The cache key holds the backend and model but not the endpoint (so that servers of one model share
    hits), so the second would be answered with the first's samples.
    """
    seen: dict[tuple[str, str], str] = {}
    for name, teacher in teachers.items():
        first = seen.setdefault((teacher.backend, teacher.model), name)
        if first != name:
            return first, name
    return None


def teacher_references(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(key path, teacher name) of every teacher that stage options name."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from teacher_references(item, f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        where = f"{path}.{key}"
        # A judge's `teacher` (llm_judge, the pairs stage's judge), generate's `teachers`, the keys of
        # self_consistency's `teacher_weights`.
        if isinstance(item, str) and (key == "teacher" or (key == "teachers" and item != ALL_TEACHERS)):
            yield where, item
        elif key == "teachers" and isinstance(item, list):
            yield from ((f"{where}[{i}]", name) for i, name in enumerate(item) if isinstance(name, str))
        elif key == "teacher_weights" and isinstance(item, dict):
            yield from ((f"{where}.{name}", str(name)) for name in item)
        else:
            yield from teacher_references(item, where)
