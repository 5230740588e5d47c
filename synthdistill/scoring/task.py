"""The task's declaration (`data.task` in a pipeline): how its answers are read and compared.

Most tasks need none: a record's type is inferred from the record (see `Scorer.type_of`). Declare it to
fix the type for every record, or to give a label task its labels and the synonyms read as them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaskType = Literal["number", "choice", "label", "text", "triple"]
"""The task types, each with its own reading and comparison of answers."""

KNOWN_LABELS: tuple[tuple[str, ...], ...] = (
    ("entailment", "neutral", "contradiction"),
    ("yes", "no"),
)
"""Closed label sets a record's gold answer puts it in without a declaration: NLI, and yes/no questions."""


class TaskConfig(BaseModel):
    """How a task's answers are scored: by the filter's answer_match, self_consistency's vote and evaluate."""

    model_config = ConfigDict(extra="forbid")

    type: TaskType | None = Field(
        None,
        description="number (numbers within `tolerance`, units and commas ignored), choice (multiple "
        "choice: the answer by letter, by text or as '(c) text'), label (one of a closed set of labels), "
        "text (exact match after normalisation) or triple (a triple's tail against the reference tail). "
        "None infers it per record: choices in the input make choice, declared labels label, a head and "
        "a relation triple, a numeric gold number, an NLI or yes/no gold label, any other gold text.",
    )
    labels: list[str] | None = Field(
        None,
        description="The labels of a label task (entailment, neutral, contradiction); None takes the "
        "known set its gold answer belongs to (NLI or yes/no).",
    )
    synonyms: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Label -> other words read as that label ({yes: [true], no: [false]}); a label task's.",
    )
    choices_field: str = Field(
        "choices",
        description="Input key of a multiple-choice item's options: a list (lettered A, B, ...) or a "
        "{letter: text} mapping.",
    )
    tolerance: float = Field(1e-6, ge=0.0, description="Relative tolerance for numeric answers.")

    @field_validator("labels", "synonyms", mode="before")
    @classmethod
    def _no_yaml_booleans(cls, value: Any) -> Any:
        if isinstance(value, dict):
            words = [*value, *(w for v in value.values() for w in (v if isinstance(v, list) else [v]))]
        else:
            words = value if isinstance(value, list) else []
        if any(isinstance(word, bool) for word in words):
            raise ValueError(
                "YAML reads yes, no, true, false, on and off unquoted as booleans; quote them "
                "(labels: ['yes', 'no'], synonyms: {'yes': ['true']})"
            )
        # One synonym may be written alone: {'yes': 'true'} as well as {'yes': ['true']}.
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(value) < 2 or any(not str(label).strip() for label in value):
            raise ValueError(f"labels must be a list of at least two non-empty labels, got {value!r}")
        if len({label.strip().lower() for label in value}) < len(value):
            raise ValueError(f"labels repeat one another (ignoring case): {value!r}; list each once")
        return value

    @model_validator(mode="after")
    def _labels_for_label_tasks(self) -> TaskConfig:
        if (self.labels or self.synonyms) and self.type not in (None, "label"):
            raise ValueError(f"labels and synonyms belong to a label task, not to type {self.type!r}")
        known = set(self.labels) if self.labels else {label for group in KNOWN_LABELS for label in group}
        unknown = sorted(set(self.synonyms) - known)
        if unknown:
            raise ValueError(
                f"synonyms name {unknown[0]!r}, which is not a label ({', '.join(sorted(known))}); "
                "key each synonym list by its label"
            )
        return self
