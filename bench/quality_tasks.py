"""The quality benchmark's real tasks: CommonsenseQA (`cqa`) and e-SNLI (`esnli`) with PaLM-540B's rationales.

Distilling step-by-step (Hsieh et al., 2023) published PaLM-540B's few-shot rationales for both tasks;
../shared/data holds them in a `palm_cot` column (cqa/train.jsonl for its first 4,000 questions,
esnli/valid.jsonl for every pair). Here the teacher's pool is those rationales as they were written,
entered through generate's `recorded` option (nothing is sampled), voted with `keep: all` (one sample a
question) and filtered by `answer_match`, `choice_consistency` (multiple choice) and `length`. The rows,
beside quality.py's arithmetic ones:
  1. base           no training
  2. label-only     SFT on the gold answers alone
  4. filtered       SFT on the PaLM rationales the filter kept
  5. step-by-step   row 4's records as two tasks, asked for the label
  5b. sbs-rationale the same student asked for its rationale (a second evaluate of row 5's run: free)
and for cqa the answer line's form (train's `answer_format`, each with its student template):
  4l. filtered-letter       row 4 learning "The answer is (c)."
  4lt. filtered-letter-text row 4 learning "The answer is (c) house." (PaLM's own form)
where row 4 learns "The answer is house.", the shipped default. Only rows with a rationale are used (the
cqa rows without one are left out of the file the runs read), so every row's split draws from one set of
items: by seed, like arithmetic, test and train disjoint.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TASKS = ("cqa", "esnli")
TEACHER = "PaLM-540B (Distilling step-by-step)"
ROWS = {
    "cqa": (
        "base",
        "label-only",
        "filtered",
        "filtered-letter",
        "filtered-letter-text",
        "step-by-step",
        "sbs-rationale",
    ),
    "esnli": ("base", "label-only", "filtered", "step-by-step", "sbs-rationale"),
}
NUMBERS = {"filtered-letter": "4l", "filtered-letter-text": "4lt"}
"""The task rows' numbers in the table beyond quality.py's."""
FORMATS = {"filtered": "text", "filtered-letter": "letter", "filtered-letter-text": "letter_text"}
"""Each filtered row's train.answer_format."""
CLAIMS = (
    ("filtered-letter", "filtered", "4l beats 4 (the letter '(c)' trains better than the text 'house')"),
    ("filtered-letter-text", "filtered", "4lt beats 4 ('(c) house' trains better than 'house')"),
    ("filtered-letter-text", "filtered-letter", "4lt beats 4l ('(c) house' trains better than '(c)')"),
)
"""Paired claims of the answer-format rows, beside quality.py's (rationales over labels, step-by-step)."""
_FIELDS = {
    "cqa": {"question": "question", "choices": "choices", "answer": "answer", "palm_cot": "palm_cot"},
    "esnli": {
        "question": "Premise: {{ premise }}\nHypothesis: {{ hypothesis }}",
        "premise": "premise",
        "hypothesis": "hypothesis",
        "answer": "label",
        "palm_cot": "palm_cot",
    },
}
_TASK = {
    "cqa": {"type": "choice"},
    "esnli": {"type": "label", "labels": ["entailment", "neutral", "contradiction"]},
}
_FILES = {"cqa": "cqa/train.jsonl", "esnli": "esnli/valid.jsonl"}
# The shipped pipelines' length limits (pipelines/cqa.yaml, esnli.yaml); PaLM's rationales are shorter.
_CRITICS: dict[str, list[Any]] = {
    "cqa": ["answer_match", "choice_consistency", {"length": {"max_words": 80}}],
    "esnli": ["answer_match", {"length": {"max_words": 60}}],
}
_TEMPLATES = {
    ("cqa", "text"): "cqa_student.j2",
    ("cqa", "letter"): "cqa_student_letter.j2",
    ("cqa", "letter_text"): "cqa_student_letter_text.j2",
    ("esnli", "text"): "esnli_student.j2",
}
# Share of PaLM's rationales the filter keeps (155 and 141 of 200 a seed on cqa and esnli, seeds 0-2), the
# tokens of a training example against arithmetic's (151 and 116 against 123 on average), and the models
# evaluated a seed (the base once per student template, each student, step-by-step's second asking): for
# the time estimate only.
_KEPT = {"cqa": 0.78, "esnli": 0.71}
_STEP_COST = {"cqa": 1.2, "esnli": 0.95}
_EVALUATIONS = {"cqa": 9, "esnli": 5}


def task_data(name: str, shared: Path, out: Path) -> dict[str, Any]:
    """The pipelines' `data` block (without the split) for task `name`, from ../shared/data (`shared`).

    The cqa file's rows without a rationale are left out (in a copy under `out/data`, rows unchanged),
    so every row draws its splits from the same items.
    """
    source = shared / _FILES[name]
    if name == "cqa":
        rows = [
            line
            for line in source.read_text(encoding="utf-8").splitlines()
            if json.loads(line).get("palm_cot")
        ]
        copy = out / "data" / "cqa-palm.jsonl"
        copy.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(rows) + "\n"
        if not copy.is_file() or copy.read_text(encoding="utf-8") != text:
            copy.write_text(text, encoding="utf-8")
        source = copy
    return {"source": str(source.resolve()), "fields": _FIELDS[name], "task": _TASK[name]}


def run_row(name: str, row: str) -> str:
    """The row whose run scores `row`: sbs-rationale is a second evaluate of the step-by-step run."""
    return "step-by-step" if name in TASKS and row == "sbs-rationale" else row


def evaluation_of(name: str, row: str) -> int:
    """Which of the row's run's evaluate stages (in order) scores the row."""
    return 1 if name in TASKS and row == "sbs-rationale" else 0


def task_stages(name: str, row: str, train: dict[str, Any], eval_tokens: int) -> list[dict[str, Any]]:
    """The stages of task `name`'s `row` (or of its pool), given the arithmetic rows' train options."""
    pool: list[dict[str, Any]] = [
        {"generate": {"recorded": {"field": "palm_cot", "model": TEACHER}}},
        {"self_consistency": {"target": "majority", "keep": "all"}},
        {"filter": {"critics": _CRITICS[name]}},
    ]
    if row == "pool":
        return pool
    answer_format = FORMATS.get(row, "text")
    template = _TEMPLATES[(name, answer_format)]
    train = {**train, "template": template}
    if answer_format != "text":
        train["answer_format"] = answer_format
    evaluate = {"template": template, "max_tokens": eval_tokens, "plot": False}
    if row == "label-only":
        return [{"train": {**train, "target": "label"}}, {"evaluate": evaluate}]
    if row == "step-by-step":
        asked_for_rationale = {**evaluate, "student_task": "rationale", "base": False}
        return [*pool, {"train": {**train, "step_by_step": {}}}, {"evaluate": evaluate},
                {"evaluate": asked_for_rationale}]  # fmt: skip
    return [*pool, {"train": train}, {"evaluate": evaluate}]


def estimate(name: str, args: Any, train_step_s: float, eval_tokens_per_s: float) -> float:
    """Rough seconds of task `name` at `args`' size on the 2-core CPU (no sampling: the pool is recorded)."""
    steps = args.steps or math.ceil(2 * args.train * _KEPT[name] / args.batch_size)
    trained = len(ROWS[name]) - 2  # neither the base nor sbs-rationale trains
    training = trained * steps * train_step_s * _STEP_COST[name] * args.batch_size / 8
    evaluation = _EVALUATIONS[name] * args.test * args.eval_tokens * 0.6 / eval_tokens_per_s
    return args.seeds * (training + evaluation + trained * 20)
