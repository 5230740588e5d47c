"""The self_instruct stage: Self-Instruct bootstrapping from the paper's 175 seed tasks.

The teacher is the scripted server. Its responder knows each of the stage's prompts by its template's
words and answers with crafted candidates, so every count, reason and prompt below is known in advance:
wave 1 offers seven new instructions of which two survive, wave 2 (whose prompt now shows those two)
offers three of which two survive, reaching the target of four.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.errors import ConfigError, StageError
from synthdistill.growth.instructions import seed_of
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.runs.folder import read_records
from synthdistill.stages.self_instruct.filters import rule_reason
from synthdistill.stages.self_instruct.generate import parse_numbered
from synthdistill.stages.self_instruct.instances import parse_input_first, parse_output_first
from synthdistill.stages.self_instruct.stage import SelfInstructConfig
from synthdistill.testing.scripted_server import ScriptedServer

REPO = Path(__file__).resolve().parents[1]

PIPELINE = """
name: si
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
data:
  source: {seeds}
  fields: {{question: instruction, instances: instances, is_classification: is_classification}}
  split: {{train: 175, test: 0}}
stages:
  - self_instruct: {{target: 4, max_requests: 10}}
"""

FIELDS = {"question": "instruction", "instances": "instances", "is_classification": "is_classification"}

GOOD_1 = "Name three musicians who changed how the guitar is played and say what each one did."
GOOD_2 = "Decide whether the headline is clickbait or a plain news headline. Answer clickbait or plain."
GOOD_3 = "Suggest a weekly budget for a student who rents a room in a shared flat."
GOOD_5 = "Explain why bread goes stale faster in the fridge than on the counter."
GOOD_6 = "Write a short thank-you note to a neighbour who watered your plants."
TOO_LONG = "Tell a story about " + " ".join(["a very long journey"] * 40) + "."
KEYWORD = "Describe the map of your town to a visitor who has never been there."
PUNCTUATION = "(Optional) List the planets of the solar system in order of size."
# seed_task_1 is "What is the relation between the given pairs?": ROUGE-L 0.889 against it.
NEAR_SEED = "What is the relation between the given pairs of words?"
# Against GOOD_1: the same words but one, ROUGE-L above 0.9.
NEAR_GOOD_1 = "Name three musicians who changed how the piano is played and say what each one did."

CLICKBAIT = (
    "Class label: clickbait\nHeadline: You won't believe this trick.\n"
    "Class label: plain\nHeadline: Rain due on Monday."
)

WAVE_1 = [GOOD_1, TOO_LONG, KEYWORD, PUNCTUATION, NEAR_SEED, GOOD_2, GOOD_3]
WAVE_2 = [GOOD_5, NEAR_GOOD_1, GOOD_6]


def respond(messages, params, index):
    """The teacher: which of the stage's four prompts this is, told by its template's words."""
    system, user = messages[0]["content"], messages[-1]["content"]
    if user.startswith("Come up with a series of tasks:"):
        wave = WAVE_2 if GOOD_1 in user else WAVE_1
        return "\n".join(f"{9 + i}. {text}" for i, text in enumerate(wave))
    task = user.removeprefix("Task: ").split("\n")[0]
    if user.endswith("Is it classification?"):
        return "Yes" if task == GOOD_2 else "No"
    if system.startswith("Given the classification task definition"):
        return CLICKBAIT
    if system.startswith("Come up with examples for the following tasks"):
        if task == GOOD_3:
            return "I am not sure what to write here."
        return f"Input: an example for {task[:20]}\nOutput: the answer for {task[:20]}"
    raise AssertionError(f"a prompt the stage should not send: {user[:80]!r}")


@pytest.fixture
def seeds_path(shared_data: Path) -> Path:
    path = shared_data / "self_instruct" / "seed_tasks.jsonl"
    if not path.is_file():
        pytest.skip(f"Self-Instruct seed tasks not found at {path}")
    return path


@pytest.fixture
def project(tmp_path, monkeypatch, seeds_path):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer(record_bodies=10_000) as server:
        server.responder = respond
        path = tmp_path / "si.yaml"
        path.write_text(PIPELINE.format(url=server.url, seeds=seeds_path))
        yield path, server


def records_of(tmp_path: Path) -> list:
    return list(read_records(tmp_path / "outputs/si/01-self_instruct/records.jsonl"))


def seed_tasks(seeds_path: Path) -> dict[str, dict]:
    return {row["instruction"]: row for row in map(json.loads, seeds_path.read_text().splitlines())}


def seed_ids(seeds_path: Path) -> dict[str, str]:
    """Seed instruction -> the id of its record, as the data source makes it."""
    from synthdistill.config import DataConfig
    from synthdistill.data import load_splits

    config = DataConfig(source=str(seeds_path), fields=FIELDS, split={"train": 175, "test": 0})
    train, _ = load_splits(config, seed=0, base_dir=seeds_path.parent)
    return {r.input["question"]: r.id for r in train}


def generation_prompts(server: ScriptedServer) -> list[list[str]]:
    """The numbered instructions of each generation prompt the server saw, in arrival order."""
    prompts = []
    for body in server.stats.bodies:
        user = body["messages"][-1]["content"]
        if user.startswith("Come up with a series of tasks:"):
            prompts.append(re.findall(r"^\d+\. (.+)$", user, re.MULTILINE))
    return prompts


def test_kept_and_dropped_counts_and_reasons_are_exact(project, tmp_path, seeds_path):
    path, _ = project
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    stage = manifest.stages[0]
    assert (stage.records_in, stage.records_out) == (175, 4)
    assert stage.details["prompts_sent"] == 2 and stage.details["waves"] == 2
    assert stage.details["candidates"] == 10 and stage.details["kept"] == 4
    assert stage.details["dropped"] == {
        "keyword": 1,
        "near_duplicate": 2,
        "no_instances": 1,
        "punctuation": 1,
        "too_long": 1,
    }
    assert stage.details["classification_share"] == 0.25
    assert stage.details["stopped_by"] == "target"

    records = records_of(tmp_path)
    by_instruction = {r.input["instruction"]: r for r in records}
    assert [r.input["instruction"] for r in records if r.kept] == [GOOD_1, GOOD_2, GOOD_5, GOOD_6]
    reasons = {text: r.verdicts["self_instruct"].reason for text, r in by_instruction.items() if not r.kept}
    assert reasons[TOO_LONG] == "too long: 164 words, more than 150"
    assert reasons[KEYWORD] == "mentions 'map', which a text-only model cannot handle"
    assert reasons[PUNCTUATION] == "starts with punctuation"
    assert reasons[GOOD_3] == "no instances: no Output: in the reply"
    # A near-duplicate names the record it repeats: the seed, or the kept instruction's own record.
    relation = seed_ids(seeds_path)["What is the relation between the given pairs?"]
    assert reasons[NEAR_SEED] == f"near-duplicate of record {relation} (ROUGE-L 0.889 > 0.7)"
    assert reasons[NEAR_GOOD_1].startswith(f"near-duplicate of record {by_instruction[GOOD_1].id} (ROUGE-L")
    assert sum(not r.kept for r in records) == 6
    assert all(r.dropped_by == "self_instruct" for r in records if not r.kept)


def test_each_prompt_shows_eight_instructions_six_seeds_and_two_generated_once_there_are(
    project, tmp_path, seeds_path
):
    path, server = project
    run_pipeline(load_pipeline(path), RunOptions())
    seeds = set(seed_tasks(seeds_path))
    first, second = generation_prompts(server)
    assert len(first) == 8 and set(first) <= seeds
    assert len(second) == 8 and {GOOD_1, GOOD_2} <= set(second)
    assert len(set(second) & seeds) == 6
    user = next(b for b in server.stats.bodies if "series of tasks" in b["messages"][-1]["content"])
    assert user["messages"][-1]["content"].endswith("\n9.")


def test_classification_tasks_get_the_output_first_prompt_and_others_input_first(project, tmp_path):
    path, server = project
    run_pipeline(load_pipeline(path), RunOptions())
    asked: dict[str, str] = {}
    for body in server.stats.bodies:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if system.startswith("Given the classification task definition"):
            asked[user.removeprefix("Task: ")] = "output_first"
        elif system.startswith("Come up with examples"):
            asked[user.removeprefix("Task: ")] = "input_first"
    assert asked == {
        GOOD_1: "input_first",
        GOOD_2: "output_first",
        GOOD_3: "input_first",
        GOOD_5: "input_first",
        GOOD_6: "input_first",
    }
    kept = {r.input["instruction"]: r for r in records_of(tmp_path) if r.kept}
    clickbait = kept[GOOD_2]
    assert clickbait.input["is_classification"] is True
    assert clickbait.input["instances"] == [
        {"input": "Headline: You won't believe this trick.", "output": "clickbait"},
        {"input": "Headline: Rain due on Monday.", "output": "plain"},
    ]
    assert clickbait.input["question"] == f"{GOOD_2}\n\nHeadline: You won't believe this trick."
    assert clickbait.answer == "clickbait"
    assert kept[GOOD_1].input["is_classification"] is False
    assert kept[GOOD_1].answer == f"the answer for {GOOD_1[:20]}"


def test_every_new_instruction_records_its_seed_and_its_eight_examples(project, tmp_path, seeds_path):
    path, _ = project
    run_pipeline(load_pipeline(path), RunOptions())
    records = records_of(tmp_path)
    kept = {r.input["instruction"]: r for r in records if r.kept}
    seed_questions = set(seed_tasks(seeds_path))
    for record in records:
        lineage = seed_of(record)
        assert lineage is not None and lineage["operator"] == "self_instruct"
        assert record.parent_id == lineage["id"] and lineage["question"] in seed_questions
        assert len(record.input["examples"]) == 8 and lineage["id"] in record.input["examples"]
        assert lineage["round"] in (1, 2)
    # The first of a wave-2 prompt's examples that is a seed seeded it; its two generated ones are there.
    late = kept[GOOD_5]
    assert {kept[GOOD_1].id, kept[GOOD_2].id} <= set(late.input["examples"])
    seeds_first = [i for i in late.input["examples"] if i not in (kept[GOOD_1].id, kept[GOOD_2].id)]
    assert late.input["seed"]["id"] == seeds_first[0]


def test_a_rerun_replays_every_prompt_from_the_cache(project, tmp_path):
    path, server = project
    run_pipeline(load_pipeline(path), RunOptions())
    first = [r.model_dump(exclude={"provenance"}) for r in records_of(tmp_path)]
    sent = server.stats.requests
    manifest = run_pipeline(load_pipeline(path), RunOptions(force=True))
    assert manifest.stages[0].status == "done"
    assert server.stats.requests == sent
    assert [r.model_dump(exclude={"provenance"}) for r in records_of(tmp_path)] == first


def test_keep_seeds_hands_the_seeds_on_in_the_same_shape(project, tmp_path):
    path, _ = project
    manifest = run_pipeline(load_pipeline(path, ["self_instruct.keep_seeds=true"]), RunOptions())
    assert manifest.stages[0].records_out == 175 + 4
    relation = next(r for r in records_of(tmp_path) if r.input["question"].startswith("What is the relation"))
    assert (
        relation.input["question"]
        == "What is the relation between the given pairs?\n\nNight : Day :: Right : Left"
    )
    assert relation.answer == "The relation between the given pairs is that they are opposites."
    assert seed_of(relation) is None


def test_max_requests_stops_the_loop_short_of_the_target(project):
    path, _ = project
    manifest = run_pipeline(
        load_pipeline(path, ["self_instruct.max_requests=1", "self_instruct.target=50"]), RunOptions()
    )
    details = manifest.stages[0].details
    assert details["prompts_sent"] == 1 and details["kept"] == 2 and details["stopped_by"] == "max_requests"


def test_waves_grow_to_the_yield_seen_so_far_up_to_the_concurrency(project):
    path, server = project
    manifest = run_pipeline(load_pipeline(path, ["self_instruct.target=10"]), RunOptions())
    details = manifest.stages[0].details
    # Wave 1 sends the 2 prompts that 10 need at full yield (8 a prompt) and keeps 2, 1 a prompt; wave 2
    # would need 8 and sends the concurrency's 4 (keeping 2 more); wave 3 the 4 that max_requests leaves.
    assert (details["waves"], details["prompts_sent"], details["kept"]) == (3, 10, 4)
    assert len(generation_prompts(server)) == 10
    assert details["stopped_by"] == "max_requests"


def test_a_bad_option_is_one_line_naming_the_field(project, capfd):
    path, _ = project
    with pytest.raises(ConfigError, match=r"stages\[0\]\.self_instruct\.per_request"):
        load_pipeline(path, ["self_instruct.per_request=0"])
    assert main(["validate", str(path), "--set", "self_instruct.min_words=200"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and "self_instruct" in err and "min_words (200) is above max_words" in err


def test_seeds_without_instances_are_refused_naming_the_field(project, tmp_path):
    path, server = project
    bad = ["data.fields={question: instruction, is_classification: is_classification}"]
    with pytest.raises(
        StageError, match=r"`instances` must be a list.*data\.fields \(instances: instances\)"
    ):
        run_pipeline(load_pipeline(path, bad), RunOptions())
    assert server.stats.requests == 0


def test_the_flag_and_the_instances_of_a_seed_file_arrive_as_json_gave_them(seeds_path, tmp_path):
    from synthdistill.config import DataConfig
    from synthdistill.data import load_splits

    config = DataConfig(source=str(seeds_path), fields=FIELDS, split={"train": 175, "test": 0})
    train, _ = load_splits(config, seed=0, base_dir=tmp_path)
    assert sum(r.input["is_classification"] is True for r in train) == 26
    assert all(isinstance(r.input["instances"], list) for r in train)


def test_numbered_list_parsing_reads_continuations_and_drops_preambles():
    assert parse_numbered("Sort the list.\n10. Name a fruit.", 9) == ["Sort the list.", "Name a fruit."]
    assert parse_numbered("Here are more tasks:\n9. sort the list.\n10. Name a fruit.", 9) == [
        "Sort the list.",
        "Name a fruit.",
    ]
    assert parse_numbered("9. **Plan a   picnic\nfor four.**", 9) == ["Plan a picnic for four."]
    assert parse_numbered("1. 1. Sort the list.\n2. 2. name a fruit.", 9) == [
        "Sort the list.",
        "Name a fruit.",
    ]


def test_rules_follow_the_paper():
    config = SelfInstructConfig()
    assert rule_reason("Sort it.", config) == ("too_short", "too short: 2 words, fewer than 3")
    assert (
        rule_reason("Go to the shop and buy milk.", config)[1]
        == "mentions 'go to', which a text-only model cannot handle"
    )
    assert rule_reason("Write a program that reverses a string.", config) is None
    assert rule_reason("Ünderline the verbs in the sentence.", config)[0] == "non_ascii"
    assert rule_reason("Mapping the verbs of a sentence.", config) is None  # whole words only


def test_instance_parsing_drops_the_cut_off_the_unfinished_and_the_contradictory():
    text = "Example 1\nInput: 2, 1\nOutput: 1, 2\nExample 2\nInput: 5, 3\nOutput: 3, 5\nExample 3\nInput: 9"
    assert parse_input_first(text, True, 5) == (
        [{"input": "2, 1", "output": "1, 2"}, {"input": "5, 3", "output": "3, 5"}],
        "",
    )
    assert parse_input_first("Output: Paris.", False, 5) == ([{"input": "", "output": "Paris."}], "")
    assert parse_input_first("Input: a\nOutput: x\nInput: a\nOutput: y", False, 5)[1] == (
        "one input was given different outputs"
    )
    assert parse_output_first("Class label: Yes", True, 5) == (
        [],
        "the only instance was cut off by max_tokens",
    )
    assert parse_output_first("Label: yes", False, 5) == ([], "no Class label: in the reply")


def test_the_shipped_pipeline_validates(capfd):
    assert main(["validate", str(REPO / "pipelines" / "self_instruct.yaml")]) == 0
    assert "ok (1 stages: self_instruct)" in capfd.readouterr().out


@pytest.mark.slow
def test_the_shipped_pipeline_runs_on_the_embedded_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = [
        "self_instruct.target=2",
        "self_instruct.max_requests=2",
        "self_instruct.max_tokens=60",
        "self_instruct.instance_max_tokens=32",
    ]
    manifest = run_pipeline(load_pipeline(REPO / "pipelines" / "self_instruct.yaml", small), RunOptions())
    details = manifest.stages[0].details
    assert manifest.status == "done" and details["prompts_sent"] >= 1
    assert details["kept"] + sum(details["dropped"].values()) == details["candidates"] > 0
    records = list(read_records(tmp_path / "outputs/self-instruct/01-self_instruct/records.jsonl"))
    assert all(r.input["instances"] and r.answer is not None for r in records if r.kept)
    assert all(r.verdicts["self_instruct"].reason for r in records if not r.kept)
