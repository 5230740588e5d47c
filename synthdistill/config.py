"""The pipeline file: its pydantic models, loading, `--set` overrides, and error messages with key paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synthdistill.errors import ConfigError

_STRICT = ConfigDict(extra="forbid")

# Sampling options that stage configs include (`temperature: Temperature = 0.8`): each documented and
# bounded here once; a stage gives its own default where it declares the field.
Temperature = Annotated[float, Field(ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy.")]
TopP = Annotated[float, Field(gt=0.0, le=1.0, description="Nucleus sampling mass.")]
MaxTokens = Annotated[int, Field(ge=1, description="Most new tokens of a completion.")]
ParseRetries = Annotated[
    int, Field(ge=0, le=10, description="Extra samples asked for when a sample cannot be parsed.")
]


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


class StudentConfig(BaseModel):
    """The model that is trained."""

    model_config = _STRICT

    model: str = Field(
        "smollm2-135m", description="Local path, embedded alias (smollm2-135m) or cached hub id."
    )


class SplitConfig(BaseModel):
    """How many items each split takes."""

    model_config = _STRICT

    train: int = Field(100, ge=1, description="Items for generation and training.")
    test: int = Field(100, ge=0, description="Held-out items for evaluation; never trained on.")


class DataConfig(BaseModel):
    """Where task items come from and how their fields map to question and answer."""

    model_config = _STRICT

    source: str = Field(
        "builtin:arith",
        description="builtin:<task>, a local .jsonl/.json/.csv/.parquet path (relative to the pipeline "
        "file), or hf:<name> for a datasets dataset already on disk or in the local cache.",
    )
    test_source: str | None = Field(
        None, description="A separate source for the test split; None splits `source` itself."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the source (for builtin:arith: difficulty)."
    )
    fields: dict[str, str | dict[str, str]] = Field(
        default_factory=dict,
        description="Task field -> column name, jinja expression ('{{ Body }} {{ Question }}') or "
        "{from: column, regex: pattern} (the first group is kept). Empty keeps the columns as they are.",
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="Sizes of the splits.")


class PipelineConfig(BaseModel):
    """A whole pipeline file."""

    model_config = _STRICT

    name: str = Field(description="Run name; the run folder is outputs/<name>/.", pattern=r"^[\w.-]+$")
    seed: int = Field(0, description="Drives splits, sampling and training, so a run is repeatable.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Where local models run; auto takes a GPU where there is one."
    )
    outputs: str = Field("outputs", description="Folder holding run folders, relative to the working dir.")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="The teacher model.")
    student: StudentConfig = Field(default_factory=StudentConfig, description="The student model.")
    data: DataConfig = Field(default_factory=DataConfig, description="The task data.")
    max_cost_usd: float | None = Field(
        None,
        gt=0,
        description="Stop the run cleanly before teacher calls would cost more than this (USD), keeping "
        "everything paid for; a re-run with a higher cap goes on. None sets no cap.",
    )
    stages: list[dict[str, Any]] = Field(description="Stages in order, each {name: options}.")

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_entries(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("stages must be a non-empty list such as [{generate: {...}}, {train: {...}}]")
        entries = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                item = {item: {}}
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(f"stages[{index}] must be one {{name: options}} mapping, got {item!r}")
            ((name, options),) = item.items()
            entries.append({name: options or {}})
        return entries


class StageSpec(BaseModel):
    """A stage as resolved from the pipeline: its name, position and validated config."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    index: int
    config: BaseModel

    @property
    def folder(self) -> str:
        """Folder name inside the run: NN-<stage>."""
        return f"{self.index:02d}-{self.name}"


class Pipeline(BaseModel):
    """A loaded pipeline: the config, its validated stages, and where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: PipelineConfig
    stages: list[StageSpec]
    path: Path
    raw: dict[str, Any]

    @property
    def base_dir(self) -> Path:
        """The pipeline file's folder, against which relative paths resolve."""
        return self.path.parent


def load_pipeline(path: str | os.PathLike[str], overrides: list[str] | None = None) -> Pipeline:
    """Read, override and validate a pipeline file; every error names the file and the key."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("pipeline file not found; check the path", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the pipeline file ({exc.strerror})", file=file) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"YAML syntax error at {where}: {problem}; fix the YAML", file=file) from None
    if not isinstance(raw, dict):
        raise ConfigError("a pipeline must be a YAML mapping with name and stages", file=file)
    for override in overrides or []:
        apply_override(raw, override, file=file)
    return validate_pipeline(raw, path)


def validate_pipeline(raw: dict[str, Any], path: Path) -> Pipeline:
    """Validate a raw pipeline mapping, stages included."""
    from synthdistill.registry import registry

    file = str(path)
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, file) from None
    stages = []
    stage_registry = registry("stage")
    for index, entry in enumerate(config.stages):
        ((name, options),) = entry.items()
        if name not in stage_registry:
            valid = ", ".join(stage_registry.names())
            raise ConfigError(
                f"unknown stage {name!r}; valid stages: {valid}", file=file, key=f"stages[{index}]"
            )
        stage = stage_registry.get(name)
        try:
            # The pipeline's folder lets validators find files beside it (critics/*.py of the project).
            stage_config = stage.config.model_validate(options, context={"base_dir": path.parent})
        except ValidationError as exc:
            raise _config_error(exc, file, prefix=f"stages[{index}].{name}") from None
        stages.append(StageSpec(name=name, index=index + 1, config=stage_config))
    return Pipeline(config=config, stages=stages, path=path.resolve(), raw=raw)


def apply_override(raw: dict[str, Any], override: str, *, file: str = "--set") -> None:
    """Apply one `key.path=value` override (value parsed as YAML) to a raw pipeline mapping.

    Stage options are reached by position or name: `stages.0.generate.n=2` or `generate.n=2`.
    """
    key, sep, value_text = override.partition("=")
    if not sep or not key:
        raise ConfigError(
            f"override {override!r} is not key=value; write for example --set seed=1", file="--set"
        )
    value = yaml.safe_load(value_text) if value_text else ""
    parts = key.split(".")
    stages = raw.get("stages")
    if isinstance(stages, list):
        # A stage written as a bare name (`- generate`) takes options once it is overridden.
        raw["stages"] = stages = [{s: {}} if isinstance(s, str) else s for s in stages]
        names = [next(iter(s)) if isinstance(s, dict) and len(s) == 1 else None for s in stages]
        if parts[0] in names and parts[0] not in raw:
            positions = [str(i) for i, name in enumerate(names) if name == parts[0]]
            if len(positions) > 1:
                rest = ".".join(parts[1:])
                choices = " or ".join(f"stages.{i}.{parts[0]}.{rest}" for i in positions)
                raise ConfigError(
                    f"--set {key}: the pipeline has {len(positions)} {parts[0]} stages; name one by "
                    f"position: {choices}",
                    file=file,
                    key=key,
                )
            parts = ["stages", positions[0], *parts]
    target: Any = raw
    for depth, part in enumerate(parts[:-1]):
        if isinstance(target, list):
            if not part.isdigit() or int(part) >= len(target):
                raise ConfigError(
                    f"no list item {part!r} for --set {key}", file=file, key=".".join(parts[:depth])
                )
            target = target[int(part)]
        elif isinstance(target, dict):
            if target.get(part) is None:
                target[part] = {}
            target = target[part]
        else:
            break
    last = parts[-1]
    if isinstance(target, list):
        if not last.isdigit() or int(last) >= len(target):
            raise ConfigError(f"no list item {last!r} for --set {key}", file=file, key=key)
        target[int(last)] = value
    elif isinstance(target, dict):
        target[last] = value
    else:
        raise ConfigError(f"cannot set {key}: {'.'.join(parts[:-1])} is not a mapping", file=file, key=key)


def _config_error(exc: ValidationError, file: str, prefix: str = "") -> ConfigError:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    key = f"{prefix}.{key}" if prefix and key else (prefix or key)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key; remove it or check its spelling against `synthdistill validate --help`"
    elif error["type"] == "missing":
        message = "required key is missing; add it"
    elif "input" in error and error["type"] not in ("value_error",):
        message = f"{message} (got {error['input']!r})"
    return ConfigError(message, file=file, key=key)
