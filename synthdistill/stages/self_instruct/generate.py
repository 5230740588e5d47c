"""The generation step of self_instruct: each prompt's in-context instructions, drawn from the seeds and
the pool, and the numbered list the teacher continues, read back as candidate instructions."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from synthdistill.records import Record, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.stages.self_instruct.candidate import OPERATOR, Candidate, Prompt
from synthdistill.stages.self_instruct.seeds import Seed, one_line
from synthdistill.teachers.base import Request
from synthdistill.teachers.engine import Engine

if TYPE_CHECKING:
    from synthdistill.stages.self_instruct.stage import SelfInstructConfig


def draw_prompt(
    step: int, wave: int, pool: list[Record], seeds: list[Seed], config: SelfInstructConfig, seed: int
) -> Prompt:
    """Prompt number `step`: its in-context examples drawn from the kept `pool` and the `seeds`."""
    rng = random.Random(f"{OPERATOR}:{seed}:{step}")
    generated = rng.sample(pool, min(config.generated_examples, len(pool)))
    # Seeds fill the places of generated instructions not there yet, as in the paper.
    wanted = config.seed_examples + config.generated_examples - len(generated)
    chosen = rng.sample([s.record for s in seeds], min(wanted, len(seeds)))
    examples = generated + chosen
    rng.shuffle(examples)
    seed_ids = {record.id for record in chosen}
    first_seed = next(record for record in examples if record.id in seed_ids)
    return Prompt(step=step, wave=wave, examples=examples, seed=first_seed)


def generate(
    prompts: list[Prompt], config: SelfInstructConfig, ctx: StageContext, engine: Engine
) -> tuple[list[Candidate], int]:
    """The candidates the teacher's replies to `prompts` hold, and the number of requests that failed."""
    requests = []
    for prompt in prompts:
        variables = {
            "instructions": [_instruction_of(r) for r in prompt.examples],
            "count": config.per_request,
        }
        messages = ctx.templates.render_messages(config.generate_template, variables)
        requests.append((prompt, _generation_request(messages, len(prompt.examples), config, ctx.seed)))
    candidates = []
    failed = 0
    for prompt, samples in engine.map(requests):
        sample = samples[0]
        if sample.error is not None:
            failed += 1
            continue
        items = parse_numbered(sample.text, len(prompt.examples) + 1)[: config.per_request]
        for position, text in enumerate(items):
            candidate = Candidate(prompt, text, [sample], [config.generate_template])
            candidate.probe_id = stable_hash(OPERATOR, prompt.step, position)
            if sample.finish_reason == "length" and position == len(items) - 1:
                candidate.reason = ("cut_off", "cut off by max_tokens")
            candidates.append(candidate)
    return candidates, failed


def parse_numbered(text: str, start: int) -> list[str]:
    """The items of a numbered list that continues at `start` (the prompt ends with "`start`.").

    Text before the first number is item `start` itself when the reply continues the open line, and a
    preamble ("Here are more tasks:") when the reply restarts at `start`. Each item has its whitespace
    collapsed and its first letter capitalised, as the paper's post-processing does.
    """
    matches = list(_NUMBERED.finditer(text))
    bodies = [
        text[m.end() : (matches[i + 1].start() if i + 1 < len(matches) else len(text))]
        for i, m in enumerate(matches)
    ]
    lead = text[: matches[0].start()] if matches else text
    continues = not matches or int(matches[0].group(1)) != start
    if continues and lead.strip() and not lead.strip().endswith(":"):
        bodies.insert(0, lead)
    items = []
    for body in bodies:
        item = re.sub(r"\s+", " ", body).strip()
        # A weak teacher numbers twice ("9. 9. Sort ...").
        item = re.sub(r"^(?:\d+\s?[.)]\s*)+", "", item).strip("*").strip()
        if item:
            items.append(item[0].upper() + item[1:])
    return items


_NUMBERED = re.compile(r"^[ \t]*\**[ \t]*(\d+)[ \t]?[.)]\**[ \t]*", re.MULTILINE)


def _generation_request(
    messages: list[dict[str, str]], shown: int, config: SelfInstructConfig, seed: int
) -> Request:
    # The paper stopped before item 16 (after 7 new ones); this stops after `per_request` new ones.
    after_last = shown + config.per_request + 1
    return Request(
        messages=messages,
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        stop=[f"\n{after_last}."],
        seed=seed,
    )


def _instruction_of(record: Record) -> str:
    """An in-context instruction as the paper lists it: on one line, without a trailing colon."""
    text = record.input.get("instruction", record.input.get("question", ""))
    return one_line(str(text)).rstrip(":")
