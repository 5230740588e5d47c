"""The few-shot seed tasks of self_instruct's classification and instance prompts, drawn once per run."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from synthdistill.stages.self_instruct.candidate import OPERATOR
from synthdistill.stages.self_instruct.seeds import Seed

if TYPE_CHECKING:
    from synthdistill.stages.self_instruct.stage import SelfInstructConfig


class Shots:
    """The few-shot examples, drawn once per run from the seeds (the same prefix for every prompt)."""

    def __init__(self, config: SelfInstructConfig, seeds: list[Seed], seed: int) -> None:
        rng = random.Random(f"{OPERATOR}:{seed}:shots")
        yes = [s for s in seeds if s.is_classification]
        no = [s for s in seeds if not s.is_classification]
        k = config.classify_examples
        take_yes = min(len(yes), max(k // 2, k - len(no)))
        chosen = rng.sample(yes, take_yes) + rng.sample(no, min(len(no), k - take_yes))
        rng.shuffle(chosen)
        self.classify = [
            {"instruction": s.instruction, "is_classification": s.is_classification} for s in chosen
        ]
        with_instances = [s for s in seeds if s.instances]
        self.classification = _instance_shots(
            rng, [s for s in with_instances if s.is_classification], config.instance_examples
        )
        self.generation = _instance_shots(
            rng, [s for s in with_instances if not s.is_classification], config.instance_examples
        )


def _instance_shots(rng: random.Random, seeds: list[Seed], k: int) -> list[dict[str, Any]]:
    chosen = rng.sample(seeds, min(k, len(seeds)))
    return [{"instruction": s.instruction, "instances": s.instances} for s in chosen]
