"""The answer line a multiple-choice student learns: train's `answer_format` (text, letter or letter_text).

Each form is what `label_text`/`target_text` write and the examples builder trains on (the step-by-step
label task too), each student template asks for it, and evaluate's scorer reads every form back as the
same choice; records of other tasks ignore the option, and leaving it unset keeps today's fingerprints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.errors import ConfigError
from synthdistill.records import Record, Sample
from synthdistill.registry import registry
from synthdistill.runs.folder import read_records
from synthdistill.runs.steps import fingerprint_parts
from synthdistill.scoring.scorer import Scorer
from synthdistill.scoring.task import TaskConfig
from synthdistill.stages.evaluate.accuracy import grade
from synthdistill.stages.train.examples import build_examples
from synthdistill.stages.train.stage import TrainConfig
from synthdistill.student.card import CARD_DATA
from synthdistill.student.prompts import label_text, target_text
from synthdistill.templates import Templates

REPO = Path(__file__).resolve().parents[1]
CHOICES = ["pond", "garden", "house", "forest", "river bank"]
LINES = {
    "text": "The answer is house.",
    "letter": "The answer is (c).",
    "letter_text": "The answer is (c) house.",
}
TEMPLATES = {
    "text": "cqa_student.j2",
    "letter": "cqa_student_letter.j2",
    "letter_text": "cqa_student_letter_text.j2",
}


def choice_record(choices: Any = CHOICES, gold: str = "house", answer: str | None = "house") -> Record:
    """A multiple-choice record as the filter hands it on: a rationale and the parsed answer (or none)."""
    record = Record.from_input({"question": "Where does a family live?", "choices": choices, "answer": gold})
    if answer is None:
        return record
    return record.model_copy(update={"rationale": "A family lives in a home.", "answer": answer})


@pytest.mark.parametrize("answer_format", list(LINES))
def test_each_format_writes_the_choice_its_way_in_the_answer_line(answer_format):
    record = choice_record()
    assert label_text(record, answer_format) == LINES[answer_format]
    assert target_text(record, answer_format) == f"A family lives in a home.\n{LINES[answer_format]}"
    # A raw data item learns its gold answer, given by letter or text, in the same form.
    for gold in ("house", "C", "(c) house"):
        line = label_text(choice_record(gold=gold, answer=None), answer_format)
        assert line == (LINES[answer_format] if answer_format != "text" else f"The answer is {gold}.")
    # A {letter: text} map names its choices by its own letters, written in lower case as prompts show them.
    mapped = choice_record(choices=dict(zip("ABCDE", CHOICES, strict=True)))
    assert label_text(mapped, answer_format) == LINES[answer_format]


def test_text_is_the_default_and_leaves_the_answer_as_it_was():
    record = choice_record(answer="House")
    assert label_text(record) == label_text(record, "text") == "The answer is House."
    assert TrainConfig().answer_format == "text"


@pytest.mark.parametrize("answer_format", ["letter", "letter_text"])
def test_records_of_other_tasks_and_answers_naming_no_choice_ignore_the_format(answer_format):
    number = Record.from_input({"question": "What is 2 + 3?", "answer": "5"})
    number = number.model_copy(update={"rationale": "2 + 3 = 5.", "answer": "5"})
    assert target_text(number, answer_format) == "2 + 3 = 5.\nThe answer is 5."
    nli = Record.from_input({"question": "P / H", "answer": "neutral"})
    assert label_text(nli, answer_format) == "The answer is neutral."
    assert label_text(choice_record(answer="a tent"), answer_format) == "The answer is a tent."
    # A task declared as another type is not multiple choice, whatever its input holds.
    assert label_text(choice_record(), answer_format, TaskConfig(type="text")) == "The answer is house."


@pytest.mark.parametrize("answer_format", list(LINES))
def test_the_examples_builder_trains_each_format_on_its_template_step_by_step_label_too(
    answer_format, tmp_path, make_ctx
):
    options = json.dumps({"template": TEMPLATES[answer_format], "answer_format": answer_format})
    ctx = make_ctx(tmp_path / "plain", stage="train", options=options)
    (choice,) = build_examples([choice_record()], ctx.config, ctx)
    assert choice["completion"] == [
        {"role": "assistant", "content": f"A family lives in a home.\n{LINES[answer_format]}"}
    ]
    prompt = choice["prompt"][-1]["content"]
    assert "Answer Choices: (a) pond (b) garden (c) house (d) forest (e) river bank" in prompt

    arithmetic = json.dumps({"answer_format": answer_format})
    ctx = make_ctx(tmp_path / "arith", stage="train", options=arithmetic)
    (number,) = build_examples(
        [Record.from_input({"question": "What is 2 + 3?", "answer": "5"})], ctx.config, ctx
    )
    assert number["completion"][0]["content"] == "The answer is 5."

    label_only = json.dumps({"template": TEMPLATES[answer_format], "answer_format": answer_format,
                             "target": "label"})  # fmt: skip
    ctx = make_ctx(tmp_path / "label", stage="train", options=label_only)
    (label,) = build_examples([choice_record()], ctx.config, ctx)
    assert label["completion"][0]["content"] == LINES[answer_format]

    sbs = json.dumps({"template": TEMPLATES[answer_format], "answer_format": answer_format,
                      "step_by_step": {}})  # fmt: skip
    ctx = make_ctx(tmp_path / "sbs", stage="train", options=sbs)
    by_task = {example["task"]: example for example in build_examples([choice_record()], ctx.config, ctx)}
    assert by_task[0]["completion"][0]["content"] == LINES[answer_format]
    assert by_task[0]["prompt"][-1]["content"].endswith("Give the answer only.")
    assert by_task[1]["completion"][0]["content"] == "A family lives in a home."


@pytest.mark.parametrize("task", [TaskConfig(), TaskConfig(type="choice")], ids=["inferred", "declared"])
def test_evaluate_reads_every_form_back_as_the_same_choice(task):
    scorer = Scorer(task)
    for choices in (CHOICES, dict(zip("ABCDE", CHOICES, strict=True))):
        for gold in ("house", "C"):
            record = choice_record(choices=choices, gold=gold, answer=None)
            for answer_format in LINES:
                # What the student learnt to write, as it writes it, and with a rationale before it.
                for completion in (
                    label_text(choice_record(choices), answer_format, task),
                    target_text(choice_record(choices), answer_format, task),
                ):
                    graded = grade(record, [Sample(text=completion)], scorer)
                    assert graded.verdicts["correct"].passed, (completion, graded.verdicts["correct"])
                    assert graded.answer == "house"
            for wrong in ("The answer is (d).", "The answer is (d) forest.", "The answer is forest."):
                assert not grade(record, [Sample(text=wrong)], scorer).verdicts["correct"].passed
            # The text decides where letter and text disagree, as the scorer documents.
            assert grade(record, [Sample(text="The answer is (d) house.")], scorer).verdicts["correct"].passed


def test_each_student_template_asks_for_its_form_over_the_same_lettered_choices():
    templates = Templates([REPO / "prompts"])
    variables = {"question": "Where does a family live?", "choices": CHOICES}
    rendered = {form: templates.render_messages(name, variables) for form, name in TEMPLATES.items()}
    asks = {
        "text": "followed by the text of that choice.",
        "letter": "followed by the letter of that choice in brackets.",
        "letter_text": "followed by the letter of that choice in brackets and its text.",
    }
    for form, messages in rendered.items():
        assert len(messages) == 1 and messages[0]["role"] == "user"
        instruction, *rest = messages[0]["content"].split("\n")
        assert instruction.endswith(asks[form]), form
        assert rest == rendered["text"][0]["content"].split("\n")[1:], form


def test_leaving_the_format_unset_or_text_keeps_the_train_stages_fingerprint(tmp_path, make_ctx):
    digests = {}
    for name, options in (
        ("unset", "{}"),
        ("text", "{answer_format: text}"),
        ("letter", "{answer_format: letter}"),
    ):
        ctx = make_ctx(tmp_path / name, stage="train", options=options)
        stage = registry("stage").get("train")
        digests[name], _ = fingerprint_parts(stage, ctx.spec, "upstream", ctx.run)
    assert digests["unset"] == digests["text"] != digests["letter"]
    assert "answer_format" not in TrainConfig().model_dump(mode="json")
    assert TrainConfig(answer_format="letter").model_dump(mode="json")["answer_format"] == "letter"


def test_a_bad_format_is_one_config_line_naming_the_key_and_the_valid_forms(tmp_path, capfd):
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\ndata: {source: builtin:arith, split: {train: 4, test: 2}}\n"
        "stages:\n  - train: {answer_format: number}\n"
    )
    with pytest.raises(ConfigError, match=r"stages\[0\]\.train\.answer_format"):
        load_pipeline(path)
    code = main(["validate", str(path)])
    out, err = capfd.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "answer_format" in err and all(form in err for form in ("'text'", "'letter'", "'letter_text'"))


@pytest.mark.slow
def test_a_letter_student_trains_on_palms_rationales_and_evaluate_scores_its_letters(
    shared_data, tmp_path, monkeypatch, capfd
):
    monkeypatch.chdir(tmp_path)
    pipeline = {
        "name": "letters",
        "seed": 0,
        "student": {"model": "smollm2-135m"},
        "data": {
            "source": str(shared_data / "cqa" / "train.jsonl"),
            "fields": {
                "question": "question",
                "choices": "choices",
                "answer": "answer",
                "palm_cot": "palm_cot",
            },
            "task": {"type": "choice"},
            "split": {"train": 400, "test": 4},
        },
        "stages": [
            {"generate": {"recorded": {"field": "palm_cot", "model": "PaLM-540B"}}},
            {"self_consistency": {"keep": "all"}},
            {"filter": {"critics": ["answer_match", "choice_consistency"]}},
            {
                "train": {
                    "template": "cqa_student_letter.j2",
                    "answer_format": "letter",
                    "max_examples": 8,
                    "max_steps": 1,
                    "batch_size": 4,
                }
            },
            {"evaluate": {"template": "cqa_student_letter.j2", "max_tokens": 32, "plot": False}},
        ],
    }
    path = tmp_path / "letters.yaml"
    path.write_text(json.dumps(pipeline))
    code = main(["run", str(path), "--limit", "12"])
    _, err = capfd.readouterr()
    assert code == 0, err
    run = Path("outputs/letters")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["metrics"]["student"]["scoring"] == "choice"
    facts = json.loads(next(run.glob(f"*-train/model/{CARD_DATA}")).read_text())
    assert facts["training"]["answer_format"] == "letter"
    predictions = list(read_records(next(run.glob("*-evaluate/predictions-student.jsonl"))))
    assert len(predictions) == 4 and all("correct" in row.verdicts for row in predictions)
    assert manifest["metrics"]["student"]["correct"] == sum(
        row.verdicts["correct"].passed for row in predictions
    )
