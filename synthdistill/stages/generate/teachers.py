"""generate's several teachers: which ones a stage asks, each request answered by all of them side by
side (a record's samples are their union, in teacher order, each sample naming its teacher), and the
stage's provenance given once per teacher.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from synthdistill.records import Provenance, Record, Sample
from synthdistill.teacher_config import ALL_TEACHERS, DEFAULT_TEACHER, TeacherConfig, shared_cache
from synthdistill.teachers.base import Request
from synthdistill.teachers.engine import Engine, Parser

T = TypeVar("T")


def asked(teachers: list[str] | str, named: Iterable[str]) -> list[str | None]:
    """The names of the teachers a stage asks, in order (`named`: the pipeline's `teachers:`); [None] is
    the stage's one teacher (the pipeline's, or who stands in for it)."""
    names = list(named) if teachers == ALL_TEACHERS else list(teachers)
    return list(names) or [None]


def fingerprinted(teachers: list[str] | str, known: dict[str, TeacherConfig]) -> dict[str, Any]:
    """The configs of the teachers asked as fingerprints see them ({} when `known`, the pipeline's teachers
    by name, is not given); ValueError when two of them would share call-cache entries."""
    names = [n for n in known if n != DEFAULT_TEACHER] if teachers == ALL_TEACHERS else list(teachers)
    if not known:
        return {}
    shared = shared_cache({name: known[name] for name in names if name in known})
    if shared:
        raise ValueError(
            f"teachers {shared[0]!r} and {shared[1]!r} have one backend and model, so the call cache would "
            f"answer {shared[1]!r} with {shared[0]!r}'s samples; ask one of them"
        )
    exclude = set(TeacherConfig.NOT_FINGERPRINTED)
    return {name: known[name].model_dump(mode="json", exclude=exclude) for name in names if name in known}


def ask(
    engines: dict[str | None, Engine],
    requests: Iterable[tuple[T, Request]],
    parse: Parser | None,
    retries: int,
) -> Iterator[tuple[T, list[Sample]]]:
    """Each request answered by every engine, in input order: their samples in the engines' order, each
    sample naming its teacher (when named). Each engine reads its own copy of the requests in its own
    thread, so the teachers work side by side."""
    if list(engines) == [None]:
        yield from engines[None].map(requests, parse, parse_retries=retries)
        return
    copies = _copies(requests, len(engines))
    streams = [
        engine.map(copy, parse, parse_retries=retries)
        for engine, copy in zip(engines.values(), copies, strict=True)
    ]
    for answers in zip(*streams, strict=True):
        samples = [
            sample.model_copy(update={"teacher": name})
            for name, (_, answered) in zip(engines, answers, strict=True)
            for sample in answered
        ]
        yield answers[0][0], samples


def each_teacher(
    outputs: list[Record], provenance: Provenance, provenances: list[Provenance]
) -> list[Record]:
    """The records with the stage's `provenance` replaced by one per teacher asked, when several were."""
    if len(provenances) == 1:
        return outputs
    return [
        record.model_copy(
            update={
                "provenance": [
                    q for p in record.provenance for q in (provenances if p is provenance else [p])
                ]
            }
        )
        for record in outputs
    ]


def _copies(items: Iterable[T], count: int) -> list[Iterator[T]]:
    """`count` iterators over `items` that threads may read side by side (itertools.tee alone may not)."""
    lock = threading.Lock()
    end: Any = object()

    def copy(branch: Iterator[T]) -> Iterator[T]:
        while True:
            with lock:
                item = next(branch, end)
            if item is end:
                return
            yield item

    return [copy(branch) for branch in itertools.tee(items, count)]
