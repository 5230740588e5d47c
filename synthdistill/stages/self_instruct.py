"""self_instruct: Self-Instruct bootstrapping (Wang et al., 2023), new tasks grown from a few seed tasks.

The stage takes every seed task at once (question = the instruction, `instances` = [{input, output}],
`is_classification`) and loops, as the paper's released code does:

1. Generation: each prompt lists 8 in-context instructions (6 seeds and 2 instructions kept so far, fewer
   of those while there are not 2 yet), shuffled, numbered, and left open at the next number
   (`self_instruct_generate.j2`); the teacher continues the list.
2. Filtering: a new instruction is dropped, with the reason, when it has too few or too many words, names
   something a text model cannot handle (image, graph, file, ...), starts with punctuation or a non-ASCII
   character, is degenerate (growth.degenerate_reason), or is not novel: ROUGE-L above 0.7 against a seed,
   an instruction kept before, or one earlier in its wave (growth.Novelty).
3. Classification identification: the teacher says Yes or No after few-shot seeds
   (`self_instruct_classify.j2`).
4. Instance generation: output first for classification tasks (each class label, then an input for it,
   `self_instruct_output_first.j2`), input first for the others (`self_instruct_input_first.j2`);
   an instruction whose reply holds no usable instance is dropped with the reason.

Requests go in waves of up to the engine's concurrency; every prompt of a wave samples from the pool as
it stood when the wave began, with a random generator seeded by the pipeline's seed and the prompt's
number, so a re-run replays each prompt from the call cache. The loop ends once `target` instructions
are kept or `max_requests` prompts were sent.

Each new instruction becomes a record made by `growth.grown` from the first seed among its in-context
examples: input {question (the instruction, and the first instance's input), instruction, instances,
is_classification, examples (ids of the 8 in-context instructions)}, `answer` the first instance's
output. Dropped candidates are written too, as dropped records with their reason.
"""

from __future__ import annotations

import math
import random
import re
import string
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthdistill.config import MaxTokens, Temperature, TopP
from synthdistill.errors import StageError
from synthdistill.growth.instructions import Novelty, degenerate_reason, grown
from synthdistill.records import Record, Sample, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.teachers.base import Request

OPERATOR = "self_instruct"

# The paper's keyword filter (bootstrap_instructions.py and section 2.3): tasks a language model cannot
# do in text. "go to" is matched as a phrase.
BLACKLIST = [
    *("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps"),
    *("draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"),
]


class SelfInstructConfig(BaseModel):
    """Options of the self_instruct stage."""

    model_config = ConfigDict(extra="forbid")

    # How much to grow.
    target: int = Field(100, ge=1, description="New instructions to keep; the loop stops once it has them.")
    max_requests: int = Field(
        1000,
        ge=1,
        description="Most generation prompts to send; the loop stops there even short of `target`.",
    )
    per_request: int = Field(8, ge=1, le=64, description="New instructions asked for in each prompt.")
    keep_seeds: bool = Field(
        False,
        description="Whether the seed tasks are handed on too (as the paper's --include_seed_tasks), in "
        "the same shape as the new ones.",
    )

    # In-context examples: the paper's 8 a prompt, 6 written by people and 2 generated.
    seed_examples: int = Field(6, ge=1, le=32, description="Seed instructions shown in each prompt.")
    generated_examples: int = Field(
        2,
        ge=0,
        le=32,
        description="Instructions kept so far shown in each prompt; seeds fill their places until there "
        "are that many.",
    )

    # Sampling of the generation prompt: the paper's temperature 0.7 and top_p 0.5.
    temperature: Temperature = 0.7
    top_p: TopP = 0.5
    max_tokens: MaxTokens = 1024

    # Filters.
    min_words: int = Field(3, ge=1, description="Fewer words than this drops an instruction.")
    max_words: int = Field(150, ge=1, description="More words than this drops an instruction.")
    blacklist: list[str] = Field(
        default_factory=lambda: list(BLACKLIST),
        description="Words (or phrases) whose presence drops an instruction, matched as whole words in any "
        "case; the default is the paper's list of things a text model cannot handle.",
    )
    rouge_l: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="Drop an instruction whose ROUGE-L F1 against a seed or a kept one is above this.",
    )
    embedding: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Also drop one whose all-MiniLM-L6-v2 cosine to a seed or a kept one is above this; "
        "None checks ROUGE-L alone, as the paper did.",
    )

    # Classification identification and instances.
    classify_examples: int = Field(
        12,
        ge=0,
        le=64,
        description="Seed tasks shown (half Yes, half No where possible) when asking "
        "whether a task is classification.",
    )
    instance_examples: int = Field(
        4, ge=0, le=32, description="Seed tasks of the same kind whose instances are shown as examples."
    )
    max_instances: int = Field(
        5, ge=1, le=32, description="Most instances kept per instruction (the paper's 5)."
    )
    instance_max_tokens: int = Field(
        350, ge=1, description="Most new tokens of an instance reply (the paper's 300 to 350)."
    )

    # Templates.
    generate_template: str = Field(
        "self_instruct_generate.j2", description="Template asking for new instructions."
    )
    classify_template: str = Field(
        "self_instruct_classify.j2", description="Template asking whether a task is classification."
    )
    output_first_template: str = Field(
        "self_instruct_output_first.j2", description="Template for instances of classification tasks."
    )
    input_first_template: str = Field(
        "self_instruct_input_first.j2", description="Template for instances of the other tasks."
    )

    @model_validator(mode="after")
    def _words(self) -> SelfInstructConfig:
        if self.min_words > self.max_words:
            raise ValueError(
                f"min_words ({self.min_words}) is above max_words ({self.max_words}); lower min_words"
            )
        return self


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Grow new instructions from the seed tasks until `target` are kept or `max_requests` are sent."""
    config: SelfInstructConfig = ctx.config
    seeds = [_seed(record, ctx.spec.name) for record in records]
    if not seeds:
        raise StageError(
            "no seed tasks came in; point data.source at a seed file (pipelines/seeds/seed_tasks.jsonl)",
            stage=ctx.spec.name,
        )
    if config.keep_seeds:
        for seed in seeds:
            yield _handed_on(seed)
    loop = _Bootstrap(config, ctx, seeds)
    yield from loop.run()
    ctx.details.update(loop.details())


@dataclass
class _Seed:
    """A seed task as the loop reads it."""

    record: Record
    instruction: str
    instances: list[dict[str, str]]
    is_classification: bool


@dataclass
class _Prompt:
    """One generation prompt: its number, its in-context examples (records), and the seed it grows from."""

    step: int
    wave: int
    examples: list[Record]
    seed: Record


@dataclass
class _Candidate:
    """A new instruction on its way through the filters."""

    prompt: _Prompt
    instruction: str
    samples: list[Sample]
    templates: list[str] = field(default_factory=list)
    reason: tuple[str, str] | None = None
    """(kind, words) of why it was dropped; None while it is kept."""
    is_classification: bool | None = None
    instances: list[dict[str, str]] = field(default_factory=list)
    probe_id: str = ""


class _Bootstrap:
    """The loop's state: the pool of kept instructions, the novelty index, the counts."""

    def __init__(self, config: SelfInstructConfig, ctx: StageContext, seeds: list[_Seed]) -> None:
        self.config = config
        self.ctx = ctx
        self.seeds = seeds
        self.engine = ctx.engine()
        self.pool: list[Record] = []
        self.sent = 0
        self.wave = 0
        self.candidates = 0
        self.classification = 0
        self.dropped: Counter[str] = Counter()
        self.failed_requests = 0
        self.unclear = 0
        # Instructions by the id the novelty index knows them by, so a near-duplicate's reason can name the
        # record a reviewer can find (the seed, or the kept instruction's own record).
        self.named: dict[str, str] = {}
        self.yielded: set[str] = set()
        self.novelty = Novelty(rouge_l=config.rouge_l, embedding=config.embedding)
        self.novelty.remember([_probe(seed.record.id, seed.instruction) for seed in seeds])
        self.shots = _Shots(config, seeds, ctx.seed)
        generation = {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_tokens,
        }
        instances = {"temperature": 0.0, "max_tokens": config.instance_max_tokens}
        self.provenance = {
            name: ctx.provenance(name, params)
            for name, params in (
                (config.generate_template, generation),
                (config.classify_template, {"temperature": 0.0, "max_tokens": _CLASSIFY.max_tokens}),
                (config.output_first_template, instances),
                (config.input_first_template, instances),
            )
        }

    def run(self) -> Iterator[Record]:
        config = self.config
        while self.kept < config.target and self.sent < config.max_requests:
            self.wave += 1
            size = min(self.engine.max_concurrency, config.max_requests - self.sent, self._need())
            prompts = [self._prompt(self.sent + i) for i in range(size)]
            self.sent += size
            candidates = self._generate(prompts)
            self._filter(candidates)
            self._classify([c for c in candidates if c.reason is None])
            self._instances([c for c in candidates if c.reason is None])
            made = [self._record(c) for c in candidates]
            for candidate, record in zip(candidates, made, strict=True):
                self.named[candidate.probe_id] = record.id
            for candidate, record in zip(candidates, made, strict=True):
                record = self._renamed(record)
                if record.kept:
                    self.pool.append(record)
                    self.classification += bool(candidate.is_classification)
                if record.id in self.yielded:
                    # The same candidate twice in one reply: the same record, written once.
                    continue
                self.yielded.add(record.id)
                yield record
            self.ctx.log.info(
                "wave %d: %d prompts, %d candidates, %d kept so far",
                self.wave,
                size,
                len(candidates),
                self.kept,
            )

    @property
    def kept(self) -> int:
        return len(self.pool)

    def details(self) -> dict[str, Any]:
        stopped = "target" if self.kept >= self.config.target else "max_requests"
        return {
            "prompts_sent": self.sent,
            "waves": self.wave,
            "candidates": self.candidates,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "classification_share": round(self.classification / self.kept, 4) if self.kept else None,
            "classification_unclear": self.unclear,
            "failed_requests": self.failed_requests,
            "stopped_by": stopped,
        }

    def _need(self) -> int:
        """Prompts the target still needs at the yield seen so far (at full yield before any was seen).

        Sending fewer than that would leave the teacher idle between waves; sending more would pay for
        instructions past the target.
        """
        per_prompt = self.kept / self.sent if self.sent else float(self.config.per_request)
        if per_prompt == 0:
            return self.config.max_requests
        return math.ceil((self.config.target - self.kept) / per_prompt)

    def _prompt(self, step: int) -> _Prompt:
        config = self.config
        rng = random.Random(f"{OPERATOR}:{self.ctx.seed}:{step}")
        generated = rng.sample(self.pool, min(config.generated_examples, len(self.pool)))
        # Seeds fill the places of generated instructions not there yet, as in the paper.
        wanted = config.seed_examples + config.generated_examples - len(generated)
        seeds = rng.sample([s.record for s in self.seeds], min(wanted, len(self.seeds)))
        examples = generated + seeds
        rng.shuffle(examples)
        seed_ids = {record.id for record in seeds}
        first_seed = next(record for record in examples if record.id in seed_ids)
        return _Prompt(step=step, wave=self.wave, examples=examples, seed=first_seed)

    def _generate(self, prompts: list[_Prompt]) -> list[_Candidate]:
        config = self.config
        requests = []
        for prompt in prompts:
            variables = {
                "instructions": [_instruction_of(r) for r in prompt.examples],
                "count": config.per_request,
            }
            messages = self.ctx.templates.render_messages(config.generate_template, variables)
            requests.append((prompt, self._generation_request(messages, len(prompt.examples))))
        candidates = []
        for prompt, samples in self.engine.map(requests):
            sample = samples[0]
            if sample.error is not None:
                self.failed_requests += 1
                continue
            items = parse_numbered(sample.text, len(prompt.examples) + 1)[: config.per_request]
            for position, text in enumerate(items):
                candidate = _Candidate(prompt, text, [sample], [config.generate_template])
                candidate.probe_id = stable_hash(OPERATOR, prompt.step, position)
                if sample.finish_reason == "length" and position == len(items) - 1:
                    candidate.reason = ("cut_off", "cut off by max_tokens")
                candidates.append(candidate)
        self.candidates += len(candidates)
        return candidates

    def _filter(self, candidates: list[_Candidate]) -> None:
        for candidate in candidates:
            if candidate.reason is None:
                candidate.reason = rule_reason(candidate.instruction, self.config)
        open_ = [c for c in candidates if c.reason is None]
        if not open_:
            return
        # A novel instruction joins the index even if its instances fail later: the paper's pool held every
        # instruction that passed ROUGE-L, before instance generation.
        verdicts = self.novelty.check([_probe(c.probe_id, c.instruction) for c in open_])
        for candidate, reason in zip(open_, verdicts, strict=True):
            if reason is not None:
                candidate.reason = ("near_duplicate", reason)

    def _classify(self, candidates: list[_Candidate]) -> None:
        name = self.config.classify_template
        requests = []
        for candidate in candidates:
            variables = {"examples": self.shots.classify, "instruction": candidate.instruction}
            messages = self.ctx.templates.render_messages(name, variables)
            requests.append((candidate, _CLASSIFY.model_copy(update={"messages": messages})))
        for candidate, samples in self.engine.map(requests):
            sample = samples[0]
            answer = parse_yes_no(sample.text) if sample.error is None else None
            if answer is None:
                # The paper counts anything but "Yes" as not classification.
                self.unclear += 1
            candidate.is_classification = bool(answer)
            candidate.samples.append(sample)
            candidate.templates.append(name)

    def _instances(self, candidates: list[_Candidate]) -> None:
        config = self.config
        requests = []
        for candidate in candidates:
            if candidate.is_classification:
                name, examples = config.output_first_template, self.shots.classification
            else:
                name, examples = config.input_first_template, self.shots.generation
            variables = {"examples": examples, "instruction": candidate.instruction}
            messages = self.ctx.templates.render_messages(name, variables)
            candidate.templates.append(name)
            requests.append((candidate, self._instance_request(messages)))
        for candidate, samples in self.engine.map(requests):
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

    def _record(self, candidate: _Candidate) -> Record:
        instruction = candidate.instruction
        first = candidate.instances[0] if candidate.instances else None
        question = f"{instruction}\n\n{first['input']}" if first and first["input"] else instruction
        fields = {
            "question": question,
            "instruction": instruction,
            "instances": candidate.instances,
            "is_classification": candidate.is_classification,
            "examples": [record.id for record in candidate.prompt.examples],
        }
        record = grown(candidate.prompt.seed, fields, operator=OPERATOR, round=candidate.prompt.wave)
        record = record.model_copy(
            update={
                "source_id": candidate.prompt.seed.id,
                "answer": first["output"] if first else None,
                "samples": candidate.samples,
                "provenance": [self.provenance[name] for name in candidate.templates],
            }
        )
        if candidate.reason is None:
            return record
        kind, why = candidate.reason
        self.dropped[kind] += 1
        return record.drop(self.ctx.spec.name, why)

    def _renamed(self, record: Record) -> Record:
        """A dropped near-duplicate's reason naming the kept instruction's record, not its probe."""
        verdict = record.verdicts.get(self.ctx.spec.name)
        if verdict is None:
            return record
        reason = re.sub(
            r"record (\w+)", lambda m: f"record {self.named.get(m.group(1), m.group(1))}", verdict.reason
        )
        if reason == verdict.reason:
            return record
        verdicts = {**record.verdicts, self.ctx.spec.name: verdict.model_copy(update={"reason": reason})}
        return record.model_copy(update={"verdicts": verdicts})

    def _generation_request(self, messages: list[dict[str, str]], shown: int) -> Request:
        config = self.config
        # The paper stopped before item 16 (after 7 new ones); this stops after `per_request` new ones.
        after_last = shown + config.per_request + 1
        return Request(
            messages=messages,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            stop=[f"\n{after_last}."],
            seed=self.ctx.seed,
        )

    def _instance_request(self, messages: list[dict[str, str]]) -> Request:
        # Greedy, as the paper; "Task:" starts the next few-shot task, "Example N+1" one instance too many.
        return Request(
            messages=messages,
            temperature=0.0,
            max_tokens=self.config.instance_max_tokens,
            stop=["Task:", f"Example {self.config.max_instances + 1}"],
            seed=self.ctx.seed,
        )


# The paper asked for 3 tokens at temperature 0: "Yes" or "No".
_CLASSIFY = Request(messages=[], temperature=0.0, max_tokens=4)


class _Shots:
    """The few-shot examples, drawn once per run from the seeds (the same prefix for every prompt)."""

    def __init__(self, config: SelfInstructConfig, seeds: list[_Seed], seed: int) -> None:
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


def parse_yes_no(text: str) -> bool | None:
    """True for a reply that says Yes first, False for No, None for neither."""
    match = re.search(r"\b(yes|no)\b", text, re.IGNORECASE)
    return None if match is None else match.group(1).lower() == "yes"


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


_NUMBERED = re.compile(r"^[ \t]*\**[ \t]*(\d+)[ \t]?[.)]\**[ \t]*", re.MULTILINE)
_EXAMPLE = re.compile(r"^[ \t#*]*Example[ \t]*\d*[ \t]*[.:]?[ \t*]*$", re.MULTILINE | re.IGNORECASE)
_OUTPUT = re.compile(r"\**Output\s*\d*\s*:\**", re.IGNORECASE)
_INPUT = re.compile(r"^\s*\**Input\s*\d*\s*:\**", re.IGNORECASE)
_INPUT_LINE = re.compile(r"^(?=[ \t]*\**Input\s*\d*\s*:)", re.MULTILINE | re.IGNORECASE)
_CLASS_LABEL = re.compile(r"\**Class label\s*:\**", re.IGNORECASE)


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


def _instance_shots(rng: random.Random, seeds: list[_Seed], k: int) -> list[dict[str, Any]]:
    chosen = rng.sample(seeds, min(k, len(seeds)))
    return [{"instruction": s.instruction, "instances": s.instances} for s in chosen]


def _seed(record: Record, stage: str) -> _Seed:
    """A seed record read and checked: its instruction (question), instances and classification flag."""
    fields = record.input
    question = fields.get("question")
    if not isinstance(question, str) or not question.strip():
        raise StageError(
            "a seed task needs its instruction as `question`; map it in data.fields (question: instruction)",
            stage=stage,
            record_id=record.id,
        )
    instances = fields.get("instances")
    if not isinstance(instances, list) or not all(
        isinstance(i, dict) and isinstance(i.get("output"), str) and isinstance(i.get("input", ""), str)
        for i in instances
    ):
        raise StageError(
            f"`instances` must be a list of {{input, output}} objects, got {instances!r:.80}; map the seed "
            "file's instances column in data.fields (instances: instances)",
            stage=stage,
            record_id=record.id,
        )
    flag = _flag(fields.get("is_classification"))
    if flag is None:
        raise StageError(
            f"`is_classification` must be true or false, got {fields.get('is_classification')!r}; map the "
            "seed file's column in data.fields (is_classification: is_classification)",
            stage=stage,
            record_id=record.id,
        )
    cleaned = [{"input": str(i.get("input", "")).strip(), "output": i["output"].strip()} for i in instances]
    return _Seed(record, _one_line(question), cleaned, flag)


def _flag(value: Any) -> bool | None:
    # A CSV column, or a mapping through a jinja expression, gives text rather than a JSON boolean.
    if isinstance(value, bool):
        return value
    return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
        str(value).strip().lower()
    )


def _handed_on(seed: _Seed) -> Record:
    """A seed in the shape of a new instruction: its first instance's input in the question, its output
    the answer."""
    first = seed.instances[0] if seed.instances else None
    question = f"{seed.instruction}\n\n{first['input']}" if first and first["input"] else seed.instruction
    inputs = {
        **seed.record.input,
        "question": question,
        "instruction": seed.instruction,
        "instances": seed.instances,
        "is_classification": seed.is_classification,
    }
    return seed.record.model_copy(update={"input": inputs, "answer": first["output"] if first else None})


def _instruction_of(record: Record) -> str:
    """An in-context instruction as the paper lists it: on one line, without a trailing colon."""
    text = record.input.get("instruction", record.input.get("question", ""))
    return _one_line(str(text)).rstrip(":")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _probe(record_id: str, instruction: str) -> Record:
    """The record the novelty index compares: only the instruction, as `question`."""
    return Record(id=record_id, input={"question": instruction})


STAGE = Stage(
    name="self_instruct",
    config=SelfInstructConfig,
    run=run,
    summary="Grow new tasks from seed tasks (Self-Instruct): instructions, classification, instances.",
    inputs=lambda config: [
        config.generate_template,
        config.classify_template,
        config.output_first_template,
        config.input_first_template,
    ],
    batch_input=True,
    uses=("teacher",),
)
