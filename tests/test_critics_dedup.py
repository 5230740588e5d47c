"""exact_dup and near_dup on real text, with the real embedder, and the fast ROUGE-L against rouge_score."""

from __future__ import annotations

import random

import pytest
from critic_helpers import record

from synthdistill.critics import build_critic
from synthdistill.critics.rouge import RougeIndex, lcs_length, rouge_l, tokenize
from synthdistill.records import Record

QUESTIONS = [
    "Liam has 7 marbles. He finds 5 more. How many marbles does Liam have now?",
    "A baker made 24 rolls and sold 9 of them. How many rolls are left?",
    "Each box holds 6 pens. How many pens are in 4 boxes?",
    "Write a short poem about the sea at night.",
]


def test_exact_dup_drops_repeats_ignoring_case_and_spacing_across_batches():
    critic = build_critic({"exact_dup": {"field": "input.question"}})
    first = critic.score([record(QUESTIONS[0]), record(QUESTIONS[1]), record(QUESTIONS[0].upper())])
    second = critic.score([record("  " + QUESTIONS[1].replace(" ", "  ")), record(QUESTIONS[2])])
    assert [v.passed for v in first + second] == [True, True, False, False, True]
    assert first[2].reason.startswith("repeats record ")


@pytest.mark.parametrize("block_size", [8192, 1])
def test_near_dup_by_embedding_drops_paraphrases_and_keeps_distinct_items(block_size):
    critic = build_critic(
        {"near_dup": {"field": "input.question", "threshold": 0.85, "block_size": block_size}}
    )
    paraphrase = "Liam has 7 marbles and then finds 5 more. How many marbles does Liam have now?"
    verdicts = critic.score([record(q) for q in QUESTIONS])
    verdicts += critic.score([record(paraphrase), record("Name three planets of the solar system.")])
    assert [v.passed for v in verdicts] == [True, True, True, True, False, True]
    assert "near-duplicate of record" in verdicts[4].reason and verdicts[4].score > 0.85


def test_near_dup_by_embedding_compares_within_a_batch_only_with_what_it_kept():
    # The second text duplicates the first and is dropped; the third duplicates only the dropped one
    # loosely, yet it is compared with the kept first text, never with the dropped second.
    critic = build_critic({"near_dup": {"field": "input.question", "threshold": 0.9}})
    texts = [QUESTIONS[1], QUESTIONS[1] + " ", QUESTIONS[2]]
    assert [v.passed for v in critic.score([record(t) for t in texts])] == [True, False, True]


def test_near_dup_by_rouge_l_follows_self_instructs_cut():
    critic = build_critic({"near_dup": {"method": "rouge_l", "field": "input.question"}})
    close = "A baker made 24 rolls and sold 9 of them. How many rolls does the baker have left?"
    verdicts = critic.score([record(q) for q in [*QUESTIONS, close]])
    assert [v.passed for v in verdicts] == [True, True, True, True, False]
    reference = rouge_score_f1(close, QUESTIONS[1])
    assert reference > 0.7
    assert verdicts[4].score == pytest.approx(reference, abs=1e-4)


def test_near_dup_against_the_test_split_drops_leaked_items(tmp_path, make_ctx):
    test_items = [Record.from_input({"question": QUESTIONS[2], "answer": "24"})]
    ctx = make_ctx(tmp_path, test_records=test_items)
    for method in ("embedding", "rouge_l"):
        critic = build_critic(
            {"near_dup": {"method": method, "field": "input.question", "against_test": True}}, ctx
        )
        verdicts = critic.score([record(QUESTIONS[0]), record(QUESTIONS[2]), record(QUESTIONS[3])])
        assert [v.passed for v in verdicts] == [True, False, True], method
        assert f"test item {test_items[0].id}" in verdicts[1].reason
    exact = build_critic({"exact_dup": {"field": "input.question", "against_test": True}}, ctx)
    assert [v.passed for v in exact.score([record(QUESTIONS[2]), record(QUESTIONS[0])])] == [False, True]


def rouge_score_f1(a: str, b: str) -> float:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(a, b)["rougeL"].fmeasure


def test_fast_rouge_l_equals_rouge_score_on_random_texts():
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "sat",
        "on",
        "mat",
        "1",
        "2",
        "3",
        "apples",
        "has",
        "gives",
        "total,",
        "of.",
        "Tom",
    ]
    rng = random.Random(0)
    for _ in range(300):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        b = " ".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        assert rouge_l(tokenize(a), tokenize(b)) == pytest.approx(rouge_score_f1(a, b), abs=1e-12)
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4


def test_rouge_index_finds_exactly_the_pairs_a_pairwise_loop_finds():
    rng = random.Random(1)
    vocabulary = [f"w{i}" for i in range(30)]
    base = [[rng.choice(vocabulary) for _ in range(rng.randint(5, 25))] for _ in range(40)]
    texts = []
    for tokens in base:
        texts.append(tokens)
        edited = list(tokens)
        edited[rng.randrange(len(edited))] = rng.choice(vocabulary)
        texts.append(edited)
    index, kept = RougeIndex(), []
    for tokens in texts:
        naive = max((rouge_l(tokens, other) for other in kept), default=0.0)
        found = index.best_above(tokens, 0.7)
        assert (found is not None) == (naive > 0.7)
        if found is None:
            index.add(tokens)
            kept.append(tokens)
