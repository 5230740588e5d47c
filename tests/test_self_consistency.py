"""self_consistency on crafted samples: normalised voting, agreement, targets, and STaR's rationalisation."""

from __future__ import annotations

from critic_helpers import sampled

from synthdistill.stages.self_consistency import run
from synthdistill.testing.scripted_server import ScriptedServer


def vote(make_ctx, tmp_path, records, options="{}", url="http://127.0.0.1:9/v1"):
    ctx = make_ctx(tmp_path, url, stage="self_consistency", options=options)
    return list(run(records, ctx)), ctx


def test_majority_vote_normalises_answers_and_records_the_agreement(tmp_path, make_ctx):
    problem = sampled(
        "What is 999 + 1?",
        "1000",
        [
            "999 + 1 = 1000. The answer is 1,000.",
            "Adding one gives 1000. The answer is 1000.",
            "It costs $1000.00 in all. The answer is $1000.00",
            "I guess 990. The answer is 990.",
            "no answer line here",
        ],
    )
    out, ctx = vote(make_ctx, tmp_path, [problem])
    assert [r.answer for r in out] == ["1000", "1000", "1000"]
    assert all(r.agreement == 0.6 and r.parent_id == problem.id and r.kept for r in out)
    assert [r.rationale for r in out] == [
        "999 + 1 = 1000.",
        "Adding one gives 1000.",
        "It costs $1000.00 in all.",
    ]
    assert ctx.details["mean_majority_share"] == 0.6


def test_keep_all_hands_on_disagreeing_rationales_with_their_own_agreement(tmp_path, make_ctx):
    problem = sampled("q", "8", ["5+3=8. The answer is 8.", "So 8. The answer is 8", "9! The answer is 9."])
    out, _ = vote(make_ctx, tmp_path, [problem], "{keep: all}")
    assert sorted((r.answer, r.agreement) for r in out) == [("8", 0.6667), ("8", 0.6667), ("9", 0.3333)]


def test_min_agreement_drops_a_split_vote_and_keeps_the_share(tmp_path, make_ctx):
    split = sampled(
        "q1", None, ["The answer is 1.", "The answer is 2.", "The answer is 3.", "The answer is 1."]
    )
    clear = sampled(
        "q2", None, ["The answer is 4.", "The answer is 4.", "The answer is 4.", "The answer is 5."]
    )
    out, _ = vote(make_ctx, tmp_path, [split, clear], "{min_agreement: 0.6}")
    dropped = [r for r in out if not r.kept]
    assert len(dropped) == 1 and dropped[0].id == split.id and dropped[0].agreement == 0.5
    assert dropped[0].dropped_by == "self_consistency"
    assert "majority share 0.50 < 0.6" in dropped[0].verdicts["self_consistency"].reason
    assert [(r.answer, r.agreement) for r in out if r.kept] == [("4", 0.75)]


def test_gold_target_keeps_the_minority_that_reaches_the_gold_answer(tmp_path, make_ctx):
    problem = sampled(
        "q", "7", ["The answer is 6.", "The answer is 6.", "3 + 4 = 7. The answer is 7 apples."]
    )
    out, _ = vote(make_ctx, tmp_path, [problem], "{target: gold}")
    assert [(r.answer, r.agreement, r.kept) for r in out] == [("7", 0.3333, True)]
    majority, _ = vote(make_ctx, tmp_path / "m", [problem], "{target: majority}")
    assert [r.answer for r in majority] == ["6"]
    missed = sampled("q2", "10", ["The answer is 6.", "The answer is 6."])
    out, _ = vote(make_ctx, tmp_path / "g", [missed], "{target: gold}")
    assert (
        not out[0].kept
        and "no sample agrees with the gold answer 10" in out[0].verdicts["self_consistency"].reason
    )


def hinted_teacher(messages, params, index):
    """Answers hinted requests: coherent for the marbles, incoherent or leaking for the others."""
    prompt = messages[-1]["content"]
    if "marbles" in prompt:
        return "Liam had 7 marbles and found 5 more, so 7 + 5 = 12.\nThe answer is 12."
    if "rolls" in prompt:
        return "We are told the answer, so it is 15.\nThe answer is 15."
    return "The numbers give 4 * 6 = 30, so 24.\nThe answer is 24."


def test_rationalisation_samples_with_the_hint_checks_the_rationale_and_marks_provenance(tmp_path, make_ctx):
    solved = sampled("Tom has 2 and gets 2 more. How many?", "4", ["2 + 2 = 4. The answer is 4."])
    unsolved = [
        sampled("Liam has 7 marbles and finds 5 more. How many?", "12", ["The answer is 11."]),
        sampled("A baker had 24 rolls and sold 9. How many are left?", "15", ["The answer is 14."]),
        sampled("Each box holds 6 pens. How many pens are in 4 boxes?", "24", ["no answer"]),
    ]
    options = "{target: gold, rationalize: true, rationalize_n: 1}"
    with ScriptedServer(responder=hinted_teacher) as server:
        out, ctx = vote(make_ctx, tmp_path, [solved, *unsolved], options, server.url)
        bodies = [b["messages"][-1]["content"] for b in server.stats.bodies]
    assert len(bodies) == 3 and all("(The correct answer is" in b for b in bodies)
    assert any("marbles and finds 5 more. How many? (The correct answer is 12.)" in b for b in bodies)
    by_parent = {r.parent_id or r.id: r for r in out}
    plain = by_parent[solved.id]
    assert plain.kept and not any(p.params.get("rationalized") for p in plain.provenance)
    marbles = by_parent[unsolved[0].id]
    assert marbles.kept and marbles.answer == "12" and marbles.agreement == 0.0
    assert marbles.rationale == "Liam had 7 marbles and found 5 more, so 7 + 5 = 12."
    assert marbles.provenance[-1].params["rationalized"] is True
    assert marbles.provenance[-1].template == "cot_rationalize.j2"
    # The hint reaches the teacher's request only: the record's input (the student's prompt) has none.
    assert marbles.input == unsolved[0].input and "correct answer" not in str(marbles.input)
    rolls, pens = by_parent[unsolved[1].id], by_parent[unsolved[2].id]
    assert not rolls.kept and "mentions the hint" in rolls.verdicts["self_consistency"].reason
    assert not pens.kept and "wrong arithmetic: '4 * 6 = 30'" in pens.verdicts["self_consistency"].reason
    assert ctx.details["rationalized"] == 1


def test_rationalisation_without_the_check_keeps_what_lands_on_the_hint(tmp_path, make_ctx):
    unsolved = sampled("A baker had 24 rolls and sold 9. How many are left?", "15", ["The answer is 14."])
    options = "{target: gold, rationalize: true, rationalize_n: 1, check_rationalized: false}"
    with ScriptedServer(responder=hinted_teacher) as server:
        out, _ = vote(make_ctx, tmp_path, [unsolved], options, server.url)
    assert [(r.kept, r.answer) for r in out] == [(True, "15")]
