"""The student's prompts and completions: prefixes, the gold-answer fallback, question normalisation."""

from __future__ import annotations

import json
from pathlib import Path

from synthdistill.records import Record
from synthdistill.student.prompts import TaskCue, label_text, normalize_question, prompt_messages, target_text
from synthdistill.templates import Templates

REPO = Path(__file__).resolve().parents[1]


def templates() -> Templates:
    return Templates([REPO / "prompts"])


def test_a_task_cue_wraps_the_last_user_message_only():
    record = Record.from_input({"question": "What is 2 + 3?", "answer": "5"})
    plain = prompt_messages(templates(), "cot_student.j2", record)
    cued = prompt_messages(templates(), "cot_student.j2", record, TaskCue("[label] ", "\n\nAnswer only."))
    assert len(plain) == len(cued) == 1
    assert cued[0]["content"] == "[label] " + plain[0]["content"] + "\n\nAnswer only."
    assert "What is 2 + 3?" in plain[0]["content"]


def test_step_by_step_asks_each_task_by_an_instruction_at_the_end_of_the_prompt():
    from synthdistill.stages.train.stage import StepByStepConfig

    record = Record.from_input({"question": "What is 2 + 3?", "answer": "5"})
    config = StepByStepConfig()
    prompts = {
        task: prompt_messages(templates(), "cot_student.j2", record, config.cue(task))[-1]["content"]
        for task in ("label", "rationale")
    }
    assert prompts["label"].endswith("What is 2 + 3?\n\nGive the answer only.")
    assert prompts["rationale"].endswith("What is 2 + 3?\n\nGive the steps only.")
    # The paper's tags at the start stay available.
    tagged = StepByStepConfig(label_prefix="[label] ", label_suffix="").cue("label")
    assert tagged == TaskCue("[label] ", "")


def test_target_is_rationale_then_answer_sentence():
    record = Record.from_input({"question": "q", "answer": "5"}).model_copy(
        update={"rationale": "  2 + 3 = 5.  ", "answer": "5"}
    )
    assert target_text(record) == "2 + 3 = 5.\nThe answer is 5."
    assert label_text(record) == "The answer is 5."


def test_raw_data_item_learns_its_gold_answer_alone():
    record = Record.from_input({"question": "q", "answer": "12"})
    assert target_text(record) == label_text(record) == "The answer is 12."


def test_normalize_question_ignores_case_spacing_and_final_punctuation():
    assert normalize_question("  What is  2 + 3?\n") == normalize_question("what is 2 + 3") == "what is 2 + 3"
    assert normalize_question("What is 2 + 4?") != normalize_question("What is 2 + 3?")


def test_a_step_by_step_students_card_gives_the_cue_of_the_task_it_is_asked(tmp_path):
    from synthdistill.student.card import CARD_DATA, task_cue

    sbs = {
        "label_prefix": "",
        "label_suffix": " Answer.",
        "rationale_prefix": "",
        "rationale_suffix": " Steps.",
    }
    (tmp_path / CARD_DATA).write_text(json.dumps({"training": {"step_by_step": sbs}}), encoding="utf-8")
    assert task_cue(tmp_path) == TaskCue("", " Answer.")
    assert task_cue(tmp_path, "rationale") == TaskCue("", " Steps.")
    # A card written before the suffixes (tags at the start) keeps its prefixes.
    old = tmp_path / "old"
    old.mkdir()
    card = {"training": {"step_by_step": {"label_prefix": "[label] ", "rationale_prefix": "[rationale] "}}}
    (old / CARD_DATA).write_text(json.dumps(card), encoding="utf-8")
    assert task_cue(old, "rationale") == TaskCue("[rationale] ", "")
    # A student trained on one task, or a model with no card, takes no cue.
    assert task_cue(tmp_path / "elsewhere", "rationale") == TaskCue()
