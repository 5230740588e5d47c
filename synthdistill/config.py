"""The pipeline file: its pydantic models, loading (rawconfig.py reads the text and applies `--set`), and
error messages with key paths."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synthdistill.credentials import nested_teacher_credential, refusal
from synthdistill.errors import ConfigError
from synthdistill.rawconfig import apply_override, read_raw
from synthdistill.scoring.task import TaskConfig

# The teacher's models live in teacher_config.py; BatchAPIConfig and PriceConfig are named here too, as
# before (teachers/batch.py and plugins import them from synthdistill.config).
from synthdistill.teacher_config import (
    DEFAULT_TEACHER,
    TeacherConfig,
    named_teachers,
    shared_cache,
    teacher_references,
)
from synthdistill.teacher_config import (
    BatchAPIConfig as BatchAPIConfig,
)
from synthdistill.teacher_config import (
    PriceConfig as PriceConfig,
)

_STRICT = ConfigDict(extra="forbid")

# Sampling options that stage configs include (`temperature: Temperature = 0.8`): each documented and
# bounded here once; a stage gives its own default where it declares the field.
Temperature = Annotated[float, Field(ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy.")]
TopP = Annotated[float, Field(gt=0.0, le=1.0, description="Nucleus sampling mass.")]
MaxTokens = Annotated[int, Field(ge=1, description="Most new tokens of a completion.")]
ParseRetries = Annotated[
    int, Field(ge=0, le=10, description="Extra samples asked for when a sample cannot be parsed.")
]


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
    task: TaskConfig = Field(
        default_factory=TaskConfig,
        description="How answers are scored (type: number|choice|label|text|triple, labels, synonyms); the "
        "default infers each record's type from its input and gold answer.",
    )


class PipelineConfig(BaseModel):
    """A whole pipeline file."""

    model_config = _STRICT

    name: str = Field(description="Run name; the run folder is outputs/<name>/.", pattern=r"^[\w.-]+$")
    seed: int = Field(0, description="Drives splits, sampling and training, so a run is repeatable.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Where local models run; auto takes a GPU where there is one."
    )
    outputs: str = Field("outputs", description="Folder holding run folders, relative to the working dir.")
    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig,
        description="The teacher model: the one stages ask unless they name another (by the name "
        "`default`); without it, the first of `teachers`.",
    )
    teachers: dict[str, TeacherConfig] = Field(
        default_factory=dict,
        description="Named teachers beside `teacher`, each with its own backend, model, limits, price and "
        "cache identity: a map {name: {backend: ..., model: ...}} or a list of {name: ..., backend: ...}. "
        "Stages ask them by name (generate: teachers: [a, b] or all; llm_judge: teacher: a). Empty: "
        "the one teacher.",
    )
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

    @field_validator("teachers", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return named_teachers(value)

    @field_validator("teachers")
    @classmethod
    def _distinct_in_cache(cls, value: dict[str, TeacherConfig]) -> dict[str, TeacherConfig]:
        shared = shared_cache(value)
        if shared:
            first, second = shared
            raise ValueError(
                f"teachers {first!r} and {second!r} have one backend and model, and the call cache (which "
                f"leaves the endpoint out of its key) would answer {second!r} with {first!r}'s samples; "
                "name each model as its server does, or keep one of them"
            )
        return value

    @model_validator(mode="after")
    def _first_named_is_default(self) -> PipelineConfig:
        if self.teachers and "teacher" not in self.model_fields_set:
            self.teacher = next(iter(self.teachers.values()))
        return self

    def teacher_named(self, name: str) -> TeacherConfig:
        """The teacher a stage names: `default` is `teacher`, any other one of `teachers`."""
        if name != DEFAULT_TEACHER and name not in self.teachers:
            known = ", ".join([DEFAULT_TEACHER, *self.teachers])
            raise ConfigError(f"unknown teacher {name!r}; the pipeline's teachers: {known}", key="teachers")
        return self.teacher if name == DEFAULT_TEACHER else self.teachers[name]

    @field_validator("name", mode="before")
    @classmethod
    def _plain_name(cls, value: Any) -> Any:
        problem = run_name_problem(value) if isinstance(value, str) else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _no_credentials_in_stage_teachers(self) -> PipelineConfig:
        # A judge's or referee's teacher may sit in options that are validated only when the stage
        # runs (critic options), after pipeline.yaml is written: look for credentials in them now.
        found = nested_teacher_credential(self.stages, "stages")
        if found:
            raise ValueError(refusal(found))
        return self


_RUN_NAME = re.compile(r"[\w.-]+")


def run_name_problem(name: str) -> str | None:
    """Why `name` cannot name a run folder (one folder under outputs/), or None when it can."""
    if _RUN_NAME.fullmatch(name) and name not in (".", ".."):
        return None
    return (
        f"run name {name!r} is not a plain name: it names one folder under outputs/, so it takes letters, "
        "digits, '_', '-' and '.', no path separators, and is not '.' or '..' (for example cot-v2)"
    )


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
    raw = read_raw(path)
    for override in overrides or []:
        apply_override(raw, override, file=str(path), keys=PipelineConfig.model_fields)
    return validate_pipeline(raw, path)


def validate_pipeline(raw: dict[str, Any], path: Path) -> Pipeline:
    """Validate a raw pipeline mapping, stages included."""
    from synthdistill.registry import registry

    file = str(path)
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(exc, file, model=PipelineConfig) from None
    known = [DEFAULT_TEACHER, *config.teachers]
    for key, name in teacher_references(config.stages, "stages"):
        if name not in known:
            raise ConfigError(
                f"unknown teacher {name!r}; the pipeline's teachers: {', '.join(known)} (add it under "
                "teachers: or fix the name)",
                file=file,
                key=key,
            )
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
        # The pipeline's folder lets validators find files beside it (critics/*.py of the project); the
        # names of the stages before it let a stage check what it needs of them (dpo: a trained student).
        context = {
            "base_dir": path.parent,
            "stages_before": [next(iter(e)) for e in config.stages[:index]],
            "teachers": {DEFAULT_TEACHER: config.teacher, **config.teachers},
        }
        try:
            stage_config = stage.config.model_validate(options, context=context)
        except ValidationError as exc:
            raise config_error(exc, file, prefix=f"stages[{index}].{name}", model=stage.config) from None
        stages.append(StageSpec(name=name, index=index + 1, config=stage_config))
    return Pipeline(config=config, stages=stages, path=path.resolve(), raw=raw)


def _model_at(model: type[BaseModel], path: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model found at `path` below `model` (through optional and list fields), or None."""
    import typing

    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if (
            not (isinstance(current, type) and issubclass(current, BaseModel))
            or part not in current.model_fields
        ):
            return None
        annotation = current.model_fields[part].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        candidates += [inner for c in candidates for inner in typing.get_args(c)]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def config_error(
    exc: ValidationError, file: str, prefix: str = "", model: type[BaseModel] | None = None
) -> ConfigError:
    """A validation error as one ConfigError naming the file and the key (below `prefix`); `model`, the
    model validated, lets an unknown key list the valid ones."""
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    key = f"{prefix}.{key}" if prefix and key else (prefix or key)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        parent = _model_at(model, error["loc"][:-1]) if model is not None else None
        message = "unknown key; remove it or check its spelling"
        if parent is not None:
            import difflib

            close = difflib.get_close_matches(str(error["loc"][-1]), list(parent.model_fields), n=1)
            message += f" (did you mean {close[0]}?)" if close else ""
            message += f"; valid keys: {', '.join(parent.model_fields)}"
    elif error["type"] == "missing":
        message = "required key is missing; add it"
    elif "input" in error and error["type"] not in ("value_error",):
        message = f"{message} (got {error['input']!r})"
    return ConfigError(message, file=file, key=key)
