"""Symbolic knowledge: commonsense events and (head, relation, tail) triples read out of teacher text.

Symbolic Knowledge Distillation (West et al., 2022) has a teacher write everyday events ("PersonX pays
the bill"), then, for each event and each ATOMIC relation, short inferences ("to be fair" for xIntent),
and trains a small student to write the tail from the head and the relation. The generate stage does
both steps with `parse: events` and `parse: triples`; this module reads the teacher's numbered lists
and makes one child record per event or per tail:

- an event record has input {head}, the event;
- a triple record has input {head, relation, question} and the tail as its `answer`, so filters,
  training and the dataset treat the tail as what the student learns to write. `question` is the
  COMET-style query "<head> <relation>", which names the triple in the dataset and in review tools.
"""

from __future__ import annotations

import re
from typing import Any

from synthdistill.errors import StageError
from synthdistill.records import Provenance, Record, Sample, stable_hash
from synthdistill.teachers.engine import ParseError

RELATIONS = {
    "xIntent": "why PersonX does it (to ...)",
    "xNeed": "what PersonX needs to do first (to ...)",
    "xAttr": "how PersonX is seen (an adjective)",
    "xEffect": "what happens to PersonX after it",
    "xReact": "how PersonX feels after it (an adjective)",
    "xWant": "what PersonX wants to do next (to ...)",
    "oEffect": "what happens to others after it",
}
"""The ATOMIC relations the shipped prompts cover, with what a tail of each says."""

# Longest event or tail kept, in words: ATOMIC's events and tails are short phrases, and a longer line from
# a small teacher is almost always a sentence that ran on.
MAX_EVENT_WORDS = 12
MAX_TAIL_WORDS = 10


def parse_events(text: str) -> dict[str, Any]:
    """The events of a numbered list ("1. PersonX ..."); raise ParseError when no line is an event."""
    events = []
    for line in _list_lines(text):
        event = _clean(_PERSON_X.sub("PersonX", line))
        if event.startswith("PersonX ") and 2 <= len(event.split()) <= MAX_EVENT_WORDS:
            events.append(event)
    if not events:
        raise ParseError(
            f"no event line (expected a numbered list of 'PersonX ...' of at most {MAX_EVENT_WORDS} words)"
        )
    return {"events": events}


def parse_tails(text: str) -> dict[str, Any]:
    """The tails of a numbered list ("1. to eat"); raise ParseError when no line is a short phrase."""
    tails = []
    for line in _list_lines(text):
        tail = _clean(line)
        # A line that restates the prompt ("Event: ..."), asks a question or holds no word is no inference.
        if _WORD.search(tail) and len(tail.split()) <= MAX_TAIL_WORDS and not _NOT_A_TAIL.match(tail):
            tails.append(tail)
    if not tails:
        raise ParseError(
            f"no tail line (expected a numbered list of phrases of at most {MAX_TAIL_WORDS} words)"
        )
    return {"tails": tails}


def event_records(
    parent: Record, answered: list[tuple[dict[str, str], list[Sample]]], provenance: Provenance
) -> list[Record]:
    """One child of `parent` per distinct event in its parsed samples; input {head} plus expanded values."""
    children = []
    seen: set[str] = set()
    for values, samples in answered:
        for sample, event in _items(samples, "events"):
            key = _key(event, values)
            if key in seen:
                continue
            seen.add(key)
            children.append(_child(parent, {**values, "head": event}, sample, provenance))
    return children


def triple_records(
    parent: Record, answered: list[tuple[dict[str, str], list[Sample]]], provenance: Provenance
) -> list[Record]:
    """One child of `parent` per distinct (relation, tail): input {head, relation, question}, answer tail."""
    children = []
    seen: set[str] = set()
    for values, samples in answered:
        fields = {**parent.input, **values}
        missing = [name for name in ("head", "relation") if not isinstance(fields.get(name), str)]
        if missing:
            raise StageError(
                f"parse: triples needs {' and '.join(missing)} in the record's input (has "
                f"{', '.join(sorted(fields)) or 'nothing'}); generate events first (parse: events) and "
                "set expand: {relation: [xIntent, ...]}",
                stage="generate",
                record_id=parent.id,
            )
        for sample, tail in _items(samples, "tails"):
            key = _key(tail, values)
            if key in seen:
                continue
            seen.add(key)
            inputs = {**fields, "question": f"{fields['head']} {fields['relation']}"}
            children.append(_child(parent, inputs, sample, provenance, answer=tail))
    return children


def _items(samples: list[Sample], name: str) -> list[tuple[Sample, str]]:
    """(sample, item) pairs of the parsed samples, without the last item of a sample cut off mid-line."""
    pairs: list[tuple[Sample, str]] = []
    for sample in samples:
        if sample.error is not None:
            continue
        items = list(sample.fields.get(name, []))
        # A sample stopped by max_tokens may end in half a phrase ("to go to the"): its last line is dropped.
        if sample.finish_reason == "length" and not sample.text.endswith("\n"):
            items = items[:-1]
        pairs.extend((sample, item) for item in items)
    return pairs


def _child(
    parent: Record, inputs: dict[str, Any], sample: Sample, provenance: Provenance, **produced: Any
) -> Record:
    # Record.child keeps the parent's input; a child here has an input of its own, hashed into its id.
    return Record(
        id=stable_hash(parent.id, inputs, produced),
        parent_id=parent.id,
        source_id=parent.id,
        input=inputs,
        samples=[sample],
        provenance=[*parent.provenance, provenance],
        **produced,
    )


def _list_lines(text: str) -> list[str]:
    """The items of a numbered or bulleted list; plain lines when the text has no list marker at all."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    marked = [_MARKER.sub("", line, count=1) for line in lines if _MARKER.match(line)]
    return marked if marked else lines


def _clean(item: str) -> str:
    item = " ".join(item.split()).strip("\"'`*")
    return re.sub(r"[\s.!;,]+$", "", item).strip()


def _key(item: str, values: dict[str, str]) -> str:
    return stable_hash(item.lower(), values)


_WORD = re.compile(r"[^\W\d_]")
_MARKER = re.compile(r"^(?:\d{1,2}\s*[.):]|[-*\u2022])\s+")
_PERSON_X = re.compile(r"\bperson\s*x\b", re.IGNORECASE)
_NOT_A_TAIL = re.compile(r"^(?:event|relation|answer|question)\s*:|\?$", re.IGNORECASE)
