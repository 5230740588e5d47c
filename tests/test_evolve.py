"""The evolve stage (Evol-Instruct) and the refusal critic: elimination with reasons, lineage over
generations, the teacher's equality check, replay from the cache, and config errors.

The teacher is the scripted server. Its responder knows each operator by the method line of its template
and answers from a table keyed by the instruction it was given, so every evolution is crafted: one comes
back identical, one talks about the "#Rewritten Prompt#", one adds a single word (ROUGE-L above 0.9), one
is empty, and the others are real rewrites.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from critic_helpers import record

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.critics import build_critic
from synthdistill.errors import ConfigError
from synthdistill.growth.instructions import seed_of
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.runs.folder import read_records
from synthdistill.stages.evolve import (
    JUDGED_EQUAL,
    NO_GAIN,
    OPERATORS,
    UNPARSABLE,
    pick_operator,
    template_of,
)
from synthdistill.templates import Templates
from synthdistill.testing.scripted_server import ScriptedServer

PIPELINE = """
name: e
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
data: {{source: instructions.jsonl, split: {{train: {train}, test: 0}}}}
stages:
  - evolve: {evolve}
"""
ANSWERING = """
  - generate: {template: instruction.j2, parse: text, n: 1, temperature: 0.7}
  - filter: {critics: [refusal]}
"""

SKY = "Explain why the sky looks blue during the day."
WATER = "List three ways to save water at home and in the garden every single day of the week."
PENCILS = "A shop sells pencils at 3 for 45 cents. How much do 12 pencils cost?"
POEM = "Write a short poem about a lighthouse keeper."
SNOW = "Write a haiku about the first snow of the year."
INSTRUCTIONS = [SKY, WATER, PENCILS, POEM, SNOW]

POEM_1 = "Write a short rhyming poem about a lighthouse keeper who has not seen a ship in ten years."
POEM_2 = (
    "Write a short rhyming poem in four stanzas about a lighthouse keeper who has not seen a ship in "
    "ten years, ending on hope."
)
PENCILS_1 = "A shop sells pencils at 3 for 45 cents and erasers at 2 for 30 cents. What do 12 of each cost?"
EVOLUTIONS = {
    SKY: SKY,  # identical
    WATER: WATER.replace("every single", "every single sunny"),  # one word more: ROUGE-L 0.97
    SNOW: "Rewrite #Rewritten Prompt# as a haiku about the first snow.",  # talks about the prompt
    POEM: f"#Rewritten Prompt#:\n{POEM_1}",  # good (the label is read off)
    POEM_1: POEM_2,  # good, in generation 2
    POEM_2: "Write a sonnet about a lighthouse keeper's last night before the light is automated.",
    PENCILS: f"New problem: {PENCILS_1}\nExpression: 12 / 3 * 45 + 12 / 2 * 30",  # good, with gold
    PENCILS_1: "",  # nothing: unparsable
}
METHODS = {
    "add_constraints": "Add one more constraint or requirement",
    "deepen": "ask about it more deeply",
    "concretize": "Replace general concepts",
    "increase_reasoning": "explicitly asks for reasoning in several steps",
    "complicate_input": "Give #The Given Prompt# a more complex input",
    "breadth": "I want you to act as a Prompt Creator.",
}
REFUSALS = {
    POEM_1: "I'm sorry, but as an AI I cannot write poems about real people.",
    PENCILS_1: "...",
}


class Teacher:
    """Answers evolution, equality and answering prompts from the tables above, noting what it was asked."""

    def __init__(self) -> None:
        self.operators: list[tuple[str, str]] = []
        self.equal: set[str] = set()

    def __call__(self, messages, params, index):
        prompt = messages[-1]["content"]
        if prompt.startswith("Here are two instructions"):
            evolved = prompt.split("The Second Prompt: ")[1].split("\n")[0]
            return "Equal" if evolved in self.equal else "Not Equal."
        if "#The Given Prompt#:\n" not in prompt:
            return REFUSALS.get(prompt, f"A full and careful answer to: {prompt}")
        given = prompt.split("#The Given Prompt#:\n")[1].split("\n\n#")[0]
        (operator,) = [name for name, method in METHODS.items() if method in prompt]
        self.operators.append((operator, given))
        return EVOLUTIONS[given]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with the instructions, and a function writing the pipeline; yields (write, server)."""
    monkeypatch.chdir(tmp_path)
    lines = [json.dumps({"question": q}) for q in INSTRUCTIONS]
    (tmp_path / "instructions.jsonl").write_text("\n".join(lines) + "\n")
    with ScriptedServer() as server:
        server.responder = Teacher()

        def write(evolve: str, train: int = 5, more: str = "") -> Path:
            path = tmp_path / "e.yaml"
            path.write_text(PIPELINE.format(url=server.url, train=train, evolve=evolve) + more)
            return path

        yield write, server


def stage_records(name: str, folder: str = "01-evolve") -> list:
    return list(read_records(Path("outputs") / name / folder / "records.jsonl"))


def test_each_elimination_rule_drops_its_crafted_evolution_with_the_reason(project):
    write, server = project
    path = write("{operators: [add_constraints], chunk_size: 2, parse_retries: 1}")
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    records = stage_records("e")
    originals = {r.input["question"]: r for r in records if seed_of(r) is None}
    assert set(originals) == set(INSTRUCTIONS)
    evolved = [r for r in records if seed_of(r) is not None]
    reasons = {seed_of(r)["question"]: r.verdicts["evolve"].reason for r in evolved if not r.kept}
    assert reasons[SKY] == "the same as the instruction it came from"
    assert reasons[SNOW] == "copies words of the prompt (given/rewritten prompt)"
    assert re.fullmatch(rf"{re.escape(NO_GAIN)}: 0\.9\d\d > 0\.9", reasons[WATER])
    assert sorted(r.input["question"] for r in evolved if r.kept) == sorted([POEM_1, PENCILS_1])
    assert all(r.dropped_by == "evolve" for r in evolved if not r.kept)
    details = manifest.stages[0].details
    eliminated = {
        "the same as the instruction it came from": 1,
        "copies words of the prompt (given/rewritten prompt)": 1,
        NO_GAIN: 1,
    }
    assert details["by_operator"] == {"add_constraints": {"asked": 5, "made": 2, "eliminated": eliminated}}
    assert (details["inputs"], details["asked"], details["made"], details["eliminated"]) == (5, 5, 2, 3)
    assert manifest.stages[0].records_out == 5 + 2
    assert server.stats.requests == 5


def test_an_evolved_record_names_its_seed_operator_and_round_and_carries_a_checked_gold(project):
    write, _ = project
    path = write("{operators: [concretize], chunk_size: 2}")
    run_pipeline(load_pipeline(path), RunOptions())
    records = stage_records("e")
    # Input by input, in order (chunks of 2 do not reorder): each original, then what was evolved from it.
    assert [seed_of(r) is None for r in records] == [True, False] * 5
    assert all(
        child.parent_id == parent.id for parent, child in zip(records[::2], records[1::2], strict=True)
    )
    original = next(r for r in records if r.input["question"] == PENCILS)
    child = next(r for r in records if r.input["question"] == PENCILS_1)
    assert child.parent_id == original.id and child.source_id == original.id
    assert seed_of(child) == {"id": original.id, "question": PENCILS, "operator": "concretize", "round": 1}
    # The teacher's expression is evaluated, never trusted: 12/3*45 + 12/2*30 = 360; the original's
    # own fields do not leak into the new instruction.
    assert (child.input["expression"], child.input["answer"]) == ("12 / 3 * 45 + 12 / 2 * 30", "360")
    assert [p.stage for p in child.provenance] == ["evolve"]
    templates = Templates.for_pipeline(Path.cwd())
    assert child.provenance[0].template == "evol_concretize.j2"
    assert child.provenance[0].template_hash == templates.hash("evol_concretize.j2")
    assert child.provenance[0].model == "scripted"
    assert all(r.source_id == r.id for r in records if seed_of(r) is None)


def test_generation_two_evolves_the_survivor_and_a_failed_evolution_returns_to_the_pool(project):
    write, server = project
    path = write("{generations: 2, chunk_size: 3, parse_retries: 1}")
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    records = stage_records("e")
    by_id = {r.id: r for r in records}
    assert len(by_id) == len(records)  # a failure asked again never repeats an id
    poem = next(r for r in records if r.input["question"] == POEM)
    first = next(r for r in records if r.input["question"] == POEM_1)
    second = next(r for r in records if r.input["question"] == POEM_2)
    assert (seed_of(first)["id"], seed_of(first)["round"]) == (poem.id, 1)
    assert (seed_of(second)["id"], seed_of(second)["round"]) == (first.id, 2)
    assert second.parent_id == first.id and second.source_id == poem.id
    # The empty evolution of PENCILS_1 in generation 2 was asked twice (parse_retries 1), then dropped.
    empty = next(r for r in records if seed_of(r) and seed_of(r)["question"] == PENCILS_1)
    assert not empty.kept and empty.verdicts["evolve"].reason.startswith(f"{UNPARSABLE}: ")
    # Failed instructions are evolved again in generation 2: SKY's two evolutions both have SKY as seed.
    sky = next(r for r in records if r.input["question"] == SKY and seed_of(r) is None)
    assert [seed_of(r)["round"] for r in records if r.parent_id == sky.id] == [1, 2]
    # Operators are those pick_operator draws for (seed, input id, generation); the teacher was asked
    # with each one's template, and each evolved record names it.
    originals = {r.input["question"]: r.id for r in records if seed_of(r) is None}
    current = {q: q for q in INSTRUCTIONS}
    expected = []
    for generation, survivors in ((1, {POEM: POEM_1, PENCILS: PENCILS_1}), (2, {})):
        for question in INSTRUCTIONS:
            operator = pick_operator(list(OPERATORS), 0, originals[question], generation)
            expected.append((operator, current[question]))
        current.update(survivors)
    expected.append(next(pair for pair in expected[5:] if pair[1] == PENCILS_1))  # the parse retry
    assert sorted(server.responder.operators) == sorted(expected)
    for r in records:
        if seed_of(r) is not None:
            lineage = seed_of(r)
            assert lineage["operator"] == pick_operator(list(OPERATORS), 0, r.source_id, lineage["round"])
    for r in records:
        if seed_of(r) is not None:
            assert r.provenance[-1].template == template_of(seed_of(r)["operator"])
    details = manifest.stages[0].details
    assert (details["asked"], details["made"], details["eliminated"]) == (10, 3, 7)
    assert details["eliminated_by_reason"] == {
        "copies words of the prompt (given/rewritten prompt)": 2,
        NO_GAIN: 2,
        UNPARSABLE: 1,
        "the same as the instruction it came from": 2,
    }
    assert sum(e["asked"] for e in details["by_operator"].values()) == 10
    assert server.stats.requests == 10 + 1


def test_a_failure_evolved_again_with_the_same_operator_is_asked_anew_under_a_new_seed(project):
    write, server = project
    path = write("{operators: [add_constraints], generations: 3, parse_retries: 0}")
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    # Nothing came from the cache: SKY's identical evolution was asked in each generation.
    assert server.stats.requests == 15 and manifest.stages[0].teacher["cache_hits"] == 0
    seeds = [
        b["seed"]
        for b in server.stats.bodies
        if f"#The Given Prompt#:\n{SKY}\n" in b["messages"][-1]["content"]
    ]
    assert sorted(seeds) == [0, 1, 2]
    records = stage_records("e")
    assert len({r.id for r in records}) == len(records) == 5 + 15
    assert manifest.stages[0].details["eliminated_by_reason"]["the same as the instruction it came from"] == 3


def test_the_equality_check_eliminates_what_the_teacher_calls_equal(project):
    write, server = project
    server.responder.equal = {PENCILS_1}
    path = write("{operators: [deepen], equality_check: true}")
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    records = stage_records("e")
    judged = next(r for r in records if r.input["question"] == PENCILS_1)
    assert not judged.kept and judged.verdicts["evolve"].reason == f"{JUDGED_EQUAL}: 'Equal'"
    assert next(r for r in records if r.input["question"] == POEM_1).kept
    details = manifest.stages[0].details
    assert details["by_operator"]["deepen"]["eliminated"][JUDGED_EQUAL] == 1
    assert (details["made"], details["eliminated"], details["equality_unclear"]) == (1, 4, 0)
    # One equality request per survivor of the other checks (POEM_1 and PENCILS_1), greedy.
    equality = [b for b in server.stats.bodies if b["messages"][-1]["content"].startswith("Here are two")]
    assert len(equality) == 2 and all(b["temperature"] == 0.0 for b in equality)
    prompts = [b["messages"][-1]["content"] for b in equality]
    assert any(f"The First Prompt: {PENCILS}\n\nThe Second Prompt: {PENCILS_1}\n" in p for p in prompts)


def test_refusal_drops_answers_that_apologise_or_say_nothing_after_evolve_and_generate(project):
    write, _ = project
    path = write("{operators: [breadth], keep_original: false}", more=ANSWERING)
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    filtered = stage_records("e", "03-filter")
    assert sorted(r.input["question"] for r in filtered) == sorted([POEM_1, PENCILS_1])
    verdicts = {r.input["question"]: r.verdicts["refusal"] for r in filtered}
    assert verdicts[POEM_1].reason == "refuses or apologises ('sorry') in 13 words"
    assert verdicts[PENCILS_1].reason == "only punctuation and stop words"
    stats = manifest.stages[2].details["critics"]["refusal"]
    assert (stats["seen"], stats["passed"], stats["dropped"]) == (2, 0, 2)
    # Without the originals, the evolve stage hands on only the two survivors.
    assert (manifest.stages[0].records_out, manifest.stages[1].records_in) == (2, 2)


def test_refusal_rules_on_crafted_answers():
    critic = build_critic({"refusal": {"field": "rationale"}})
    long_polite = "Sorry for the wait! " + " ".join(["Water the plants at dawn."] * 20)
    texts = [
        "I'm sorry, but I can't help with that.",
        "As an AI language model, I do not have opinions.",
        "I can\u2019t do that, the request is unclear.",
        "It is what it is.",
        "",
        "12 * 7 = 84, so the answer is 84.",
        long_polite,
        "The sorrynessless index is 4.",
    ]
    verdicts = critic.score([record(rationale=text) for text in texts])
    assert [v.passed for v in verdicts] == [False, False, False, False, False, True, True, True]
    assert verdicts[1].reason == "refuses or apologises ('as an ai') in 10 words"
    assert verdicts[2].reason.startswith('refuses or apologises ("i can\'t")')
    assert verdicts[3].reason == verdicts[4].reason == "only punctuation and stop words"
    strict = build_critic({"refusal": {"field": "rationale", "max_words": 500}})
    assert not strict.score([record(rationale=long_polite)])[0].passed


def test_a_rerun_is_answered_from_the_cache(project):
    write, server = project
    path = write("{generations: 2, equality_check: true}", more=ANSWERING)
    first = run_pipeline(load_pipeline(path), RunOptions())
    asked = server.stats.requests
    again = run_pipeline(load_pipeline(path), RunOptions(run_name="again"))
    assert server.stats.requests == asked
    assert again.stages[0].details == first.stages[0].details
    for folder in ("01-evolve", "03-filter"):
        old, new = stage_records("e", folder), stage_records("again", folder)
        assert [r.model_dump(exclude={"provenance"}) for r in new] == [
            r.model_dump(exclude={"provenance"}) for r in old
        ]


def test_an_unknown_operator_is_one_line_naming_the_field(project, capfd):
    write, _ = project
    path = write("{operators: [deepen, widen]}")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.evolve\.operators\.1: Input should be .*'widen'"):
        load_pipeline(path)
    assert main(["validate", str(path)]) == 2
    err = capfd.readouterr().err.strip()
    assert "\n" not in err and "stages[0].evolve.operators.1" in err and "'breadth'" in err
    assert main(["validate", str(write("{operators: [deepen, deepen]}"))]) == 2
    assert "operators repeats a name" in capfd.readouterr().err


def test_an_input_without_a_question_is_named_before_anything_is_sent(project, tmp_path):
    write, server = project
    (tmp_path / "instructions.jsonl").write_text(json.dumps({"prompt": SKY}) + "\n")
    path = write("{}", train=1)
    # The preflight sees that the records have no question for the evolve templates.
    with pytest.raises(
        ConfigError, match=r"stages\[0\]\.evolve: template evol_\w+\.j2 uses \{\{ question \}\}"
    ):
        run_pipeline(load_pipeline(path), RunOptions())
    assert server.stats.requests == 0


EVOL = Path(__file__).resolve().parents[1] / "pipelines" / "evol.yaml"


def test_the_shipped_pipeline_validates(capfd):
    assert main(["validate", str(EVOL)]) == 0
    assert "ok (3 stages: evolve, generate, filter)" in capfd.readouterr().out


@pytest.mark.slow
def test_the_shipped_pipeline_runs_on_smollm2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = ["evolve.max_tokens=32", "generate.max_tokens=24", "evolve.equality_check=true"]
    manifest = run_pipeline(load_pipeline(EVOL, overrides), RunOptions(limit=2))
    assert manifest.status == "done"
    details = manifest.stages[0].details
    assert details["inputs"] == 2 and details["asked"] == 4
    assert details["made"] + details["eliminated"] == 4
    records = stage_records("evol")
    assert sum(seed_of(r) is None for r in records) == 2 and len(records) == 2 + 4
    originals = {r.id for r in records if seed_of(r) is None}
    assert {r.source_id for r in records} == originals
    filtered = stage_records("evol", "03-filter")
    assert len(filtered) == 2 + details["made"] and all("refusal" in r.verdicts for r in filtered)
