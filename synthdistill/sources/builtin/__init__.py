"""Built-in procedural tasks: items made on the fly, seeded, with exact gold answers, for demos and tests.

`load_builtin` is the `builtin` source; each task is a module of its own: arith.py (`builtin:arith`,
arithmetic word problems) and symbolic.py (`builtin:events` and `builtin:triples`, for symbolic knowledge
distillation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from synthdistill.errors import DataError
from synthdistill.sources.builtin.arith import arith
from synthdistill.sources.builtin.symbolic import events, triples


def load_builtin(
    spec: str, options: dict[str, Any], seed: int, count: int, base_dir: Path
) -> Iterator[dict[str, Any]]:
    """Up to `count` items of the built-in task `spec` (the part after `builtin:`); one seed, one list.

    The items do not depend on `count`, so asking for more extends the list without changing its start.
    `base_dir` is unused: built-in tasks read no files.
    """
    task = _TASKS.get(spec.strip())
    if task is None:
        valid = ", ".join(sorted(_TASKS))
        raise DataError(
            f"unknown builtin task {spec!r}; valid tasks: {valid} (write for example builtin:arith)"
        )
    return task(options, seed, count)


_TASKS: dict[str, Callable[[dict[str, Any], int, int], Iterator[dict[str, Any]]]] = {
    "arith": arith,
    "events": events,
    "triples": triples,
}
