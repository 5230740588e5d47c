"""Symbolic knowledge: events and triples parsed from teacher text, the built-in sources, the pipeline.

The fast end-to-end test takes its teacher from the scripted server, whose responder writes fixed
events and tails, so every stage's count is known exactly; the slow one runs pipelines/symbolic.yaml on
the embedded model at a tiny size.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.data import load_splits
from synthdistill.errors import ConfigError, DataError, StageError
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.records import Provenance, Record, Sample
from synthdistill.runs.folder import read_records
from synthdistill.sources.builtin import load_builtin
from synthdistill.symbolic import RELATIONS, event_records, parse_events, parse_tails, triple_records
from synthdistill.teachers.engine import ParseError
from synthdistill.testing.scripted_server import ScriptedServer

REPO = Path(__file__).resolve().parents[1]
PROVENANCE = Provenance(stage="generate")


# Parsing events


def test_events_are_read_from_a_numbered_list_with_blank_lines_between():
    text = "1. PersonX makes the bed\n\n2. PersonX feeds the cat.\n\n3. PersonX calls PersonY\n"
    assert parse_events(text) == {
        "events": ["PersonX makes the bed", "PersonX feeds the cat", "PersonX calls PersonY"]
    }


def test_events_normalise_person_x_and_accept_bullets_and_parentheses():
    text = "- personx buys bread\n* Person X walks home!\n3) PersonX  sings   loudly"
    assert parse_events(text)["events"] == [
        "PersonX buys bread",
        "PersonX walks home",
        "PersonX sings loudly",
    ]


def test_lines_that_are_not_short_personx_events_are_skipped():
    text = (
        "Here are some events:\n"
        "1. PersonX's dog barks at night\n"  # the event is about the dog, not PersonX
        "2. The sun rises\n"
        "3. PersonX\n"  # no predicate
        "4. PersonX walks to the shop and then buys milk and bread and eggs and cheese\n"
        "5. PersonX paints a fence"
    )
    assert parse_events(text)["events"] == ["PersonX paints a fence"]


def test_unnumbered_event_lines_are_read_when_the_text_has_no_list():
    assert parse_events("PersonX wakes up early\nPersonX drinks tea")["events"] == [
        "PersonX wakes up early",
        "PersonX drinks tea",
    ]


@pytest.mark.parametrize("text", ["", "I cannot do that.", "1. The weather is nice\n2. It rains"])
def test_a_text_without_events_is_a_parse_error(text):
    with pytest.raises(ParseError, match="no event line"):
        parse_events(text)


# Parsing tails


def test_tails_are_read_from_a_numbered_list_and_cleaned():
    text = '1. to call friends.\n2. "to take photos"\n3.   to   be kind  \n'
    assert parse_tails(text)["tails"] == ["to call friends", "to take photos", "to be kind"]


def test_a_restated_prompt_and_long_lines_are_not_tails():
    text = (
        "1. happy\n"
        "2. Event: PersonX buys a phone\n"
        "3. he is very very happy because he finally got what he always wanted\n"
        "4. proud\n"
        "Why does PersonX do this? PersonX"  # not a list item: ignored beside the list
    )
    assert parse_tails(text)["tails"] == ["happy", "proud"]


def test_a_single_unnumbered_answer_is_one_tail():
    assert parse_tails("to get some rest.")["tails"] == ["to get some rest"]


@pytest.mark.parametrize("text", ["", "\n\n", "1. Event: PersonX eats\n2. Relation: xIntent"])
def test_a_text_without_tails_is_a_parse_error(text):
    with pytest.raises(ParseError, match="no tail line"):
        parse_tails(text)


# Children of a record


def _sample(text, parse, finish_reason="stop"):
    return Sample(text=text, fields=parse(text), finish_reason=finish_reason)


def test_events_become_children_with_their_own_input_and_a_link_to_the_parent():
    parent = Record.from_input({"topic": "pets", "slot": "0"})
    samples = [
        _sample("1. PersonX walks the dog\n2. PersonX feeds the cat", parse_events),
        _sample("1. personx walks the dog\n2. PersonX buys a leash", parse_events),  # one repeat
    ]
    children = event_records(parent, [({}, samples)], PROVENANCE)
    assert [c.input for c in children] == [
        {"head": "PersonX walks the dog"},
        {"head": "PersonX feeds the cat"},
        {"head": "PersonX buys a leash"},
    ]
    assert all(c.parent_id == c.source_id == parent.id for c in children)
    assert len({c.id for c in children}) == 3 and parent.id not in {c.id for c in children}
    assert children[2].samples == [samples[1]]
    # Ids are stable: the same parent and event give the same child id.
    assert event_records(parent, [({}, samples)], PROVENANCE)[0].id == children[0].id


def test_the_last_item_of_a_sample_cut_off_by_max_tokens_is_dropped():
    parent = Record.from_input({"head": "PersonX eats", "relation": "xWant"})
    cut = _sample("1. to sleep\n2. to drink\n3. to go to the", parse_tails, finish_reason="length")
    whole = _sample("1. to rest\n", parse_tails, finish_reason="length")  # ended its line: kept
    children = triple_records(parent, [({}, [cut, whole])], PROVENANCE)
    assert [c.answer for c in children] == ["to sleep", "to drink", "to rest"]


def test_tails_become_triples_with_the_relation_from_the_expanded_values():
    parent = Record.from_input({"head": "PersonX eats"})
    answered = [
        ({"relation": "xIntent"}, [_sample("1. to be full\n2. to enjoy food", parse_tails)]),
        ({"relation": "xReact"}, [_sample("1. full\n2. FULL", parse_tails)]),
        ({"relation": "xWant"}, [Sample(text="", error="no tail line")]),
    ]
    children = triple_records(parent, answered, PROVENANCE)
    assert [(c.input["relation"], c.answer) for c in children] == [
        ("xIntent", "to be full"),
        ("xIntent", "to enjoy food"),
        ("xReact", "full"),
    ]
    assert children[2].input == {
        "head": "PersonX eats",
        "relation": "xReact",
        "question": "PersonX eats xReact",
    }
    assert children[0].rationale is None and children[0].provenance == [PROVENANCE]


def test_triples_without_a_head_or_relation_name_what_is_missing():
    parent = Record.from_input({"question": "What is 2 + 2?"})
    with pytest.raises(StageError, match=r"needs head and relation .* expand: \{relation"):
        triple_records(parent, [({}, [_sample("1. to eat", parse_tails)])], PROVENANCE)


# Built-in sources


def test_builtin_events_are_seeded_and_extend_without_changing_their_start():
    first = list(load_builtin("events", {}, 0, 10, Path(".")))
    assert first == list(load_builtin("events", {}, 0, 10, Path(".")))
    assert list(load_builtin("events", {}, 0, 60, Path(".")))[:10] == first
    assert first != list(load_builtin("events", {}, 1, 10, Path(".")))
    assert len({item["topic"] for item in first}) == 10  # no topic twice before all came up
    for item in first:
        assert item["count"] == 4 and len(item["shots"]) == 2
        assert all(shot["topic"] != item["topic"] and len(shot["events"]) == 4 for shot in item["shots"])


def test_builtin_events_options_change_the_prompt_size():
    item = next(load_builtin("events", {"per_prompt": 3, "shots": 1}, 0, 1, Path(".")))
    assert item["count"] == 3 and len(item["shots"]) == 1 and len(item["shots"][0]["events"]) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colour": 1}, "has no option 'colour'; valid options: per_prompt"),
        ({"per_prompt": 9}, "per_prompt must be an integer from 1 to 5 .got 9."),
        ({"shots": True}, "shots must be an integer from 1 to 4"),
    ],
)
def test_builtin_events_refuse_bad_options(options, message):
    with pytest.raises(DataError, match=message):
        list(load_builtin("events", options, 0, 1, Path(".")))


def test_builtin_triples_cover_every_relation_with_hand_written_tails():
    items = list(load_builtin("triples", {}, 0, 1000, Path(".")))
    assert len(items) == 84 and {item["relation"] for item in items} == set(RELATIONS)
    assert all(item["question"] == f"{item['head']} {item['relation']}" and item["answer"] for item in items)
    # Held-out heads are not among the few-shot events the teacher sees.
    shots = {
        e for slot in load_builtin("events", {}, 0, 40, Path(".")) for s in slot["shots"] for e in s["events"]
    }
    assert not shots & {item["head"] for item in items}


# The pipeline on a scripted teacher

TINY = """
name: sym
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_retries: 0}}
data: {{source: builtin:events, test_source: builtin:triples, split: {{train: 3, test: 7}}}}
stages:
  - generate: {{template: symbolic_events.j2, parse: events, n: 1}}
  - filter:
      critics: [{{exact_dup: {{field: input.head, against_test: true}}}}, {{near_dup: {{field: input.head}}}}]
  - generate:
      template: symbolic_relation.j2
      parse: triples
      expand: {{relation: [xIntent, xReact]}}
      n: 1
  - filter:
      critics:
        - {{length: {{field: answer, max_words: 8}}}}
        - {{format: {{required: [answer, input.relation], field: answer, forbid: '\\bPersonX\\b'}}}}
        - {{regex: {{field: "{{{{ relation }}}} {{{{ answer }}}}", pattern: '^(?:xIntent to |xReact )'}}}}
"""


def symbolic_responder(messages, params, index):
    """Fixed events and tails; the comments say which critic each line is there for."""
    prompt = messages[-1]["content"]
    topic = re.fullmatch(r"Write \d+ everyday events about (.+)\.", prompt)
    if topic:
        return (
            f"1. PersonX thinks about {topic[1]}\n"
            "2. PersonX walks the dog\n"  # every slot writes it: exact_dup keeps the first
            "3. PersonX walks the dogs\n"  # near_dup of the line above
            "4. Nice!\n"  # not an event: not parsed
        )
    head = re.match(r"Event: (.+)\n", prompt)[1]
    if "feel" in prompt:  # xReact
        return "1. happy\n2. calm\n3. PersonX is glad\n"  # format forbids PersonX
    return (
        f"1. to learn about {head.split()[-1]}\n"
        "2. to have fun.\n"
        "3. curious\n"  # regex: an intent starts with "to"
        "4. to see what happens when you think really hard\n"  # length: 9 words
    )


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer() as server:
        server.responder = symbolic_responder
        path = tmp_path / "sym.yaml"
        path.write_text(TINY.format(url=server.url))
        yield path, server


def test_symbolic_pipeline_makes_events_then_triples_with_links_and_a_dataset(tiny):
    path, server = tiny
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    assert manifest.status == "done"
    assert [(s.name, s.records_in, s.records_out) for s in manifest.stages] == [
        ("generate", 3, 9),  # three events a slot
        ("filter", 9, 4),  # the dog twice more, exactly; the dogs once, nearly
        ("generate", 4, 28),  # four xIntent and three xReact tails an event
        ("filter", 28, 16),  # one too long, one with PersonX, one intent without "to"
    ]
    assert server.stats.by_path["/v1/chat/completions"] == 3 + 4 * 2
    events = list(read_records(Path("outputs/sym/01-generate/records.jsonl")))
    assert len({e.parent_id for e in events}) == 3 and all(e.input.keys() == {"head"} for e in events)
    assert manifest.stages[0].details["parse_rate"] == 1.0
    dropped = [
        (r.dropped_by, r.input["head"])
        for r in read_records(Path("outputs/sym/02-filter/records.jsonl"))
        if not r.kept
    ]
    assert sorted(dropped) == [("exact_dup", "PersonX walks the dog")] * 2 + [
        ("exact_dup", "PersonX walks the dogs")
    ] * 2 + [("near_dup", "PersonX walks the dogs")]
    kept_events = list(read_records(Path("outputs/sym/02-filter/records.jsonl"), kept_only=True))
    triples = list(read_records(Path("outputs/sym/03-generate/records.jsonl")))
    assert {t.parent_id for t in triples} == {e.id for e in kept_events}
    assert len({t.id for t in triples}) == 28
    assert manifest.stages[2].details["by_value"] == {
        "xIntent": {"samples_parsed": 4, "samples_failed": 0, "records_made": 16},
        "xReact": {"samples_parsed": 4, "samples_failed": 0, "records_made": 12},
    }
    final = list(read_records(Path("outputs/sym/04-filter/records.jsonl")))
    assert (
        sorted(r.dropped_by for r in final if not r.kept) == ["format"] * 4 + ["length"] * 4 + ["regex"] * 4
    )
    walk = next(t for t in final if t.kept and t.input["head"] == "PersonX walks the dog")
    assert walk.input["question"] == "PersonX walks the dog " + walk.input["relation"]

    from datasets import load_from_disk

    dataset = load_from_disk("outputs/sym/dataset")
    assert len(dataset) == 16
    assert sorted(set(dataset["answer"]))[:3] == ["calm", "happy", "to have fun"]
    assert "PersonX walks the dog xReact" in dataset["question"]


def test_a_classifier_trained_on_labelled_triples_filters_the_next_run(tiny):
    # The paper's critic: label triples, train a classifier on them, filter with it in place of a rule.
    from synthdistill.critics.classifier import train_classifier

    path, server = tiny
    run_pipeline(load_pipeline(path), RunOptions())
    triples = list(read_records(Path("outputs/sym/03-generate/records.jsonl")))
    good = {t.answer for t in triples if t.answer == "happy" or t.answer.startswith("to learn about")}
    labels = Path("labels.jsonl")
    labels.write_text(
        "".join(json.dumps({"answer": t.answer, "label": t.answer in good}) + "\n" for t in triples)
    )
    train_classifier(Path("outputs/sym"), labels=labels, field="answer")
    calls = server.stats.requests
    manifest = run_pipeline(load_pipeline(path, ["stages.3.filter.critics.2=classifier"]), RunOptions())
    assert server.stats.requests == calls  # the generate stages are skipped
    assert [s.status for s in manifest.stages] == ["skipped"] * 3 + ["done"]
    kept = list(read_records(Path("outputs/sym/04-filter/records.jsonl"), kept_only=True))
    assert len(kept) == 8 and {t.answer for t in kept} == good
    # length and format drop four each before it; it drops calm, "to have fun" and curious.
    assert manifest.stages[3].details["critics"]["classifier"] == {
        **manifest.stages[3].details["critics"]["classifier"],
        "seen": 20,
        "dropped": 12,
    }


def test_a_second_symbolic_run_makes_no_calls(tiny):
    path, server = tiny
    run_pipeline(load_pipeline(path), RunOptions())
    before = server.stats.requests
    again = run_pipeline(load_pipeline(path), RunOptions())
    assert server.stats.requests == before and [s.status for s in again.stages] == ["skipped"] * 4


def test_unparsable_tails_drop_the_event_with_the_reason(tiny):
    path, server = tiny

    def no_tails(messages, params, index):
        if messages[-1]["content"].startswith("Event: PersonX walks the dog\n"):
            return "Event: nothing to say"
        return symbolic_responder(messages, params, index)

    server.responder = no_tails
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    assert manifest.stages[2].records_out == 7 * 3  # the events of the dog still have theirs
    dropped = [r for r in read_records(Path("outputs/sym/03-generate/records.jsonl")) if not r.kept]
    assert len(dropped) == 1 and dropped[0].input["head"] == "PersonX walks the dog"
    assert "no tail line" in dropped[0].verdicts["generate"].reason
    assert manifest.stages[2].details["parse_rate"] == 0.75


def test_the_test_split_holds_hand_written_triples_for_the_student_prompt(tiny):
    path, _ = tiny
    pipeline = load_pipeline(path)
    train, test = load_splits(pipeline.config.data, seed=0, base_dir=path.parent)
    assert len(train) == 3 and "topic" in train[0].input
    assert len(test) == 7 and all({"head", "relation", "answer"} <= set(r.input) for r in test)


def test_expand_without_values_is_refused_naming_the_key(tiny):
    path, _ = tiny
    with pytest.raises(ConfigError, match=r"stages\[2\]\.generate\.expand.*relation has no values"):
        load_pipeline(path, ["stages.2.generate.expand.relation=[]"])


# The shipped pipeline on the embedded model


@pytest.mark.slow
def test_shipped_symbolic_pipeline_runs_on_the_embedded_model_at_tiny_size(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    args = ["run", str(REPO / "pipelines" / "symbolic.yaml"), "--limit", "2"]
    args += ["--set", "train.max_steps=2", "--set", "evaluate.max_tokens=16"]
    code = main(args)
    _, err = capfd.readouterr()
    assert code == 0, err
    manifest = json.loads(Path("outputs/symbolic/manifest.json").read_text())
    stages = manifest["stages"]
    assert stages[0]["records_in"] == 2 and stages[0]["records_out"] >= 1, "no event parsed"
    triples = [s for s in stages if s["name"] == "generate"][1]
    assert triples["details"]["samples_parsed"] >= 1, "no tail parsed"
    assert manifest["metrics"]["student"]["n"] == 2
    kept = list(read_records(Path(f"outputs/symbolic/{stages[3]['folder']}/records.jsonl"), kept_only=True))
    assert kept and all(r.input["relation"] in RELATIONS and r.answer for r in kept)
