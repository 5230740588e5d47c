"""growth.py: reading a teacher's new instruction, lineage, degeneracy and the diversity filter."""

from __future__ import annotations

import pytest

from synthdistill.growth.instructions import Novelty, degenerate_reason, grown, parse_instruction, seed_of
from synthdistill.records import Record
from synthdistill.teachers.engine import ParseError


def test_a_new_problem_with_its_expression_gets_the_evaluated_gold_not_the_teachers_sum():
    fields = parse_instruction(
        "New problem: Tom has 12 apples and buys 3 bags of 4 apples. How many now?\n"
        "Expression: 12 + 3 * 4 = 25\nAnswer: 25"
    )
    assert fields == {
        "question": "Tom has 12 apples and buys 3 bags of 4 apples. How many now?",
        "expression": "12 + 3 * 4",
        "answer": "24",
    }


@pytest.mark.parametrize(
    ("reply", "question"),
    [
        ('"Write a poem about the sea in four lines."', "Write a poem about the sea in four lines."),
        ("#Rewritten Prompt#:\nList five rivers,\nlongest first.", "List five rivers, longest first."),
        ("**New prompt:** Name two planets with rings.", "Name two planets with rings."),
    ],
)  # fmt: skip
def test_the_instruction_is_read_past_labels_quotes_and_line_breaks(reply, question):
    assert parse_instruction(reply)["question"] == question


def test_an_expression_that_is_not_arithmetic_is_a_parse_error_and_never_run():
    with pytest.raises(ParseError, match="only numbers"):
        parse_instruction("Problem: Ann has 3 apples.\nExpression: __import__('os').system('true')")
    with pytest.raises(ParseError, match="no instruction"):
        parse_instruction("New prompt:   ")


def test_degenerate_instructions_are_named_and_good_ones_pass():
    assert (
        degenerate_reason("the given prompt but longer")
        == "copies words of the prompt (given/rewritten prompt)"
    )
    assert degenerate_reason("Make #Created Prompt# harder") is not None
    assert degenerate_reason("what is it") == "only stop words and punctuation"
    assert degenerate_reason("Add two") == "fewer than 3 words"
    assert degenerate_reason("Add two numbers, now!", "add two numbers now") == (
        "the same as the instruction it came from"
    )
    assert degenerate_reason("Add two large numbers now", "add two numbers now") is None


def test_a_grown_record_links_to_its_seed():
    seed = Record.from_input({"question": "Add 2 and 3", "answer": "5"})
    child = grown(seed, {"question": "Add 20 and 30", "answer": "50"}, "hard", 1)
    assert child.parent_id == seed.id
    assert seed_of(child) == {"id": seed.id, "question": "Add 2 and 3", "operator": "hard", "round": 1}
    assert seed_of(seed) is None
    assert child.id != grown(seed, {"question": "Add 20 and 30", "answer": "50"}, "easy", 1).id


def test_the_diversity_filter_drops_near_copies_of_the_pool_and_of_each_other():
    pool = [Record.from_input({"question": q}) for q in ("Give three tips for a job interview.",)]
    new = [
        Record.from_input({"question": q})
        for q in (
            "Give three tips for a job interview at a bank.",  # ROUGE-L 0.93 with the pool
            "List three ways to save water at home during a drought.",
            "List three ways to save water at home in a drought.",  # a near copy of the one before
            "Explain how tides work on a planet with two moons.",
        )
    ]
    novelty = Novelty(rouge_l=0.7, embedding=None)
    novelty.remember(pool)
    reasons = novelty.check(new)
    assert reasons[0] is not None and "ROUGE-L" in reasons[0] and pool[0].id in reasons[0]
    assert reasons[1] is None and reasons[3] is None
    assert reasons[2] is not None and new[1].id in reasons[2]


def test_the_embedding_check_catches_a_rephrasing_that_rouge_lets_through():
    pool = [Record.from_input({"question": "How do I bake a loaf of bread at home?"})]
    new = [
        Record.from_input({"question": "What are the steps for baking a loaf of bread in my own kitchen?"}),
        Record.from_input({"question": "Name three rivers that flow through Germany."}),
    ]
    assert Novelty(rouge_l=0.7, embedding=None).check(new) == [None, None]
    novelty = Novelty(rouge_l=0.7, embedding=0.75)
    novelty.remember(pool)
    reasons = novelty.check(new)
    assert reasons[0] is not None and "cosine" in reasons[0]
    assert reasons[1] is None
