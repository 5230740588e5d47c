"""The rule-based built-in critics on records with known right verdicts, and critic discovery.

Every test scores records of which some must pass and some must fail, so a critic that always
passes or always fails cannot pass it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from critic_helpers import record

from synthdistill.critics import build_critic, critic_folders, field_text, find_critic, known_critics
from synthdistill.embeddings import embedder_path
from synthdistill.errors import CriticError

REPO = Path(__file__).resolve().parents[1]


def passed(critic_entry, records, ctx=None):
    return [v.passed for v in build_critic(critic_entry, ctx).score(records)]


# answer_match ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "gold", "ok"),
    [
        ("1,000", "1000", True),
        ("1000", 1000, True),
        ("$5", "5.00", True),
        ("5.00", "$5", True),
        ("7 apples", "7", True),
        ("0.5", "1/2", False),
        ("8", "9", False),
        ("12", "1.2", False),
        ("Paris.", "paris", True),
        ("Lyon", "Paris", False),
        (None, "3", False),
    ],
)
def test_answer_match_normalises_numbers_units_case_and_punctuation(answer, gold, ok):
    assert passed("answer_match", [record(gold=gold, answer=answer)]) == [ok]


def test_answer_match_on_a_batch_passes_exactly_the_right_answers():
    records = [
        record("a", gold="1000", answer="1,000"),
        record("b", gold="5.00", answer="$5"),
        record("c", gold="12", answer="13"),
        record("d", gold="4", answer=None),
        record("e", answer="4"),  # no gold: fails unless missing_gold says otherwise
    ]
    assert passed("answer_match", records) == [True, True, False, False, False]
    assert passed({"answer_match": {"missing_gold": True}}, records)[-1] is True


def test_answer_match_multiple_choice_by_letter_or_text():
    choices = ["London", "Paris", "Rome"]
    records = [
        record("capital", gold="B", answer="Paris", choices=choices),
        record("capital", gold="B", answer="(b)", choices=choices),
        record("capital", gold="Paris", answer="B) Paris", choices=choices),
        record("capital", gold="B", answer="Option B", choices=choices),
        record("capital", gold="B", answer="Rome", choices=choices),
        record("capital", gold="B", answer="C", choices=choices),
        record("capital", gold="A", answer="Berlin", choices=choices),
        record("capital", gold="b", answer="paris", choices={"a": "Lyon", "b": "Paris"}),
    ]
    assert passed("answer_match", records) == [True, True, True, True, False, False, False, True]


def test_answer_match_reason_names_both_answers():
    (verdict,) = build_critic("answer_match").score([record(gold="12", answer="13")])
    assert verdict.reason == "answer '13' != gold '12'" and verdict.score == 0.0


# format, regex, length ------------------------------------------------------------------------------


def test_format_requires_fields_present_and_not_empty():
    records = [
        record(rationale="5 + 3 = 8", answer="8"),
        record(rationale="", answer="8"),
        record(rationale="5 + 3 = 8", answer=None),
        record(rationale="ok", answer="1", source="x"),
    ]
    assert passed("format", records) == [True, False, False, True]
    assert passed({"format": {"required": ["input.source"]}}, records) == [False, False, False, True]
    (verdict,) = build_critic("format").score([records[2]])
    assert verdict.reason == "missing or empty: answer"


def test_regex_pattern_required_and_forbidden():
    records = [
        record(rationale="So 5 + 3 = 8.", answer="8"),
        record(rationale="I think 5 + 3 = 8.", answer="8"),
        record(rationale="Eight.", answer="8"),
    ]
    entry = {"regex": {"field": "rationale", "pattern": r"\d+\s*[-+*/]\s*\d+", "forbid": r"\bI think\b"}}
    assert passed(entry, records) == [True, False, False]
    verdicts = build_critic(entry).score(records)
    assert "forbidden 'I think'" in verdicts[1].reason and "lacks the pattern" in verdicts[2].reason


def test_regex_with_an_invalid_pattern_is_a_one_line_critic_error():
    with pytest.raises(CriticError, match=r"critic 'regex' option 'pattern': .*invalid regex"):
        build_critic({"regex": {"pattern": "(unclosed"}})


def test_length_bounds_in_words_and_in_tokens():
    short, long = "Add them: 8.", " ".join(["Then we add one more apple to the pile."] * 10)
    records = [record(rationale=short), record(rationale=long), record(rationale="")]
    assert passed({"length": {"min_words": 1, "max_words": 50}}, records) == [True, False, False]
    # The MiniLM folder holds a fast BERT tokenizer: token bounds without loading any model weights.
    tokenizer = str(embedder_path("all-minilm-l6-v2"))
    entry = {"length": {"max_words": None, "min_tokens": 2, "max_tokens": 40, "tokenizer": tokenizer}}
    verdicts = build_critic(entry).score(records)
    assert [v.passed for v in verdicts] == [True, False, False]
    assert verdicts[1].score > 40 and "tokens" in verdicts[1].reason


@pytest.mark.slow
def test_length_counts_tokens_of_the_pipeline_students_tokenizer(tmp_path, make_ctx):
    ctx = make_ctx(tmp_path)
    from transformers import AutoTokenizer

    from synthdistill.models import resolve_model

    text = "Liam starts with 7 marbles and finds 5 more, so 7 + 5 = 12."
    expected = len(AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m")))(text)["input_ids"])
    critic = build_critic({"length": {"max_tokens": expected}}, ctx)
    verdicts = critic.score([record(rationale=text), record(rationale=text + " And one more.")])
    assert [v.passed for v in verdicts] == [True, False]
    assert verdicts[0].score == expected


# answer_rationale_consistency -------------------------------------------------------------------------


def test_consistency_checks_the_final_statement_and_the_arithmetic():
    records = [
        record(rationale="Liam has 7 and finds 5 more, so 7 + 5 = 12.", answer="12"),
        record(rationale="So 5 + 3 + 2 = 10 in all.", answer="10"),
        record(rationale="It costs 1,000 + 250 = 1,250 dollars.", answer="1250"),
        record(rationale="7 + 5 = 12. Doubling that gives 24.", answer="12"),
        record(rationale="So 7 + 5 = 13.", answer="13"),
        record(rationale="We need the total of the apples.", answer="12"),
        record(rationale="", answer="12"),
        record(rationale="The capital of France is Paris.", answer="Paris"),
        record(rationale="The capital of France is Lyon.", answer="Paris"),
    ]
    verdicts = build_critic("answer_rationale_consistency").score(records)
    assert [v.passed for v in verdicts] == [True, True, True, False, False, False, False, True, False]
    assert verdicts[3].reason == "final statement reaches 24, answer is 12"
    assert verdicts[4].reason == "wrong arithmetic: '7 + 5 = 13'"


# choice_consistency -----------------------------------------------------------------------------------

BUM = ["bus depot", "beach", "train station", "bridge", "public building"]


def test_choice_consistency_catches_a_rationale_that_names_one_choice_and_answers_another():
    named = "Of the above choices, only a train station is a place where a bum would live."
    records = [
        record(rationale=named, answer="(c) train station", choices=BUM),
        record(rationale=named, answer="(d) bridge", choices=BUM),
        record(rationale="Of the above choices, only bridges and beaches fit.", answer="beach", choices=BUM),
        record(rationale="Of the above choices, only bridges and beaches fit.", answer="c", choices=BUM),
        record(rationale="Of the above choices, only public buildings fit.", answer="E", choices=BUM),
        record(rationale="The closest place is the (d) bridge.", answer="(d) bridge", choices=BUM),
        record(rationale="Of the above choices, the best answer is bus depot.", answer="beach", choices=BUM),
        record(rationale="Bums live anywhere.", answer="beach", choices=BUM),  # names none: passes
        record(rationale=named, answer="(f) tent", choices=BUM),  # answers no choice
        record(rationale="Only 5 fit.", answer="5"),  # not multiple choice
    ]
    verdicts = build_critic("choice_consistency").score(records)
    assert [v.passed for v in verdicts] == [True, False, True, False, True, True, False, True, False, True]
    assert verdicts[1].reason == "the rationale names 'train station', the answer is 'bridge'"
    strict = build_critic({"choice_consistency": {"require_named": True}})
    assert strict.score(records[7:8])[0].passed is False


def test_choice_consistency_passes_palms_own_commonsenseqa_answers_and_catches_swapped_ones(shared_data):
    import json

    from synthdistill.parsing import parse_rationale

    rows = [json.loads(line) for line in (shared_data / "cqa" / "train.jsonl").open(encoding="utf-8")]
    records, swapped = [], []
    for row in (row for row in rows if row.get("palm_cot")):
        parsed = parse_rationale(row["palm_cot"], row["choices"])
        other = next(c for c in row["choices"] if c != parsed["answer"])
        records.append(record(rationale=parsed["rationale"], answer=parsed["answer"], choices=row["choices"]))
        swapped.append(record(rationale=parsed["rationale"], answer=other, choices=row["choices"]))
    critic = build_critic("choice_consistency")
    own = [v.passed for v in critic.score(records)]
    # PaLM's misses are answers of two choices ("either (a) x or (e) y") and near-twin choices
    # ("only catching fish ... So the answer is (c) catch fish").
    assert sum(own) / len(own) > 0.97
    caught = [not v.passed for v in critic.score(swapped)]
    assert sum(caught) / len(caught) > 0.85  # the rest name no choice ("the closest is to ...")


# fields ---------------------------------------------------------------------------------------------


def test_field_text_reads_fields_paths_and_jinja_expressions():
    r = record("How many?", gold=3, rationale="1 + 2 = 3", answer="3", topic="sums")
    assert field_text(r, "answer") == "3"
    assert field_text(r, "input.question") == "How many?"
    assert field_text(r, "text") == "1 + 2 = 3\n3"
    assert field_text(r, "{{ topic }}: {{ question }} -> {{ answer }}") == "sums: How many? -> 3"
    with pytest.raises(
        CriticError, match=r"no field 'input.missing'; .* \(its input has answer, question, topic\)"
    ):
        field_text(r, "input.missing")


# discovery ------------------------------------------------------------------------------------------

USER_CRITIC = '''
from synthdistill.records import Verdict


class ShortAnswer:
    """Passes answers of at most `limit` characters (a plain class: no base needed)."""

    name = "short_answer"

    def __init__(self, limit=3):
        self.limit = limit

    def score(self, records):
        return [Verdict(passed=len(r.answer or "") <= self.limit) for r in records]
'''


def test_a_critic_in_critics_beside_the_pipeline_is_found_by_name(tmp_path, monkeypatch, make_ctx):
    monkeypatch.chdir(tmp_path)
    ctx = make_ctx(tmp_path / "project")
    (ctx.pipeline.base_dir / "critics").mkdir()
    (ctx.pipeline.base_dir / "critics" / "short.py").write_text(USER_CRITIC)
    critic = build_critic({"short_answer": {"limit": 2}}, ctx)
    assert [v.passed for v in critic.score([record(answer="12"), record(answer="123")])] == [True, False]
    assert "short_answer" in known_critics(critic_folders(ctx.pipeline.base_dir))


def test_a_critic_in_the_projects_critics_folder_is_found_and_the_shipped_example_works(monkeypatch):
    monkeypatch.chdir(REPO)
    critic = build_critic("no_hedging")
    records = [record(rationale="5 + 3 = 8."), record(rationale="I think it is maybe 8.")]
    verdicts = critic.score(records)
    assert [v.passed for v in verdicts] == [True, False]
    assert verdicts[1].reason == "hedges: i think, maybe"


def test_a_critic_by_dotted_path(tmp_path, monkeypatch):
    package = tmp_path / "mycritics_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "checks.py").write_text(USER_CRITIC)
    monkeypatch.syspath_prepend(str(tmp_path))
    critic = build_critic({"mycritics_pkg.checks:ShortAnswer": {"limit": 1}})
    assert [v.passed for v in critic.score([record(answer="1"), record(answer="12")])] == [True, False]
    with pytest.raises(CriticError, match=r"module 'mycritics_pkg.checks' has no attribute 'Nope'"):
        find_critic("mycritics_pkg.checks:Nope")
    with pytest.raises(CriticError, match=r"cannot import module 'no_such_pkg.x' \(No module named"):
        find_critic("no_such_pkg.x:Y")
    sys.modules.pop("mycritics_pkg.checks", None)
    sys.modules.pop("mycritics_pkg", None)


def test_an_unknown_critic_lists_the_valid_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CriticError) as caught:
        build_critic("answer_mtach")
    message = str(caught.value)
    assert message.startswith("unknown critic 'answer_mtach'; valid critics: answer_match,")
    for name in ("near_dup", "llm_judge", "classifier", "answer_rationale_consistency"):
        assert name in message


def test_a_critic_file_that_fails_to_import_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "critics").mkdir()
    (tmp_path / "critics" / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(CriticError, match=r"critic file .*broken.py failed to import: ModuleNotFoundError"):
        build_critic("whatever")
