"""A new instruction on its way through self_instruct's steps, and the generation prompt it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from synthdistill.records import Record, Sample

# The operator a new instruction's lineage names; it also seeds the stage's random draws.
OPERATOR = "self_instruct"


@dataclass
class Prompt:
    """One generation prompt: its number, its in-context examples (records), and the seed it grows from."""

    step: int
    wave: int
    examples: list[Record]
    seed: Record


@dataclass
class Candidate:
    """A new instruction on its way through the filters."""

    prompt: Prompt
    instruction: str
    samples: list[Sample]
    templates: list[str] = field(default_factory=list)
    reason: tuple[str, str] | None = None
    """(kind, words) of why it was dropped; None while it is kept."""
    is_classification: bool | None = None
    instances: list[dict[str, str]] = field(default_factory=list)
    probe_id: str = ""
