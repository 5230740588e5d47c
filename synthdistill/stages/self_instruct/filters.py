"""The filters of self_instruct: the paper's rules on a new instruction's words, and novelty against the
seeds and the instructions kept before."""

from __future__ import annotations

import re
import string
from typing import TYPE_CHECKING

from synthdistill.growth.instructions import Novelty, degenerate_reason
from synthdistill.records import Record
from synthdistill.stages.self_instruct.candidate import Candidate

if TYPE_CHECKING:
    from synthdistill.stages.self_instruct.stage import SelfInstructConfig

# The paper's keyword filter (bootstrap_instructions.py and section 2.3): tasks a language model cannot
# do in text. "go to" is matched as a phrase.
BLACKLIST = [
    *("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps"),
    *("draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"),
]


def drop_rejected(candidates: list[Candidate], config: SelfInstructConfig, novelty: Novelty) -> None:
    """Set the reason of each candidate that a rule drops or that is not novel."""
    for candidate in candidates:
        if candidate.reason is None:
            candidate.reason = rule_reason(candidate.instruction, config)
    open_ = [c for c in candidates if c.reason is None]
    if not open_:
        return
    # A novel instruction joins the index even if its instances fail later: the paper's pool held every
    # instruction that passed ROUGE-L, before instance generation.
    verdicts = novelty.check([probe(c.probe_id, c.instruction) for c in open_])
    for candidate, reason in zip(open_, verdicts, strict=True):
        if reason is not None:
            candidate.reason = ("near_duplicate", reason)


def rule_reason(instruction: str, config: SelfInstructConfig) -> tuple[str, str] | None:
    """(kind, reason) when a rule of the paper drops `instruction`, else None."""
    words = len(instruction.split())
    if words < config.min_words:
        return "too_short", f"too short: {words} words, fewer than {config.min_words}"
    if words > config.max_words:
        return "too_long", f"too long: {words} words, more than {config.max_words}"
    for word in config.blacklist:
        if re.search(rf"\b{re.escape(word)}\b", instruction, re.IGNORECASE):
            return "keyword", f"mentions {word!r}, which a text-only model cannot handle"
    if instruction[0] in string.punctuation:
        return "punctuation", "starts with punctuation"
    if not instruction[0].isascii():
        return "non_ascii", "starts with a non-ASCII character"
    degenerate = degenerate_reason(instruction)
    if degenerate is not None:
        return "degenerate", f"degenerate: {degenerate}"
    return None


def probe(record_id: str, instruction: str) -> Record:
    """The record the novelty index compares: only the instruction, as `question`."""
    return Record(id=record_id, input={"question": instruction})
