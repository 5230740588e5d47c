"""The gkd stage's options (GKDStageConfig, beside gkd.py as trl's gkd_config.py is beside its trainer), and
the checks that a teacher is a local model: an API teacher gives no logits to distil.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from synthdistill.errors import SynthdistillError
from synthdistill.stages.train.dpo import TRAINERS
from synthdistill.stages.train.sft import valid_lora
from synthdistill.stages.train.training import Schedule

STUDENT = "student"
"""The teacher_model that names the run's trained student."""

# Stages that leave a trained student for a `teacher_model: student` (gkd's own result included).
_TRAINED_BY = (*TRAINERS, "gkd", "star")
OTHER_WAY = "use SFT (train) or DPO on its outputs instead"


class GKDStageConfig(Schedule):
    """Options of the gkd stage (the schedule's too: epochs, batch_size, save_steps, ...)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None,
        description="The student to start from: an alias, a folder (a LoRA adapter too) or a hub id; None "
        "is the pipeline's student (student.model).",
    )
    teacher: str | dict[str, Any] | None = Field(
        None,
        description="One of the pipeline's teachers, by name or as a {backend, model} mapping, whose model "
        "is the teacher: only a local one (backend transformers), since an API gives no logits; None: "
        "teacher_model says.",
    )
    teacher_model: str = Field(
        STUDENT,
        validate_default=True,
        description="The teacher, a local model sharing the student's tokenizer: `student` is the run's "
        "trained student (a stage such as train must come before), else an alias, a folder (a LoRA adapter "
        "too) or a cached hub id.",
    )
    template: str = Field("cot_student.j2", description="The student's prompt template (as train uses it).")
    # trl's defaults: the symmetric JSD, half of the steps on the student's own samples.
    beta: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="The generalized JSD's interpolation: 0 is the forward KL, 1 the reverse KL (MiniLLM's).",
    )
    lmbda: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="The on-policy fraction: the chance that a step trains on the student's own samples "
        "rather than the records' completions (or, with seq_kd, the teacher's samples).",
    )
    temperature: float = Field(
        0.9,
        gt=0.0,
        le=2.0,
        description="Sampling temperature of the student's (and seq_kd teacher's) samples.",
    )
    max_new_tokens: int = Field(128, ge=1, description="Most new tokens of a sampled completion.")
    seq_kd: bool = Field(
        False,
        description="Whether the off-policy steps train on the teacher's own samples (sequence-level KD) "
        "instead of the records' completions.",
    )
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate (LoRA wants ~1e-4..5e-4).")
    lora: dict[str, Any] | None = Field(
        default_factory=lambda: {"r": 16},
        description="peft.LoraConfig options of a new adapter over a whole start model (a LoRA start goes "
        "on training its own adapter); null trains the whole model.",
    )
    merge: bool = Field(
        False,
        description="Whether to save a LoRA result merged into its base instead of the adapter alone; an "
        "adapter over a start other than the pipeline's student is always merged.",
    )
    max_examples: int | None = Field(
        None, ge=1, description="Train on a seeded sample of at most this many records."
    )
    on_leak: Literal["drop", "error", "warn"] = Field(
        "drop", description="What to do with a record whose question is in the test split (as train does)."
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the records.")
    batch_size: int = Field(4, ge=1, description="Prompts per device step.")
    gkd: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed through to trl's GKDConfig (trl.experimental.gkd), over the settings above.",
    )

    @field_validator("lora")
    @classmethod
    def _valid_lora(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return valid_lora(value)

    @field_validator("gkd")
    @classmethod
    def _valid_gkd(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            trl_config({"output_dir": "unused", "use_cpu": True, "bf16": False, **value})
        return value

    @field_validator("model")
    @classmethod
    def _model_resolves(cls, value: str | None) -> str | None:
        if value is not None:
            check_local(value)
        return value

    @field_validator("teacher")
    @classmethod
    def _local_teacher(cls, value: str | dict[str, Any] | None, info: ValidationInfo) -> Any:
        model = None if value is None else teacher_of(value, (info.context or {}).get("teachers"))
        if model is not None:
            check_local(model)
        return value

    @field_validator("teacher_model")
    @classmethod
    def _teacher_model_exists(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("teacher") is not None:
            if value != STUDENT:
                raise ValueError("give the teacher either as teacher or as teacher_model, not both")
            return value
        if value != STUDENT:
            check_local(value)
            return value
        before = (info.context or {}).get("stages_before")
        if before is not None and not set(before) & set(_TRAINED_BY):
            raise ValueError(
                "teacher_model: student distils the run's trained student, and no train stage comes before "
                "gkd; put a train stage before gkd, or name a local teacher model (an alias or a folder)"
            )
        return value

    def named_teacher(self, teachers: dict[str, Any]) -> str | None:
        """The teacher's model name, given the pipeline's teachers by name; None for the run's trained
        student (known once it is trained)."""
        if self.teacher is not None:
            return teacher_of(self.teacher, teachers)
        return None if self.teacher_model == STUDENT else self.teacher_model

    @property
    def teacher_key(self) -> str:
        """The key that names the teacher, for an error's key path."""
        return "teacher" if self.teacher is not None else "teacher_model"


def vocabulary_problem(student: str, teacher: str) -> str | None:
    """Why the logits of `teacher` cannot be compared with those of `student` (another vocabulary), or None.
    Reads the two tokenizers alone: no weights, nothing converted."""
    from synthdistill.models import load_tokenizer
    from synthdistill.runs.folder import shareable_path

    ours, theirs = load_tokenizer(student).get_vocab(), load_tokenizer(teacher).get_vocab()
    if ours == theirs:
        return None
    return (
        f"teacher {shareable_path(teacher)!r} has another tokenizer than the student "
        f"{shareable_path(student)!r} ({len(theirs)} tokens against {len(ours)}, or the same tokens numbered "
        "otherwise), and gkd compares their next-token probabilities token by token; name a teacher of the "
        f"student's family, or {OTHER_WAY}"
    )


def trl_config(options: dict[str, Any]) -> Any:
    """A trl GKDConfig from `options`; ValueError names a bad key or value."""
    from trl.experimental.gkd import GKDConfig

    try:
        return GKDConfig(**options)
    except TypeError as exc:
        raise ValueError(f"not an option of trl's GKDConfig ({exc}); see its documentation") from None


def teacher_of(teacher: str | dict[str, Any], teachers: dict[str, Any] | None) -> str | None:
    """The model of a pipeline teacher named (or given as a mapping) in gkd's `teacher`; ValueError when it
    is not local. None when `teachers` (the pipeline's, by name) is unknown and a name cannot be looked up."""
    from synthdistill.config import TeacherConfig
    from synthdistill.registry import registry

    if isinstance(teacher, dict):
        try:
            config = TeacherConfig.model_validate(teacher)
        except ValidationError as exc:
            raise ValueError(f"not a teacher: {exc.errors()[0]['msg']}") from None
        label = f"{config.backend} teacher {config.model!r}"
    elif teachers is None:
        return None
    elif teacher not in teachers:
        raise ValueError(f"unknown teacher {teacher!r}; the pipeline's teachers: {', '.join(teachers)}")
    else:
        config = teachers[teacher]
        label = f"teacher {teacher!r} (backend {config.backend}, model {config.model!r})"
    try:
        local = getattr(registry("teacher").get(config.backend), "local", False)
    except SynthdistillError as exc:
        raise ValueError(str(exc)) from None
    if not local:
        raise ValueError(
            f"gkd needs the teacher's next-token probabilities, and the {label} answers through an API, "
            f"which gives none; name a local model in teacher_model (student, an alias, a folder), or "
            f"{OTHER_WAY}"
        )
    return str(config.model)


def check_local(name: str) -> None:
    """A model name resolves to a local checkpoint (nothing converted or downloaded); ValueError if not."""
    from synthdistill.models import check_model

    try:
        check_model(name)
    except SynthdistillError as exc:
        raise ValueError(str(exc)) from None
