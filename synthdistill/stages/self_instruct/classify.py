"""Classification identification in self_instruct: the teacher says Yes or No after few-shot seeds."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from synthdistill.runs.context import StageContext
from synthdistill.stages.self_instruct.candidate import Candidate
from synthdistill.stages.self_instruct.shots import Shots
from synthdistill.teachers.base import Request
from synthdistill.teachers.engine import Engine

if TYPE_CHECKING:
    from synthdistill.stages.self_instruct.stage import SelfInstructConfig

# The paper asked for 3 tokens at temperature 0: "Yes" or "No".
CLASSIFY = Request(messages=[], temperature=0.0, max_tokens=4)


def classify(
    candidates: list[Candidate], config: SelfInstructConfig, ctx: StageContext, engine: Engine, shots: Shots
) -> int:
    """Mark each candidate classification or not; the number of replies that said neither Yes nor No."""
    name = config.classify_template
    requests = []
    for candidate in candidates:
        variables = {"examples": shots.classify, "instruction": candidate.instruction}
        messages = ctx.templates.render_messages(name, variables)
        requests.append((candidate, CLASSIFY.model_copy(update={"messages": messages})))
    unclear = 0
    for candidate, samples in engine.map(requests):
        sample = samples[0]
        answer = parse_yes_no(sample.text) if sample.error is None else None
        if answer is None:
            # The paper counts anything but "Yes" as not classification.
            unclear += 1
        candidate.is_classification = bool(answer)
        candidate.samples.append(sample)
        candidate.templates.append(name)
    return unclear


def parse_yes_no(text: str) -> bool | None:
    """True for a reply that says Yes first, False for No, None for neither."""
    match = re.search(r"\b(yes|no)\b", text, re.IGNORECASE)
    return None if match is None else match.group(1).lower() == "yes"
