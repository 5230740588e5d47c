"""Scoring: every task type read and judged one way by the filter, self-consistency and evaluation.

Crafted items of each type, in tricky forms (letters, "(c) text", other case and punctuation, numbers with
units and commas, label synonyms, a triple's tail), go through the answer_match critic (in the filter
stage, on answers parsed as generate parses them), the adversarial discriminate step and a real `evaluate`
run against the scripted server, and all must give the same verdicts. Then the real PaLM-540B
rationales of CommonsenseQA and e-SNLI, and the data that preflight refuses before anything is spent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from critic_helpers import sampled

from synthdistill.cli import main
from synthdistill.config import StageSpec, load_pipeline
from synthdistill.parsing import parse_rationale
from synthdistill.records import Record, Sample
from synthdistill.runs.context import RunContext, StageContext
from synthdistill.runs.folder import RunFolder, read_records
from synthdistill.scoring.scorer import Scorer
from synthdistill.scoring.task import TaskConfig
from synthdistill.stages import filter as filter_stage
from synthdistill.stages.adversarial.discriminate import DISCRIMINATE, HARD, DiscriminateConfig
from synthdistill.stages.self_consistency import run as self_consistency
from synthdistill.templates import Templates
from synthdistill.testing.scripted_server import ScriptedServer

CHOICES = ["park", "coloring book", "garden center", "math problem", "gravity"]
WEATHER = ["sunny", "windy", "overcast", "overrated", "rainy"]
TRIPLE = {"head": "PersonX pays the bill", "relation": "xIntent"}

# (item, teacher's completion, whether it is right): the items of a task declared by nothing.
INFERRED: list[tuple[dict[str, Any], str, bool]] = [
    ({"answer": "1250"}, "It costs $1,250.00 in all.\nThe answer is $1,250.00.", True),
    ({"answer": "12"}, "7 + 5 = 12.\nThe answer is 12 apples.", True),
    ({"answer": "1,000"}, "The answer is 1000.", True),
    ({"answer": "12"}, "The answer is 1.2", False),
    (
        {"answer": "math problem", "choices": CHOICES},
        "Only math fits. So the answer is (d) math problem.",
        True,
    ),
    ({"answer": "math problem", "choices": CHOICES}, "The answer is D.", True),
    ({"answer": "math problem", "choices": CHOICES}, "The answer is Math-Problem!", True),
    ({"answer": "math problem", "choices": CHOICES}, "The answer is (c) garden center.", False),
    ({"answer": "math problem", "choices": CHOICES}, "The answer is (f) moon.", False),
    ({"answer": "D", "choices": CHOICES}, "The answer is math problem.", True),  # a gold letter
    ({"answer": "b", "choices": {"a": "Lyon", "b": "Paris"}}, "The answer is paris", True),
    # The CommonsenseQA bug: kept by letter, then scored wrong by text.
    (
        {"answer": "overcast", "choices": WEATHER},
        "Clouds cover the sky. So the answer is (c) overcast.",
        True,
    ),
    ({"answer": "overcast", "choices": WEATHER}, "So the answer is (d) overrated.", False),
    ({"answer": "neutral"}, "The packages may not be from lunch.\nAnswer: neutral", True),
    ({"answer": "neutral"}, "Answer: Neutral.", True),
    ({"answer": "contradiction"}, "Answer: entailment", False),
    ({"answer": "The Eiffel Tower"}, "The answer is the eiffel tower.", True),
    ({"answer": "Paris, France"}, "The answer is paris france", True),
    ({"answer": "Paris, France"}, "The answer is Lyon, France.", False),
    ({**TRIPLE, "answer": "to be fair"}, "The answer is to be fair.", True),
    ({**TRIPLE, "answer": "to be fair"}, "The answer is Be fair", True),
    ({**TRIPLE, "answer": "to be fair"}, "The answer is to leave.", False),
]
# A declared label task: yes/no, with synonyms.
YES_NO = {"type": "label", "labels": ["yes", "no"], "synonyms": {"yes": ["true", "correct"], "no": ["false"]}}
DECLARED: list[tuple[dict[str, Any], str, bool]] = [
    ({"answer": "yes"}, "The answer is True.", True),
    ({"answer": "no"}, "Answer: false", True),
    ({"answer": "yes"}, "It is right. The answer is correct.", True),
    ({"answer": "yes"}, "Answer: no", False),
    ({"answer": "no"}, "The answer is No.", True),
]


@pytest.mark.parametrize(
    ("cases", "task", "scoring"),
    [
        (INFERRED, {}, "choice 9, number 4, label 3, text 3, triple 3"),
        (DECLARED, YES_NO, "label"),
    ],
    ids=["inferred", "declared-labels"],
)
def test_the_critic_and_evaluate_give_identical_verdicts_on_every_task_type(
    tmp_path, monkeypatch, capfd, cases, task, scoring
):
    monkeypatch.chdir(tmp_path)
    items = [{"question": f"Question {i}?", **item} for i, (item, _, _) in enumerate(cases)]
    replies = {item["question"]: text for item, (_, text, _) in zip(items, cases, strict=True)}
    expected = {item["question"]: ok for item, (_, _, ok) in zip(items, cases, strict=True)}

    # The critic, on each answer as generate parses it from the completion.
    ctx = _stage_context(tmp_path, items, task, "filter: {critics: [answer_match]}")
    records = [
        Record.from_input(item).child(answer=parse_rationale(replies[item["question"]])["answer"])
        for item in items
    ]
    filtered = list(filter_stage.run(records, ctx))
    by_critic = {r.input["question"]: r.verdicts["answer_match"] for r in filtered}
    # The adversarial rounds' discriminate step, on the completions as a student's: hard means wrong.
    spec = StageSpec(name="discriminate", index=2, config=DiscriminateConfig())
    answered = [
        Record.from_input(item).model_copy(update={"samples": [Sample(text=replies[item["question"]])]})
        for item in items
    ]
    marked = list(DISCRIMINATE.run(answered, StageContext(ctx.run, spec, tmp_path / "discriminate")))
    ctx.run.close()
    by_discriminate = {r.input["question"]: r.verdicts[HARD].passed for r in marked}

    # evaluate, on the completions themselves.
    with ScriptedServer() as server:
        server.responder = lambda messages, params, index: next(
            text for question, text in replies.items() if question in messages[-1]["content"]
        )
        path = _project(
            tmp_path, items, task, server.url, "evaluate: {base: false, teacher: true, plot: false}"
        )
        code = main(["run", str(path)])
    err = capfd.readouterr().err
    assert code == 0, err
    rows = list(read_records(tmp_path / "outputs" / "scoring" / "01-evaluate" / "predictions-teacher.jsonl"))
    by_evaluate = {r.input["question"]: r.verdicts["correct"] for r in rows}

    assert {q: v.passed for q, v in by_critic.items()} == expected == by_discriminate
    # The same verdicts (the reasons quote each reading's own form of the answer).
    assert {q: (v.passed, v.score) for q, v in by_evaluate.items()} == {
        q: (v.passed, v.score) for q, v in by_critic.items()
    }
    metrics = json.loads((tmp_path / "outputs" / "scoring" / "manifest.json").read_text())["metrics"][
        "teacher"
    ]
    assert metrics["scoring"] == scoring and f"scored as {scoring}" in " ".join(err.split())
    assert metrics["correct"] == sum(expected.values())
    if task == {}:
        # Free text also gets ROUGE-L and embedding similarity to the reference.
        assert metrics["text_items"] == 3 and 0.3 < metrics["rouge_l"] < 1.0
        assert 0.5 < metrics["embedding_similarity"] <= 1.0
        assert "ROUGE-L" in err


@pytest.mark.parametrize(
    ("item", "task", "kind"),
    [
        ({"answer": "12"}, {}, "number"),
        ({"answer": "x", "choices": ["x", "y"]}, {}, "choice"),
        ({"answer": "x", "choices": {"A": "x", "B": "y"}}, {}, "choice"),
        ({"answer": "Entailment"}, {}, "label"),
        ({"answer": "yes"}, {}, "label"),
        ({"answer": "maybe"}, {"labels": ["maybe", "never"]}, "label"),
        ({"answer": "red wine"}, {}, "text"),
        ({**TRIPLE, "answer": "to pay"}, {}, "triple"),
        ({}, {}, "number"),  # no gold: numbers where they are numbers, text the plain way
        ({"answer": "12"}, {"type": "text"}, "text"),
    ],
)
def test_a_records_task_type_is_declared_or_inferred_from_its_input_and_gold(item, task, kind):
    record = Record.from_input({"question": "q", **item})
    assert Scorer(TaskConfig(**task)).type_of(record) == kind


def test_self_consistency_votes_letter_text_and_both_as_one_choice(tmp_path, make_ctx):
    record = sampled(
        "Where would you see pictures?",
        "desktop",
        [
            "Only a desktop shows them. So the answer is (a) desktop.",
            "The answer is a.",
            "The answer is Desktop.",
            "The answer is (c) shelf.",
        ],
    ).model_copy(update={"input": {"question": "Where?", "choices": ["desktop", "art show", "shelf"]}})
    ctx = make_ctx(tmp_path, stage="self_consistency", options="{}")
    out = list(self_consistency([record], ctx))
    assert [(r.answer, r.agreement) for r in out] == [("desktop", 0.75)] * 3


def test_palms_commonsenseqa_rationales_parse_to_the_gold_choice_and_vote_as_one(
    shared_data, tmp_path, make_ctx
):
    rows = [json.loads(line) for line in (shared_data / "cqa" / "train.jsonl").open(encoding="utf-8")]
    rows = [row for row in rows if row.get("palm_cot")]
    scorer = Scorer()
    records = [Record.from_input({k: row[k] for k in ("question", "choices", "answer")}) for row in rows]
    parsed = [parse_rationale(row["palm_cot"], row["choices"]) for row in rows]
    # "So the answer is (c) text." gives the choice's text (the rest say "either (a) x or (e) y", ...).
    named = sum(p["answer"] in row["choices"] for p, row in zip(parsed, rows, strict=True))
    assert named / len(rows) > 0.97
    assert not any(p["rationale"].lower().endswith(" so") for p in parsed)
    verdicts = [scorer.judge(p["answer"], r).passed for p, r in zip(parsed, records, strict=True)]
    share = sum(verdicts) / len(verdicts)
    print(f"PaLM's CommonsenseQA answers matching the gold: {share:.3f} of {len(verdicts)}")
    assert 0.72 < share < 0.85  # SOURCE.md: about 73% by PaLM's own letter; 0.770 measured here
    # evaluate's reading of the whole completion agrees with the critic's reading of the parsed answer.
    assert [
        scorer.judge(scorer.read(row["palm_cot"], r), r).passed for row, r in zip(rows, records, strict=True)
    ] == verdicts

    # Self-consistency counts "(c) text", "c" and "text" as one answer.
    problems = []
    for row in rows[:40]:
        letter = "abcde"[row["choices"].index(row["answer"])]
        other = next(c for c in row["choices"] if c != row["answer"])
        texts = [
            f"Because. So the answer is ({letter}) {row['answer']}.",
            f"The answer is {letter}.",
            f"The answer is {row['answer'].upper()}.",
            f"The answer is {other}.",
        ]
        problems.append(
            sampled(row["question"], row["answer"], texts).model_copy(
                update={"input": {k: row[k] for k in ("question", "choices", "answer")}}
            )
        )
    out = list(self_consistency(problems, make_ctx(tmp_path, stage="self_consistency", options="{}")))
    assert len(out) == 3 * len(problems)
    assert all(r.kept and r.agreement == 0.75 and r.answer == r.input["answer"] for r in out)


def test_palms_esnli_rationales_parse_to_the_gold_label_and_vote_as_one(shared_data, tmp_path, make_ctx):
    rows = [json.loads(line) for line in (shared_data / "esnli" / "valid.jsonl").open(encoding="utf-8")]
    records = [
        Record.from_input({"question": f"{r['premise']} / {r['hypothesis']}", "answer": r["label"]})
        for r in rows
    ]
    scorer = Scorer(TaskConfig(type="label", labels=["entailment", "neutral", "contradiction"]))
    assert parse_rationale("The to go packages are not necessarily from lunch.\nAnswer: neutral") == {
        "rationale": "The to go packages are not necessarily from lunch.",
        "answer": "neutral",
    }
    verdicts = [
        scorer.judge(scorer.read(row["palm_cot"], r), r).passed for row, r in zip(rows, records, strict=True)
    ]
    share = sum(verdicts) / len(verdicts)
    print(f"PaLM's e-SNLI labels matching the gold: {share:.3f} of {len(verdicts)}")
    assert 0.7 < share < 0.8  # 0.732 measured
    # The same without declaring the task: the gold label puts the record in the NLI set.
    assert [
        Scorer().judge(Scorer().read(row["palm_cot"], r), r).passed
        for row, r in zip(rows[:500], records, strict=False)
    ] == verdicts[:500]

    problems = [
        sampled(
            r.input["question"],
            r.gold,
            [
                f"One.\nAnswer: {r.gold}",
                f"Two.\nAnswer: {r.gold.title()}.",
                f"Three. The answer is: it is {r.gold}",
                "Four.\nAnswer: maybe",
            ],
        )
        for r in records[:30]
    ]
    out = list(self_consistency(problems, make_ctx(tmp_path, stage="self_consistency", options="{}")))
    assert len(out) == 3 * len(problems)
    assert all(r.kept and r.agreement == 0.75 and r.answer == r.gold for r in out)


BAD_DATA = [
    (
        "choices not a list",
        [{"question": "q1", "answer": "x", "choices": "x, y, z"}],
        {},
        ["data.fields.choices", "1 of 3 items", "'x, y, z'"],
    ),
    (
        "choices keyed by words",
        [{"question": "q1", "answer": "x", "choices": {"first": "x", "second": "y"}}],
        {},
        ["data.fields.choices", "1 of 3 items"],
    ),
    (
        "answers not among the choices",
        [
            {"question": "q1", "answer": "moon", "choices": ["sun", "star"]},
            {"question": "q2", "answer": "F", "choices": ["sun", "star"]},
        ],
        {},
        ["data.fields.answer", "2 of 4 items", "none of their choices", "'moon'"],
    ),
    (
        "a gold label outside the labels",
        [{"question": "q1", "answer": "maybe"}],
        {"type": "label", "labels": ["yes", "no"]},
        ["data.task.labels", "1 of 3 items", "'maybe'"],
    ),
    (
        "labels as YAML booleans",
        [],
        {"type": "label", "labels": [True, False]},
        ["data.task.labels", "quote"],
    ),
    ("labels of the wrong shape", [], {"type": "label", "labels": "yes/no"}, ["data.task.labels"]),
    (
        "synonyms of no label",
        [],
        {"labels": ["yes", "no"], "synonyms": {"true": ["yes"]}},
        ["data.task", "'true'"],
    ),
]


@pytest.mark.parametrize(("case", "rows", "task", "words"), BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_data_that_cannot_be_scored_is_one_line_and_exit_2_before_any_call(
    tmp_path, monkeypatch, capfd, case, rows, task, words
):
    monkeypatch.chdir(tmp_path)
    good = [{"question": "q8", "answer": "yes"}, {"question": "q9", "answer": "no"}]
    with ScriptedServer() as server:
        path = _project(tmp_path, [*rows, *good], task, server.url, "generate: {n: 1}", test=0)
        for command in ("validate", "run"):
            capfd.readouterr()
            code = main([command, str(path)])
            out, err = capfd.readouterr()
            lines = err.strip().splitlines()
            assert (code, out, len(lines)) == (2, "", 1), err
            assert lines[0].startswith("synthdistill: error: ")
            assert all(word in lines[0] for word in ["scoring.yaml", *words]), lines[0]
        assert server.stats.requests == 0
    assert not (tmp_path / "outputs" / "scoring").exists()


def _project(
    tmp_path: Path,
    items: list[dict[str, Any]],
    task: dict[str, Any],
    url: str,
    stage: str,
    test: int | None = None,
) -> Path:
    """A pipeline file whose test split is `items` (or, with test=0, whose train split is)."""
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"question": "A training item?", "answer": "yes"}) + "\n"
    )
    n = len(items) if test is None else test
    data: dict[str, Any] = (
        {"source": "train.jsonl", "test_source": "items.jsonl", "split": {"train": 1, "test": n}}
        if n
        else {"source": "items.jsonl", "split": {"train": len(items), "test": 0}}
    )
    pipeline = {
        "name": "scoring",
        "seed": 0,
        "teacher": {"backend": "openai", "model": "scripted", "api_base": url, "max_retries": 0},
        "data": {**data, "task": task},
        "stages": [yaml.safe_load(stage)],
    }
    path = tmp_path / "scoring.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return path


def _stage_context(
    tmp_path: Path, items: list[dict[str, Any]], task: dict[str, Any], stage: str
) -> StageContext:
    """A real context for `stage` of a pipeline on `items` with `task`, in its own folder."""
    folder = tmp_path / "critic"
    folder.mkdir()
    pipeline = load_pipeline(_project(folder, items, task, "http://127.0.0.1:9/v1", stage))
    run = RunContext(
        pipeline=pipeline,
        run=RunFolder(folder / "outputs" / "scoring"),
        templates=Templates.for_pipeline(pipeline.base_dir),
        test_records=[],
        device="cpu",
    )
    spec = pipeline.stages[0]
    return StageContext(run, spec, run.run.stage_dir(spec.folder))
