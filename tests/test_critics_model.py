"""The critics that use a model: llm_judge through the engine and the scripted server, and the classifier."""

from __future__ import annotations

import json
import re

import pytest
from critic_helpers import record

from synthdistill.cli import main
from synthdistill.critics import build_critic
from synthdistill.critics.classifier import load_classifier, train_classifier
from synthdistill.errors import CriticError, DataError
from synthdistill.records import Record
from synthdistill.runs.folder import RecordWriter
from synthdistill.testing.scripted_server import ScriptedServer


def solution_judge(messages, params, index):
    """Scores 9 a solution that shows a computation, 2 one that does not."""
    solution = messages[-1]["content"].split("Solution:", 1)[1]
    score = 9 if re.search(r"\d\s*[-+*/]\s*\d", solution) else 2
    return json.dumps({"score": score, "reason": "shows its work" if score > 5 else "no work shown"})


def test_llm_judge_scores_through_the_engine_and_applies_the_threshold(tmp_path, make_ctx):
    with ScriptedServer(responder=solution_judge) as server:
        ctx = make_ctx(tmp_path, server.url)
        critic = build_critic({"llm_judge": {"field": "rationale"}}, ctx)
        records = [
            record("Liam has 7 marbles and finds 5.", rationale="7 + 5 = 12, so 12.", answer="12"),
            record("A baker has 24 rolls and sells 9.", rationale="It is 15.", answer="15"),
        ]
        verdicts = critic.score(records)
        assert [v.passed for v in verdicts] == [True, False]
        assert [v.score for v in verdicts] == [9.0, 2.0]
        assert verdicts[0].reason == "judge 9/10: shows its work"
        bodies = server.stats.bodies  # in arrival order, which concurrency may swap
        assert all(body["response_format"]["type"] == "json_schema" for body in bodies)
        assert any("Problem: Liam has 7 marbles" in body["messages"][-1]["content"] for body in bodies)
        requests = server.stats.requests
        assert [
            v.passed for v in build_critic({"llm_judge": {"field": "rationale"}}, ctx).score(records)
        ] == [
            True,
            False,
        ]
        assert server.stats.requests == requests  # the second time the call cache answers
        strict = build_critic({"llm_judge": {"field": "rationale", "threshold": 10}}, ctx)
        assert [v.passed for v in strict.score(records)] == [False, False]


def test_llm_judge_retries_an_unparsable_judgment_then_fails_the_record_with_the_reason(tmp_path, make_ctx):
    asked: dict[str, int] = {}

    def flaky(messages, params, index):
        prompt = messages[-1]["content"]
        asked[prompt] = asked.get(prompt, 0) + 1
        if "always broken" in prompt or asked[prompt] == 1:
            return "I would rate it highly!"
        return 'Sure: ```json\n{"score": 8, "reason": "fine"}\n```'

    with ScriptedServer(responder=flaky) as server:
        ctx = make_ctx(tmp_path, server.url)
        critic = build_critic({"llm_judge": {"temperature": 0.5, "parse_retries": 2}}, ctx)
        verdicts = critic.score([record("q1", rationale="1 + 1 = 2"), record("always broken", rationale="x")])
    assert verdicts[0].passed and verdicts[0].score == 8.0
    assert not verdicts[1].passed and verdicts[1].score is None
    assert verdicts[1].reason.startswith("judge answer unusable: no JSON object")
    assert max(asked.values()) == 3  # one ask and two retries


def test_pairwise_judge_biased_to_the_first_position_yields_ties(tmp_path, make_ctx):
    def first_wins(messages, params, index):
        return json.dumps({"winner": "A", "reason": "A is first"})

    def right_wins(messages, params, index):
        prompt = messages[-1]["content"]
        first = prompt.split("Answer A:", 1)[1].split("Answer B:", 1)[0]
        return json.dumps({"winner": "A" if "= 12" in first else "B", "reason": "right sum"})

    records = [
        record("Liam has 7 and finds 5.", rationale="7 + 5 = 12", student="7 + 5 = 13"),
        record("Liam has 7 and finds 5.", rationale="7 + 5 = 11", student="7 + 5 = 12"),
    ]
    entry = {"llm_judge": {"mode": "pairwise", "field": "rationale", "against": "input.student"}}
    with ScriptedServer(responder=first_wins) as server:
        verdicts = build_critic(entry, make_ctx(tmp_path / "a", server.url)).score(records)
        assert len(server.stats.bodies) == 4  # two orders per record
    assert [v.score for v in verdicts] == [0.5, 0.5]
    assert all(v.reason.startswith("ties after both orders") for v in verdicts)
    # New questions, so that the call cache does not answer with the biased judge's judgments.
    records = [
        r.model_copy(update={"input": {**r.input, "question": "Again: " + r.input["question"]}})
        for r in records
    ]
    with ScriptedServer(responder=right_wins) as server:
        verdicts = build_critic(entry, make_ctx(tmp_path / "b", server.url)).score(records)
    assert [(v.score, v.passed) for v in verdicts] == [(1.0, True), (0.0, False)]


def test_pairwise_judge_without_against_is_refused():
    with pytest.raises(CriticError, match="pairwise mode needs `against`"):
        build_critic({"llm_judge": {"mode": "pairwise"}})


# classifier -----------------------------------------------------------------------------------------

GOOD = [
    "{a} + {b} = {c}, so there are {c} apples in all.",
    "She had {a} and got {b} more, so {a} + {b} = {c}.",
    "Adding {a} and {b} gives {c}; the total is {c}.",
]
BAD = [
    "I am not sure, maybe ask someone else about the {a} apples.",
    "The weather is nice today and the sky is blue near {b}.",
    "Bananas are yellow fruits that grow in warm places like {a}.",
]


def labelled_records(n: int) -> list[tuple[Record, int]]:
    out = []
    for i in range(n):
        a, b = 3 + i, 4 + 2 * i
        for template, label in [(GOOD[i % 3], 1), (BAD[i % 3], 0)]:
            text = template.format(a=a, b=b, c=a + b)
            out.append((record(f"item {i} {label}", rationale=text, answer=str(a + b)), label))
    return out


def test_classifier_trained_from_review_decisions_filters_new_records(tmp_path, capsys, make_ctx):
    run_dir = tmp_path / "outputs" / "critics-test"
    (run_dir / "03-filter").mkdir(parents=True)
    labelled = labelled_records(16)
    with RecordWriter(run_dir / "03-filter" / "records.jsonl") as writer:
        writer.write(r for r, _ in labelled)
    with (run_dir / "review.jsonl").open("w") as handle:
        for r, label in labelled:
            handle.write(json.dumps({"record_id": r.id, "action": "accept" if label else "reject"}) + "\n")
        handle.write(json.dumps({"record_id": labelled[0][0].id, "action": "edit", "answer": "1"}) + "\n")
    code = main(["critic", "train", str(run_dir), "--field", "rationale", "--target-precision", "0.9"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(run_dir / "critics" / "classifier.joblib")
    assert "precision" in err and "recall" in err and "held-out" in err
    trained = load_classifier(run_dir / "critics" / "classifier.joblib")
    assert trained.metrics["accepted"] == 16 and trained.metrics["rejected"] == 16
    assert trained.metrics["precision"] >= 0.9 and trained.field == "rationale"

    critic = build_critic("classifier", make_ctx(tmp_path))
    fresh = [
        record("new 1", rationale="He had 40 and got 2 more, so 40 + 2 = 42."),
        record("new 2", rationale="Maybe it rains tomorrow, I am not sure at all."),
        record("new 3", rationale="Adding 30 and 12 gives 42; the total is 42."),
        record("new 4", rationale="Grapes are purple fruits that grow on vines."),
    ]
    verdicts = critic.score(fresh)
    assert [v.passed for v in verdicts] == [True, False, True, False]
    assert all(0.0 <= v.score <= 1.0 for v in verdicts)


def test_classifier_trained_from_a_labelled_file_with_a_recall_target(tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(json.dumps({"text": r.rationale, "label": label}) + "\n" for r, label in labelled_records(12))
    )
    path, metrics = train_classifier(tmp_path, labels=labels, target_precision=None, target_recall=1.0)
    assert path == tmp_path / "critics" / "classifier.joblib"
    assert metrics["recall"] == 1.0 and metrics["target"] == {"recall": 1.0}
    assert json.loads(path.with_suffix(".json").read_text())["threshold"] == metrics["threshold"]


def test_classifier_without_enough_labels_or_without_a_model_says_what_to_do(tmp_path, make_ctx):
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    with pytest.raises(DataError, match="needs at least 4 accepted and 4 rejected examples; got 1 accepted"):
        train_classifier(tmp_path, labels=labels)
    labels.write_text('{"text": "a", "label": "maybe"}\n')
    with pytest.raises(DataError, match=r"labels.jsonl line 1: field 'label' is 'maybe'"):
        train_classifier(tmp_path, labels=labels)
    with pytest.raises(DataError, match=r"no labels: .*review.jsonl does not exist"):
        train_classifier(tmp_path)
    critic = build_critic("classifier", make_ctx(tmp_path / "p"))
    with pytest.raises(CriticError, match=r"no trained classifier at .*classifier.joblib; train one with"):
        critic.score([record(rationale="x")])
