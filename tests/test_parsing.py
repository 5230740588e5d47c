"""Answer extraction and normalisation: one reading of answers for critics, voting and evaluation."""

import pytest

from synthdistill.parsing import (
    answers_match,
    choice_letter,
    extract_answer,
    fold,
    label_of,
    normalize_answer,
    parse_rationale,
)
from synthdistill.teachers.engine import ParseError


@pytest.mark.parametrize(
    ("text", "rationale", "answer"),
    [
        ("Tom has 5 + 3 = 8 apples.\nThe answer is 8.", "Tom has 5 + 3 = 8 apples.", "8"),
        ("So it costs $1,250.00 in all. The answer is $1,250.00.", "So it costs $1,250.00 in all.", "1250"),
        ("12 - 5 = 7\nAnswer: 7 apples", "12 - 5 = 7", "7"),
        ("First the answer is 3. Wait, no.\nThe final answer is 4", "First the answer is 3. Wait, no.", "4"),
        ("Half of 3 is 1.5\n#### 1.50", "Half of 3 is 1.5", "1.5"),
        ("The answer is Paris.", "", "paris"),
        ("Only a garden fits. So the answer is (e) house.", "Only a garden fits.", "(e) house"),
        ("6 + 6 = 12. Therefore, the answer is 12.", "6 + 6 = 12.", "12"),
        ("Thus\nthe answer is 3", "", "3"),
    ],
)
def test_parse_rationale_splits_rationale_and_normalised_answer(text, rationale, answer):
    assert parse_rationale(text) == {"rationale": rationale, "answer": answer}


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Only a house fits. So the answer is (e) house.", "house"),
        ("So the answer is E.", "house"),
        ("The answer is HOUSE!", "house"),
        ("The answer is (f) moon.", "(f) moon"),  # names no choice: kept as written
        ("So the answer is (b) number 1.", "number 1"),  # a lettered choice is not the number 1
    ],
)
def test_parse_rationale_with_choices_gives_the_choice_text(text, answer):
    choices = ["garden", "number 1", "park", "shed", "house"]
    parsed = parse_rationale(text, choices)
    assert parsed["answer"] == answer and not parsed["rationale"].endswith("So")


def test_an_nli_answer_line_gives_the_label():
    text = "The to go packages are not necessarily from lunch.\nAnswer: neutral"
    assert parse_rationale(text) == {
        "rationale": "The to go packages are not necessarily from lunch.",
        "answer": "neutral",
    }


def test_parse_rationale_leaves_no_connective_stub_on_palms_commonsenseqa_rationales(shared_data):
    import json

    rows = [json.loads(line) for line in (shared_data / "cqa" / "train.jsonl").open(encoding="utf-8")]
    rationales = [row["palm_cot"] for row in rows if row.get("palm_cot")]
    assert len(rationales) >= 4000
    parsed = [parse_rationale(text)["rationale"] for text in rationales]
    stubs = [
        r
        for r in parsed
        if r.split()[-1:] and r.split()[-1].lower().strip(",") in {"so", "therefore", "thus"}
    ]
    assert stubs == []
    # Every rationale still ends with the sentence before "So the answer is ...".
    assert all(text.startswith(r) for text, r in zip(rationales, parsed, strict=True))
    assert sum(r.endswith(".") for r in parsed) / len(parsed) > 0.99


def test_parse_rationale_without_an_answer_line_raises():
    with pytest.raises(ParseError, match="no final answer"):
        parse_rationale("Tom has 5 apples and buys 3 more, so")


def test_extract_answer_falls_back_to_the_last_number():
    assert extract_answer("5 + 3 gives 8 apples") == "8"
    assert extract_answer("no numbers here") is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("1,000", "1000", True),
        ("$5", "5.00", True),
        ("7 apples", "7", True),
        ("-0.50", "-.5", True),
        ("8", "9", False),
        ("12", "1.2", False),
        ("Paris", "paris.", True),
        (None, "3", False),
    ],
)
def test_answers_match_normalises_numbers_units_and_case(a, b, same):
    assert answers_match(a, b) is same


def test_normalize_keeps_multi_number_text_as_text():
    assert normalize_answer("3 cats and 2 dogs") == "3 cats and 2 dogs"


@pytest.mark.parametrize(
    ("value", "letter"),
    [
        ("B", "B"),
        ("(b)", "B"),
        ("Option C", "C"),
        ("paris", "B"),
        ("B) Paris", "B"),
        ("Berlin", None),
        ("D", None),
    ],
)
def test_choice_letter_reads_a_letter_or_the_choice_text(value, letter):
    assert choice_letter(value, ["London", "Paris", "Rome"]) == letter


@pytest.mark.parametrize(
    ("value", "letter"),
    [
        ("(b) Paris", "B"),
        ("(a) Paris", "B"),  # the text decides where letter and text disagree
        ("(c) Berlin", "C"),  # a text that names no choice leaves the letter
        ("the Paris one, surely", "B"),
        ("either (a) London or (b) Paris", None),
        ("London or Paris", None),
    ],
)
def test_choice_letter_reads_letter_and_text_together_and_refuses_two(value, letter):
    assert choice_letter(value, ["London", "Paris", "Rome"]) == letter


def test_fold_drops_case_punctuation_and_articles_but_not_a_numbers_point():
    assert fold("The Eiffel-Tower!", articles=True) == "eiffel tower"
    assert fold("Costs 3.5, then 1,000.") == "costs 3.5 then 1,000"


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("Neutral.", "neutral"),
        ("it is neutral", "neutral"),
        ("entailment, since both say so", "entailment"),
        ("True", "yes"),
        ("neutral or entailment", None),
        ("yes, because no one came", "yes"),
        ("unsure", None),
    ],
)
def test_label_of_reads_a_label_or_a_synonym(value, label):
    vocabulary = {"entailment": "entailment", "neutral": "neutral", "yes": "yes", "true": "yes"}
    assert label_of(value, vocabulary) == label
