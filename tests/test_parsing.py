"""Answer extraction and normalisation: one reading of answers for critics, voting and evaluation."""

import pytest

from synthdistill.parsing import (
    answers_match,
    choice_letter,
    extract_answer,
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
