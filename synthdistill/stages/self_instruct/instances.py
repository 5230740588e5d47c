"""Instance generation in self_instruct: output first for classification tasks, input first for the
others, and the paper's clean-up of the instances the teacher's reply holds."""

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


def add_instances(
    candidates: list[Candidate], config: SelfInstructConfig, ctx: StageContext, engine: Engine, shots: Shots
) -> None:
    """Give each candidate its instances, or the reason it is dropped when its reply holds none."""
    requests = []
    for candidate in candidates:
        if candidate.is_classification:
            name, examples = config.output_first_template, shots.classification
        else:
            name, examples = config.input_first_template, shots.generation
        variables = {"examples": examples, "instruction": candidate.instruction}
        messages = ctx.templates.render_messages(name, variables)
        candidate.templates.append(name)
        requests.append((candidate, _instance_request(messages, config, ctx.seed)))
    for candidate, samples in engine.map(requests):
        sample = samples[0]
        candidate.samples.append(sample)
        if sample.error is not None:
            candidate.reason = ("no_instances", f"no instances: the request failed ({sample.error})")
            continue
        parse = parse_output_first if candidate.is_classification else parse_input_first
        instances, why = parse(sample.text, sample.finish_reason == "length", config.max_instances)
        if not instances:
            candidate.reason = ("no_instances", f"no instances: {why}")
        candidate.instances = instances


def parse_input_first(text: str, cut_off: bool, limit: int) -> tuple[list[dict[str, str]], str]:
    """The instances of an input-first reply ("Input: ... Output: ...", optionally "Example N" apart),
    and why there are none when there are none. `cut_off` drops the last one, which max_tokens cut."""
    text = _before_next_task(text)
    if _EXAMPLE.search(text):
        # What precedes "Example 1" is a preamble; a piece without "Output:" is all output (the paper's rule).
        pieces = [piece for piece in _EXAMPLE.split(text)[1:] if piece.strip()]
    elif _OUTPUT.search(text):
        pieces = [piece for piece in _INPUT_LINE.split(text) if _OUTPUT.search(piece)]
    else:
        return [], "no Output: in the reply"
    pairs = [_input_output(piece) for piece in pieces]
    return _usable(pairs, cut_off, limit)


def parse_output_first(text: str, cut_off: bool, limit: int) -> tuple[list[dict[str, str]], str]:
    """The instances of an output-first reply ("Class label: <label>" then the input on the lines after),
    and why there are none when there are none."""
    text = _before_next_task(text)
    if not _CLASS_LABEL.search(text):
        return [], "no Class label: in the reply"
    pairs = []
    for piece in _CLASS_LABEL.split(text)[1:]:
        label, _, rest = piece.strip().partition("\n")
        pairs.append({"input": _INPUT.sub("", rest.strip(), count=1).strip(), "output": label.strip()})
    return _usable(pairs, cut_off, limit)


_EXAMPLE = re.compile(r"^[ \t#*]*Example[ \t]*\d*[ \t]*[.:]?[ \t*]*$", re.MULTILINE | re.IGNORECASE)
_OUTPUT = re.compile(r"\**Output\s*\d*\s*:\**", re.IGNORECASE)
_INPUT = re.compile(r"^\s*\**Input\s*\d*\s*:\**", re.IGNORECASE)
_INPUT_LINE = re.compile(r"^(?=[ \t]*\**Input\s*\d*\s*:)", re.MULTILINE | re.IGNORECASE)
_CLASS_LABEL = re.compile(r"\**Class label\s*:\**", re.IGNORECASE)


def _instance_request(messages: list[dict[str, str]], config: SelfInstructConfig, seed: int) -> Request:
    # Greedy, as the paper; "Task:" starts the next few-shot task, "Example N+1" one instance too many.
    return Request(
        messages=messages,
        temperature=0.0,
        max_tokens=config.instance_max_tokens,
        stop=["Task:", f"Example {config.max_instances + 1}"],
        seed=seed,
    )


def _input_output(piece: str) -> dict[str, str]:
    # As the paper's parse_input_output: what precedes "Output:" is the input, what follows is the output
    # up to a next "Input:"; a piece without "Output:" is all output.
    parts = _OUTPUT.split(piece, maxsplit=1)
    given, output = (parts[0], parts[1]) if len(parts) == 2 else ("", piece)
    output = re.split(r"^\s*\**Input\s*\d*\s*:", output, maxsplit=1, flags=re.MULTILINE | re.IGNORECASE)[0]
    return {"input": _INPUT.sub("", given.strip(), count=1).strip(), "output": output.strip()}


def _usable(pairs: list[dict[str, str]], cut_off: bool, limit: int) -> tuple[list[dict[str, str]], str]:
    """The paper's clean-up of instances: the cut-off last one, empty or unfinished ones, contradictions and
    repeats go."""
    if cut_off and pairs:
        pairs = pairs[:-1]
        if not pairs:
            return [], "the only instance was cut off by max_tokens"
    valid = [
        p
        for p in pairs
        if p["output"]
        and p["input"] != p["output"]
        and not p["input"].endswith(":")
        and not p["output"].endswith(":")
    ]
    if not valid:
        return [], "every instance was empty or unfinished (no output, output = input, or ending with ':')"
    outputs: dict[str, set[str]] = {}
    for pair in valid:
        if pair["input"]:
            outputs.setdefault(pair["input"], set()).add(pair["output"])
    if any(len(seen) > 1 for seen in outputs.values()):
        return [], "one input was given different outputs"
    unique = list({(p["input"], p["output"]): p for p in valid}.values())
    return unique[:limit], ""


def _before_next_task(text: str) -> str:
    return re.split(r"^\s*Task\s*:", text, maxsplit=1, flags=re.MULTILINE)[0].strip()
