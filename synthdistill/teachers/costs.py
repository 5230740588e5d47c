"""What teacher calls cost: prices per token, estimates before a call, and the run's budget.

Prices come from `teacher.price` in the pipeline, else from litellm's price map read from the file
inside the installed litellm package (never from the network, and without importing litellm), else
they are unknown. A local model costs nothing.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from synthdistill.config import TeacherConfig
from synthdistill.errors import RunError
from synthdistill.teachers.base import Request

log = logging.getLogger(__name__)

# Roughly four characters a token for English under BPE tokenizers: an estimate for limits and budgets
# before a call, always replaced by the usage the provider reports after it.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Price:
    """USD per token, prompt and completion."""

    prompt: float
    completion: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one call's usage."""
        return prompt_tokens * self.prompt + completion_tokens * self.completion


FREE = Price(0.0, 0.0)


class BudgetExceeded(RunError):
    """The next teacher call would take the run past `max_cost_usd`."""


class Budget:
    """The run's spending cap, shared by every engine of the run; calls reserve their worst case first."""

    def __init__(self, max_usd: float | None) -> None:
        self.max_usd = max_usd
        self.spent = 0.0
        self._reserved = 0.0
        self._lock = threading.Lock()  # engines run their loops in threads of their own

    def reserve(self, usd: float) -> None:
        """Set `usd` aside for a call, or raise `BudgetExceeded` if the cap would be passed."""
        with self._lock:
            if self.max_usd is not None and self.spent + self._reserved + usd > self.max_usd:
                raise BudgetExceeded(
                    f"stopped: the next teacher call could take the run past max_cost_usd={self.max_usd:g}; "
                    "everything paid for is kept: raise max_cost_usd and run again to go on"
                )
            self._reserved += usd

    def settle(self, reserved: float, spent: float) -> None:
        """Replace a call's reservation by what it cost (0 for a call that failed)."""
        with self._lock:
            self._reserved -= reserved
            self.spent += spent


def estimate_tokens(request: Request) -> tuple[int, int]:
    """Prompt and completion tokens a request may use at most (the completion bound is max_tokens x n)."""
    chars = sum(len(str(m.get("content") or "")) for m in request.messages)
    return -(-chars // CHARS_PER_TOKEN), request.max_tokens * request.n


def price_for(teacher: TeacherConfig, local: bool) -> Price | None:
    """The teacher's price: its config, a local model's zero, litellm's map, or None when unknown."""
    if teacher.price is not None:
        return Price(teacher.price.input_per_mtok / 1e6, teacher.price.output_per_mtok / 1e6)
    if local:
        return FREE
    entry = _litellm_prices().get(teacher.model) or _litellm_prices().get(teacher.model.split("/", 1)[-1])
    if entry is None:
        return None
    return Price(
        float(entry.get("input_cost_per_token") or 0.0), float(entry.get("output_cost_per_token") or 0.0)
    )


@lru_cache(maxsize=1)
def _litellm_prices() -> dict[str, Any]:
    # Read as a file: importing litellm costs seconds, and it would try the network for a newer map.
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    try:
        prices: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("cannot read litellm's price map at %s: %s", path, exc)
        return {}
    return prices
