"""The select stage: a seeded random sample of exactly the budget; coverage that takes one of each group of
near-identical questions before a second of any; the hardest first, by the embedded student's loss (a
gibberish target above fluent ones) or by the teachers' disagreement; mix, coverage among the hardest; the
stage in a pipeline through the scripted teacher, dropped records saying why and the manifest saying how;
and the bad inputs refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.data import load_splits
from synthdistill.records import Record
from synthdistill.runs.context import RunContext, StageContext
from synthdistill.runs.folder import Manifest, RunFolder, read_records
from synthdistill.stages.select.coverage import k_center
from synthdistill.stages.select.stage import run
from synthdistill.templates import Templates
from synthdistill.testing import ScriptedServer

# Three groups of rephrasings of one question each; the embedder puts each group's members close together.
GROUPS = {
    "france": [
        "What is the capital of France?",
        "Name the capital city of France.",
        "Which city is the capital of France?",
    ],
    "plants": ["How do plants make food from sunlight?", "Explain how photosynthesis feeds a plant."],
    "product": ["What is 17 times 3?", "Compute 17 multiplied by 3.", "Multiply 17 by 3."],
}


def record(question: str, rationale: str = "", answer: str = "1", agreement: float | None = None) -> Record:
    """A record as the filter hands it on: a question with its gold answer, a rationale and an answer."""
    parent = Record.from_input({"question": question, "answer": answer})
    child = parent.child(rationale=rationale or f"Working out: {question}", answer=answer)
    return child.model_copy(update={"agreement": agreement})


def context(folder: Path, options: dict[str, Any], seed: int = 0) -> StageContext:
    """A real StageContext for a select stage with `options`, in a pipeline seeded with `seed`."""
    path = folder / f"select-{seed}.yaml"
    pipeline = {
        "name": "select-test",
        "seed": seed,
        "data": {"source": "builtin:arith", "split": {"train": 4, "test": 0}},
        "stages": [{"self_consistency": {}}, {"select": options}],
    }
    path.write_text(yaml.safe_dump(pipeline))
    loaded = load_pipeline(path)
    ctx = RunContext(
        pipeline=loaded,
        run=RunFolder(folder / "outputs" / "select-test"),
        templates=Templates.for_pipeline(loaded.base_dir),
        test_records=[],
        device="cpu",
    )
    spec = loaded.stages[1]
    return StageContext(ctx, spec, folder / spec.folder)


def kept_ids(records: list[Record]) -> list[str]:
    return [r.id for r in records if r.kept]


def test_random_keeps_exactly_the_budget_drawn_by_the_seed(tmp_path):
    pool = [record(f"What is {i} plus {i}?") for i in range(20)]
    out = list(run(pool, context(tmp_path, {"budget": 5})))
    assert [r.id for r in out] == [r.id for r in pool]  # every record handed on, in order
    assert len(kept_ids(out)) == 5
    assert kept_ids(list(run(pool, context(tmp_path, {"budget": 5})))) == kept_ids(out)
    assert kept_ids(list(run(pool, context(tmp_path, {"budget": 0.25})))) == kept_ids(out)
    assert kept_ids(list(run(pool, context(tmp_path, {"budget": 5}, seed=1)))) != kept_ids(out)
    dropped = [r for r in out if not r.kept]
    assert {r.dropped_by for r in dropped} == {"select"}
    assert dropped[0].verdicts["select"].reason == "not in the random sample of 5 of 20 drawn with seed 0"
    assert all(r.verdicts["select"].passed for r in out if r.kept)


def test_a_share_rounds_to_the_nearest_record_and_keeps_at_least_one(tmp_path):
    pool = [record(f"What is {i} plus 1?") for i in range(7)]
    assert len(kept_ids(list(run(pool, context(tmp_path, {"budget": 0.5}))))) == 4
    assert len(kept_ids(list(run(pool, context(tmp_path, {"budget": 0.01}))))) == 1
    assert len(kept_ids(list(run(pool, context(tmp_path, {"budget": 1.0}))))) == 7


def test_k_center_covers_every_group_before_a_second_of_any_and_ties_go_to_the_earlier_point():
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:3]
    # Five near copies of each of three directions, then an exact repeat of the first point.
    points = np.concatenate([centre + rng.normal(0, 0.01, (5, 4)) for centre in centres])
    points = np.concatenate([points, points[:1]])
    vectors = points / np.linalg.norm(points, axis=1, keepdims=True)
    coverage = k_center(vectors, 6)
    groups = [pick // 5 if pick < 15 else 0 for pick in coverage.picks]
    assert sorted(groups[:3]) == [0, 1, 2]
    assert coverage.gains[1] > 0.9 and max(coverage.gains[3:]) < 0.1
    assert all(coverage.nearest[i] // 5 == i // 5 for i in range(15))
    # The repeat is covered exactly as the point it repeats.
    assert (coverage.nearest[15], coverage.distance[15]) == (coverage.nearest[0], coverage.distance[0])
    assert k_center(vectors, 100).picks[-1] == 15  # the repeat covers nothing new: it is picked last


def test_disagreement_keeps_the_least_agreed_records_and_breaks_ties_by_the_seed(tmp_path):
    agreements = [1.0, 0.25, 0.75, 0.25, 0.5, 1.0]
    pool = [record(f"What is {i} plus 2?", agreement=a) for i, a in enumerate(agreements)]
    ctx = context(tmp_path, {"budget": 3, "method": "difficulty", "difficulty": "disagreement"})
    out = list(run(pool, ctx))
    assert [r.kept for r in out] == [False, True, False, True, True, False]
    assert out[1].verdicts["select"].score == 0.75
    assert "among the 3 hardest" in out[1].verdicts["select"].reason
    assert "easier than the 3 hardest (cut 0.500)" in out[2].verdicts["select"].reason
    assert ctx.details["scores"]["kept_mean"] == pytest.approx((0.75 + 0.75 + 0.5) / 3, abs=1e-4)
    # A tie at the cut goes the same way every time, by the seed's draw.
    tied = {"budget": 1, "method": "difficulty", "difficulty": "disagreement"}
    assert kept_ids(list(run(pool, context(tmp_path, tied)))) == kept_ids(
        list(run(pool, context(tmp_path, tied)))
    )


def test_disagreement_without_an_agreement_names_the_record_and_the_fix(tmp_path):
    from synthdistill.errors import StageError

    pool = [record("What is 1 plus 1?", agreement=0.5), record("What is 2 plus 2?")]
    with pytest.raises(StageError, match=f"record {pool[1].id}.*put self_consistency before select"):
        list(
            run(pool, context(tmp_path, {"budget": 1, "method": "difficulty", "difficulty": "disagreement"}))
        )


@pytest.mark.slow
def test_diversity_keeps_one_of_each_group_of_rephrasings_before_a_second_of_any(tmp_path):
    pool = [record(q) for questions in GROUPS.values() for q in questions]
    group_of = {r.id: name for r in pool for name, qs in GROUPS.items() if r.input["question"] in qs}
    ctx = context(tmp_path, {"budget": 3, "method": "diversity"})
    out = list(run(pool, ctx))
    assert sorted(group_of[i] for i in kept_ids(out)) == ["france", "plants", "product"]
    for r in out:
        verdict = r.verdicts["select"]
        if r.kept:
            assert verdict.reason.startswith("k-center pick ")
        else:
            # A dropped rephrasing is covered by the kept member of its own group.
            nearest = verdict.reason.split("covered by kept record ")[1].split()[0]
            assert group_of[nearest] == group_of[r.id] and verdict.score < 0.5
    assert ctx.details["coverage"]["max_distance_to_kept"] < 0.5
    # With room for more, the second of a group comes only after one of each.
    five = list(run(pool, context(tmp_path, {"budget": 5, "method": "diversity"})))
    order = {int(r.verdicts["select"].reason.split()[2]): group_of[r.id] for r in five if r.kept}
    assert sorted(order[k] for k in (1, 2, 3)) == ["france", "plants", "product"]


@pytest.mark.slow
def test_mix_spreads_its_picks_over_the_hard_where_difficulty_alone_takes_one_group(tmp_path):
    # The france group is the hardest (least agreed), plants next, the product group easy.
    agreement = {"france": 0.25, "plants": 0.5, "product": 1.0}
    pool = [record(q, agreement=agreement[name]) for name, qs in GROUPS.items() for q in qs]
    group_of = {r.id: name for r in pool for name, qs in GROUPS.items() if r.input["question"] in qs}
    options = {"budget": 2, "difficulty": "disagreement"}
    hardest = list(run(pool, context(tmp_path, {**options, "method": "difficulty"})))
    assert [group_of[i] for i in kept_ids(hardest)] == ["france", "france"]
    ctx = context(tmp_path, {**options, "method": "mix"})
    mixed = list(run(pool, ctx))
    # The hardest record first, then the plants group: new ground that is harder than the product group's.
    assert [group_of[i] for i in kept_ids(mixed)] == ["france", "plants"]
    first = next(r for r in mixed if r.kept)
    assert first.verdicts["select"].reason.endswith("mix pick 1 of 2 (0.5 on difficulty): the hardest record")
    easy = next(r for r in mixed if group_of[r.id] == "product")
    assert (
        easy.verdicts["select"].score == 0.0
        and "; not picked: nearest kept record " in easy.verdicts["select"].reason
    )
    # All weight on coverage, with room for three, is one of each group, from the hardest record.
    spread = list(run(pool, context(tmp_path, {**options, "budget": 3, "method": "mix", "mix_weight": 0.0})))
    assert sorted(group_of[i] for i in kept_ids(spread)) == ["france", "plants", "product"]
    # All weight on difficulty is difficulty alone.
    alone = list(run(pool, context(tmp_path, {**options, "method": "mix", "mix_weight": 1.0})))
    assert kept_ids(alone) == kept_ids(hardest)


@pytest.mark.slow
def test_difficulty_by_the_students_loss_ranks_a_gibberish_target_above_fluent_ones(tmp_path):
    from model_helpers import make_adapter

    fluent = [
        record(f"What is {a} plus {b}?", f"{a} + {b} = {a + b}.", str(a + b))
        for a, b in [(2, 3), (4, 4), (6, 1)]
    ]
    gibberish = record("What is 5 plus 2?", "zq xv blorf kk ptang wibble quux snarf glorp", "7")
    pool = [fluent[0], gibberish, *fluent[1:]]
    ctx = context(tmp_path, {"budget": 1, "method": "difficulty"})
    out = list(run(pool, ctx))
    assert kept_ids(out) == [gibberish.id]
    losses = [r.verdicts["select"].score for r in out]
    assert losses[1] > 2 * max(losses[0], *losses[2:])
    assert ctx.details["scored_by"] == "smollm2-135m" and ctx.details["difficulty"] == "loss"
    assert out[0].verdicts["select"].reason.startswith("student loss ")
    # After a train stage, the trained student scores: here an adapter that changes what the model says.
    trained = context(tmp_path, {"budget": 1, "method": "difficulty"})
    trained.artifacts["student_model"] = make_adapter(tmp_path / "student")
    scored = list(run(pool, trained))
    assert trained.details["scored_by"] == str(tmp_path / "student")
    assert [r.verdicts["select"].score for r in scored] != losses


PIPELINE = """
name: sel
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
data: {{source: builtin:arith, split: {{train: 8, test: 0}}}}
stages:
  - generate: {{template: cot_rationale.j2, n: 4, temperature: 0.7}}
  - self_consistency: {{keep: all}}
  - filter: {{critics: [answer_match]}}
  - select: {{budget: {budget}, method: mix, difficulty: disagreement}}
"""


@pytest.mark.slow
def test_in_a_pipeline_select_writes_why_each_record_was_kept_or_dropped_and_the_manifest_says_how(
    tmp_path, monkeypatch, capfd
):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer() as server:
        path = tmp_path / "sel.yaml"
        path.write_text(PIPELINE.format(url=server.url, budget=0.25))
        train, _ = load_splits(load_pipeline(path).config.data, seed=0, base_dir=tmp_path)
        gold = {r.input["question"]: int(r.input["answer"]) for r in train}
        right = {q: 1 + k % 4 for k, q in enumerate(gold)}  # problem k: 1 to 4 of its 4 samples right

        def respond(messages: list[dict[str, str]], params: dict[str, Any], index: int) -> str:
            question = messages[-1]["content"]
            answer = gold[question] if index < right[question] else gold[question] + 1 + index
            return f"Step {index}: working it out gives {answer}.\nThe answer is {answer}."

        server.responder = respond
        assert main(["run", str(path)]) == 0
        folder = tmp_path / "outputs" / "sel"
        pool = sum(right.values())
        records = list(read_records(folder / "04-select" / "records.jsonl"))
        assert len(records) == pool == 20
        kept = [r for r in records if r.kept]
        assert len(kept) == 5  # a quarter of the pool
        assert all(r.verdicts["select"].reason and r.verdicts["select"].score is not None for r in records)
        assert {r.dropped_by for r in records if not r.kept} == {"select"}
        manifest = Manifest.model_validate_json((folder / "manifest.json").read_text())
        details = manifest.stages[3].details
        assert details["method"] == "mix" and details["difficulty"] == "disagreement"
        assert (details["budget"], details["budget_asked"], details["pool"]) == (5, 0.25, pool)
        assert details["kept"] == 5
        # Hard and spread out: the hardest record first, the kept harder on average, several questions.
        first = next(r for r in kept if " mix pick 1 of 5 " in r.verdicts["select"].reason)
        assert first.verdicts["select"].score == 0.75
        assert details["scores"]["kept_mean"] > details["scores"]["dropped_mean"]
        assert len({r.input["question"] for r in kept}) >= 4
        assert set(details["coverage"]) >= {"embedder", "max_distance_to_kept"}
        assert manifest.stages[3].records_out == len(kept)
        # The same pipeline under another run name keeps the same records.
        assert main(["run", str(path), "--run-name", "again"]) == 0
        again = read_records(tmp_path / "outputs" / "again" / "04-select" / "records.jsonl")
        assert [r.id for r in again if r.kept] == [r.id for r in kept]
        # A budget above the pool stops the run in one line that names both numbers.
        path.write_text(PIPELINE.format(url=server.url, budget=pool + 1))
        capfd.readouterr()
        assert main(["run", str(path), "--run-name", "over"]) == 2
        line = capfd.readouterr().err.strip()
        assert "\n" not in line and f"budget {pool + 1} (stages[3].select.budget" in line
        assert f"above the {pool} records that reached select" in line


BAD = [
    ({"budget": 0}, "stages[1].select.budget", "keeps no record"),
    ({"budget": -0.5}, "stages[1].select.budget", "neither a share"),
    ({"budget": 1.5}, "stages[1].select.budget", "neither a share"),
    ({"budget": True}, "stages[1].select.budget", "a number of records"),
    ({"budget": 4, "method": "best"}, "stages[1].select.method", "'random', 'diversity'"),
    ({"budget": 4, "mix_weight": 0.3}, "stages[1].select", "`mix_weight` is read by method mix only"),
    (
        {"budget": 4, "method": "mix", "mix_weight": 2},
        "stages[1].select.mix_weight",
        "less than or equal to 1",
    ),
    ({"budget": 4, "method": "diversity", "model": "x"}, "stages[1].select", "`model` is read only when"),
    (
        {"budget": 4, "method": "mix", "difficulty": "disagreement"},
        "stages[1].select",
        "no self_consistency stage comes before select",
    ),
]


@pytest.mark.parametrize(("options", "key", "words"), BAD, ids=[str(case[0]) for case in BAD])
def test_a_bad_select_config_is_one_line_exit_2_and_nothing_is_sent(
    tmp_path, monkeypatch, capfd, options, key, words
):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer() as server:
        pipeline = {
            "name": "bad",
            "teacher": {"backend": "openai", "model": "scripted", "api_base": server.url, "max_retries": 0},
            "data": {"source": "builtin:arith", "split": {"train": 6, "test": 0}},
            "stages": [{"generate": {"template": "cot_rationale.j2", "n": 1}}, {"select": options}],
        }
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(pipeline))
        for command in ("validate", "run"):
            capfd.readouterr()
            assert main([command, "bad.yaml"]) == 2
            err = capfd.readouterr().err.strip()
            assert err.count("\n") == 0 and err.startswith("synthdistill: error: bad.yaml: ")
            assert key in err and words in err, err
        assert server.stats.requests == 0
        assert not (tmp_path / "outputs" / "bad").exists()


def test_a_budget_above_the_data_stops_before_the_teacher_is_asked(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer() as server:
        pipeline = {
            "name": "over",
            "teacher": {"backend": "openai", "model": "scripted", "api_base": server.url, "max_retries": 0},
            "data": {"source": "builtin:arith", "split": {"train": 6, "test": 0}},
            "stages": [{"select": {"budget": 50}}, {"generate": {"template": "cot_rationale.j2", "n": 1}}],
        }
        (tmp_path / "over.yaml").write_text(yaml.safe_dump(pipeline))
        capfd.readouterr()
        assert main(["run", "over.yaml"]) == 2
        err = capfd.readouterr().err.strip()
        assert err.count("\n") == 0 and "over.yaml: stages[0].select.budget: budget 50" in err
        assert "above the 6 records at most" in err and "budget: 0.5" in err
        # After generate (4 samples) and self_consistency, at most 4 rationales an item can reach it.
        pipeline["stages"] = [
            {"generate": {"template": "cot_rationale.j2", "n": 4}},
            {"self_consistency": {"keep": "all"}},
            {"filter": {"critics": ["answer_match"]}},
            {"select": {"budget": 25}},
        ]
        (tmp_path / "over.yaml").write_text(yaml.safe_dump(pipeline))
        assert main(["run", "over.yaml"]) == 2
        err = capfd.readouterr().err.strip()
        assert "stages[3].select.budget: budget 25 is above the 24 records at most" in err
        pipeline["stages"][-1] = {"select": {"budget": 24}}
        (tmp_path / "over.yaml").write_text(yaml.safe_dump(pipeline))
        assert main(["validate", "over.yaml"]) == 0
        assert server.stats.requests == 0
