"""Running pipelines against a real OpenAI-compatible server: run folder, skip, re-run and resume.

The teacher is the scripted server on 127.0.0.1 answering through the openai backend, so these tests
exercise the real HTTP path; its responder knows the gold answers and gets sample 0 right.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthdistill.config import load_pipeline
from synthdistill.data import load_splits
from synthdistill.errors import RunError, TeacherError
from synthdistill.pipeline import RunOptions, run_pipeline
from synthdistill.runs.folder import read_records
from synthdistill.testing.scripted_server import ScriptedServer

PIPELINE = """
name: t
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}", max_concurrency: 4, max_retries: 0}}
data: {{source: builtin:arith, split: {{train: 12, test: 4}}}}
stages:
  - generate: {{template: cot_rationale.j2, n: 3, temperature: 0.7}}
  - self_consistency: {{keep: all}}
  - filter: {{critics: [answer_match]}}
"""


class ArithResponder:
    """Right on sample 0, off by one on the others; counts what it answered."""

    def __init__(self, pipeline_path: Path) -> None:
        pipeline = load_pipeline(pipeline_path)
        train, _ = load_splits(pipeline.config.data, seed=0, base_dir=pipeline.base_dir)
        self.gold = {r.input["question"]: int(r.input["answer"]) for r in train}
        self.calls = 0

    def __call__(self, messages, params, index):
        self.calls += 1
        answer = self.gold[messages[-1]["content"]] + (0 if index == 0 else index)
        return f"Adding it up gives {answer}.\nThe answer is {answer}."


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder holding the pipeline, its prompts (copied), and outputs/."""
    monkeypatch.chdir(tmp_path)
    server = ScriptedServer()
    server.start()
    path = tmp_path / "pipelines" / "t.yaml"
    path.parent.mkdir()
    path.write_text(PIPELINE.format(url=server.url))
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    repo_prompts = Path(__file__).resolve().parents[1] / "prompts"
    (prompts / "cot_rationale.j2").write_text((repo_prompts / "cot_rationale.j2").read_text())
    server.responder = ArithResponder(path)
    yield path, server
    server.stop()


def run(path: Path, *overrides: str, **options):
    return run_pipeline(load_pipeline(path, list(overrides)), RunOptions(**options))


def test_run_writes_manifest_stage_files_and_dataset(project):
    path, server = project
    manifest = run(path)
    assert manifest.status == "done"
    assert [(s.name, s.status, s.records_in, s.records_out) for s in manifest.stages] == [
        ("generate", "done", 12, 12),
        ("self_consistency", "done", 12, 36),
        ("filter", "done", 36, 12),
    ]
    assert manifest.teacher.calls == server.stats.by_path["/v1/chat/completions"] == 12
    assert manifest.teacher.completion_tokens > 0
    on_disk = json.loads(Path("outputs/t/manifest.json").read_text())
    assert on_disk["teacher"]["calls"] == 12 and on_disk["stages"][2]["records_out"] == 12
    kept = list(read_records(Path("outputs/t/03-filter/records.jsonl"), kept_only=True))
    dropped = [r for r in read_records(Path("outputs/t/03-filter/records.jsonl")) if not r.kept]
    assert len(kept) == 12 and len(dropped) == 24
    assert all(r.dropped_by == "answer_match" and not r.verdicts["answer_match"].passed for r in dropped)
    from datasets import load_from_disk

    dataset = load_from_disk("outputs/t/dataset")
    assert len(dataset) == 12 and set(dataset["answer"]) == {r.answer for r in kept}


def test_second_run_makes_no_calls_and_skips_every_stage(project):
    path, server = project
    run(path)
    before = server.stats.requests
    manifest = run(path)
    assert server.stats.requests == before
    assert manifest.teacher.calls == 0
    assert [s.status for s in manifest.stages] == ["skipped"] * 3
    assert manifest.stages[2].records_out == 12


def test_changing_a_stage_config_reruns_it_and_later_stages_only(project):
    path, _server = project
    first = run(path)
    manifest = run(path, "self_consistency.keep=agreeing")
    assert [s.status for s in manifest.stages] == ["skipped", "done", "done"]
    assert manifest.teacher.calls == 0
    assert manifest.stages[2].fingerprint != first.stages[2].fingerprint


def test_a_teacher_setting_that_cannot_change_an_answer_reruns_nothing(project):
    path, _server = project
    first = run(path)
    manifest = run(path, "teacher.hedge_after=5")
    assert [s.status for s in manifest.stages] == ["skipped"] * 3
    assert [s.fingerprint for s in manifest.stages] == [s.fingerprint for s in first.stages]
    # The model is part of every teacher stage's fingerprint.
    assert run(path, "teacher.model=other").stages[0].status == "done"


def test_editing_the_template_reruns_generate_with_new_calls(project):
    path, _server = project
    run(path)
    template = path.parent.parent / "prompts" / "cot_rationale.j2"
    template.write_text(template.read_text().replace("short sentences", "brief sentences"))
    manifest = run(path)
    assert [s.status for s in manifest.stages] == ["done", "done", "done"]
    assert manifest.teacher.calls == 12 and manifest.teacher.cache_hits == 0
    # Each stage says why it ran again.
    assert [s.reason for s in manifest.stages] == [
        "template cot_rationale.j2 changed",
        "an earlier stage changed",
        "an earlier stage changed",
    ]


def test_cache_answers_a_fresh_run_folder(project):
    path, _server = project
    run(path)
    manifest = run(path, run_name="t2")
    assert manifest.teacher.calls == 0 and manifest.teacher.cache_hits == 12
    assert [s.status for s in manifest.stages] == ["done"] * 3


def test_failed_generate_resumes_without_repeating_finished_records(project):
    path, server = project
    responder = server.responder

    def failing_after_six(messages, params, index):
        if responder.calls >= 6 * 3:
            server.required_key = "locked"  # later requests get 401: a hard error that stops the run
        return responder(messages, params, index)

    server.responder = failing_after_six
    with pytest.raises(TeacherError):
        run(path)
    manifest = json.loads(Path("outputs/t/manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["stages"][0]["status"] == "failed"
    # The inputs finished before the failure were written when the stage stopped, to the stage's partial
    # file: the stage file itself is replaced only when the stage completes.
    assert not Path("outputs/t/01-generate/records.jsonl").exists()
    written = len(list(read_records(Path("outputs/t/01-generate/records.jsonl.partial"))))
    assert written >= 1
    server.required_key = None
    server.responder = responder
    server.reset_stats()
    resumed = run(path)
    assert resumed.status == "done"
    records = list(read_records(Path("outputs/t/01-generate/records.jsonl")))
    assert len(records) == 12 and len({r.id for r in records}) == 12
    assert not Path("outputs/t/01-generate/records.jsonl.partial").exists()
    # Written inputs are not asked again; what was paid for but not written came from the cache.
    assert resumed.teacher.calls + resumed.teacher.cache_hits == 12 - written
    assert server.stats.by_path["/v1/chat/completions"] <= 12 - 6


def test_limit_runs_the_first_items(project):
    path, _ = project
    manifest = run(path, limit=5)
    assert manifest.stages[0].records_in == 5


def test_api_key_reaches_the_server_but_no_file_of_the_run_or_cache(project, monkeypatch, synthdistill_home):
    path, server = project
    secret = "sk-test-RECOGNISABLE-4f2a9c"
    monkeypatch.setenv("TEACHER_KEY", secret)
    server.required_key = secret
    path.write_text(path.read_text().replace("max_retries: 0}", "max_retries: 0, api_key_env: TEACHER_KEY}"))
    # Some requests fail, so failed_requests.jsonl and the log hold error text too.
    server.rate_500 = 0.3
    from synthdistill.cli import main

    assert main(["run", str(path), "--debug"]) == 1
    assert server.stats.faults["401"] == 0 and server.stats.faults["500"] > 0
    files = [p for root in (Path("outputs"), synthdistill_home) for p in root.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"manifest.json", "failed_requests.jsonl", "run.log", "pipeline.yaml"} <= names
    assert any(p.suffix == ".sqlite" for p in files)
    for file in files:
        assert secret.encode() not in file.read_bytes(), f"the key leaked into {file}"


def test_another_pipeline_with_the_same_run_name_is_refused_unless_forced(project):
    path, _server = project
    run(path)
    other = path.with_name("other.yaml")
    other.write_text(path.read_text())
    with pytest.raises(RunError, match="--resume to reuse what fits, --force to start it over"):
        run(other)
    resumed = run(other, resume=True)
    assert [s.status for s in resumed.stages] == ["skipped"] * 3
    forced = run(other, force=True)
    assert [s.status for s in forced.stages] == ["done"] * 3 and forced.teacher.calls == 0


def test_a_stage_file_deleted_by_hand_is_made_again(project):
    path, _server = project
    run(path)
    Path("outputs/t/02-self_consistency/records.jsonl").unlink()
    manifest = run(path)
    assert [s.status for s in manifest.stages] == ["skipped", "done", "done"]
    assert manifest.stages[2].records_out == 12


def test_requests_failing_every_retry_are_listed_and_a_rerun_retries_only_those(project):
    path, server = project
    responder = server.responder
    broken = sorted(responder.gold)[:3]

    def failing_on_three(messages, params, index):
        if messages[-1]["content"] in broken:
            raise RuntimeError("the scripted teacher fails on this question")
        return responder(messages, params, index)

    server.responder = failing_on_three
    manifest = run(path)
    assert manifest.status == "done" and manifest.teacher.failures == 3
    lines = [json.loads(line) for line in Path("outputs/t/failed_requests.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and {line["stage"] for line in lines} == {"01-generate"}
    assert all("HTTP 500" in line["reason"] for line in lines)
    assert sorted(line["request"]["messages"][-1]["content"] for line in lines) == broken
    assert manifest.stages[2].records_out == 12 - 3

    server.responder = responder
    server.reset_stats()
    again = run(path)
    assert server.stats.by_path["/v1/chat/completions"] == 3
    assert again.teacher.failures == 0 and again.stages[2].records_out == 12
    assert not Path("outputs/t/failed_requests.jsonl").exists()


def test_max_cost_usd_stops_cleanly_and_a_higher_cap_goes_on(project, capfd):
    from synthdistill.cli import main

    path, server = project
    price = ["--set", "teacher.price={input_per_mtok: 1, output_per_mtok: 1}"]
    code = main(["run", str(path), *price, "--set", "max_cost_usd=0.002"])
    assert code == 1
    assert "max_cost_usd=0.002" in capfd.readouterr().err
    manifest = json.loads(Path("outputs/t/manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["stages"][0]["status"] == "stopped"
    assert len(manifest["stages"]) == 1, "no later stage runs after a budget stop"
    assert 0 < manifest["teacher"]["cost_usd"] <= 0.002
    paid = server.stats.by_path["/v1/chat/completions"]
    kept = list(read_records(Path("outputs/t/01-generate/records.jsonl")))
    assert 0 < paid < 12 and len(kept) <= paid

    assert main(["run", str(path), *price, "--set", "max_cost_usd=1"]) == 0
    # Nothing paid for is paid again.
    assert server.stats.by_path["/v1/chat/completions"] == 12
    assert len(list(read_records(Path("outputs/t/01-generate/records.jsonl")))) == 12


def test_editing_a_template_recalls_only_the_records_whose_prompt_changed(project):
    path, server = project
    template = path.parent.parent / "prompts" / "cot_rationale.j2"
    template.write_text("<|user|>\n{{ question }}{% if answer | int > 20 %} (a big one){% endif %}\n")
    run(path)
    big = sum(1 for answer in server.responder.gold.values() if answer > 20)
    assert 0 < big < 12
    template.write_text(template.read_text().replace("(a big one)", "(a large one)"))
    server.reset_stats()
    manifest = run(path)
    assert server.stats.by_path["/v1/chat/completions"] == big
    assert manifest.teacher.cache_hits == 12 - big


def test_dry_run_counts_calls_against_the_cache_and_sends_and_writes_nothing(project, capfd):
    from synthdistill.cli import main
    from synthdistill.dryrun import plan_pipeline

    path, server = project
    plans = plan_pipeline(load_pipeline(path), RunOptions())
    generate = plans[0]
    assert generate.planned is not None
    assert (generate.inputs, generate.planned.requests, generate.planned.samples) == (12, 12, 36)
    assert generate.planned.cached == 0 and generate.planned.completion_tokens == 12 * 3 * 192
    assert plans[1].inputs is None and "01-generate" in plans[1].note
    assert server.stats.requests == 0 and not Path("outputs").exists()

    code = main(
        ["run", str(path), "--dry-run", "--set", "teacher.price={input_per_mtok: 2, output_per_mtok: 10}"]
    )
    assert code == 0 and not Path("outputs").exists()
    err = capfd.readouterr().err
    worst = (generate.planned.prompt_tokens * 2 + generate.planned.completion_tokens * 10) / 1e6
    assert "dry run" in err and f"{worst:.4f}" in err

    run(path)
    again = plan_pipeline(load_pipeline(path), RunOptions())
    assert [p.planned.samples if p.planned else None for p in again] == [0, 0, 0]
    assert again[0].planned is not None and again[0].planned.cached == 36
    assert [p.inputs for p in again] == [12, 12, 36]


LOCAL_TEACHER = """
name: local
seed: 0
teacher: {backend: transformers, model: smollm2-135m}
data: {source: builtin:arith, split: {train: 2, test: 2}}
stages:
  - generate: {template: cot_rationale.j2, n: 1, max_tokens: 8}
"""


def test_dry_run_in_a_fresh_home_converts_no_model_and_writes_nothing(tmp_path, monkeypatch, capfd):
    from synthdistill.cli import main

    monkeypatch.chdir(tmp_path)
    home = tmp_path / "fresh-home"
    home.mkdir()
    monkeypatch.setenv("SYNTHDISTILL_HOME", str(home))
    path = tmp_path / "local.yaml"
    path.write_text(LOCAL_TEACHER)
    before = sorted(tmp_path.rglob("*"))

    assert main(["run", str(path), "--dry-run"]) == 0

    assert "dry run" in capfd.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before
    assert list(home.iterdir()) == [] and not Path("outputs").exists()


@pytest.mark.slow
def test_dry_run_prices_a_local_teacher_against_the_cache_its_real_run_filled(tmp_path, monkeypatch):
    from synthdistill.dryrun import plan_pipeline

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "local.yaml"
    path.write_text(LOCAL_TEACHER)
    (before,) = plan_pipeline(load_pipeline(path), RunOptions())
    assert before.planned is not None and (before.planned.cached, before.planned.samples) == (0, 2)

    assert run(path).status == "done"

    (after,) = plan_pipeline(load_pipeline(path), RunOptions())
    assert after.planned is not None and (after.planned.cached, after.planned.samples) == (2, 0)


def test_clean_removes_the_stage_folders_the_pipeline_no_longer_has_and_nothing_else(project, capfd):
    from synthdistill.cli import main

    path, _server = project
    assert main(["run", str(path)]) == 0
    folder = Path("outputs/t")
    # What a user may keep in a run folder: a folder named like a stage's but for no stage, a file.
    (folder / "2024-plots").mkdir()
    (folder / "07-filter.txt").write_text("mine")
    path.write_text(path.read_text().replace("  - filter: {critics: [answer_match]}\n", ""))
    capfd.readouterr()

    assert main(["run", str(path)]) == 0
    err = capfd.readouterr().err
    named = [line for line in err.splitlines() if "--clean" in line]
    assert len(named) == 1 and "03-filter" in named[0], err
    assert (folder / "03-filter" / "records.jsonl").is_file()

    assert main(["run", str(path), "--clean"]) == 0
    assert "--clean" not in capfd.readouterr().err
    assert not (folder / "03-filter").exists()
    assert {p.name for p in folder.iterdir() if p.is_dir()} == {
        "01-generate",
        "02-self_consistency",
        "2024-plots",
        "dataset",
    }
    assert (folder / "07-filter.txt").read_text() == "mine"


def test_a_run_that_keeps_nothing_still_writes_an_empty_dataset(project):
    from datasets import load_from_disk

    path, server = project
    server.responder = lambda messages, params, index: "No idea.\nThe answer is -1."
    manifest = run(path)
    assert manifest.status == "done" and manifest.stages[-1].records_out == 0
    dataset = load_from_disk("outputs/t/dataset")
    assert len(dataset) == 0 and "verdicts" in dataset.column_names


def test_editing_a_users_critic_reruns_the_filter_and_nothing_before_it(project):
    path, _server = project
    critics = path.parent / "critics"
    critics.mkdir()
    source = """
from synthdistill.critics import BaseCritic
from synthdistill.records import Verdict


class Short(BaseCritic):
    name = "short"

    def score(self, records):
        return [Verdict(passed=len(r.rationale or "") < LIMIT, reason="length") for r in records]


LIMIT = 1000
"""
    (critics / "short.py").write_text(source)
    path.write_text(path.read_text().replace("critics: [answer_match]", "critics: [answer_match, short]"))
    first = run(path)
    assert first.stages[2].records_out == 12
    assert [s.status for s in run(path).stages] == ["skipped"] * 3
    (critics / "short.py").write_text(source.replace("LIMIT = 1000", "LIMIT = 1"))
    edited = run(path)
    assert [s.status for s in edited.stages] == ["skipped", "skipped", "done"]
    assert edited.stages[2].records_out == 0 and edited.teacher.calls == 0


def test_a_run_that_fails_mid_stage_leaves_the_last_good_runs_files_as_they_were(project):
    path, server = project
    assert run(path).status == "done"
    folder = Path("outputs/t")
    before = {p: p.read_bytes() for p in folder.rglob("*.jsonl") if p.name != "failed_requests.jsonl"}
    # A changed template re-runs generate; the teacher then refuses every request (a hard 401).
    prompt = Path("prompts/cot_rationale.j2")
    prompt.write_text(prompt.read_text() + "\nBe brief.\n")
    server.required_key = "locked"
    with pytest.raises(TeacherError):
        run(path)
    after = {p: p.read_bytes() for p in folder.rglob("*.jsonl") if p.name != "failed_requests.jsonl"}
    assert {p: b for p, b in after.items() if not p.name.endswith(".partial")} == before


def test_a_run_whose_train_stage_gets_no_records_ends_with_exit_1_and_says_so(project, capfd):
    from synthdistill.cli import main

    path, server = project
    path.write_text(path.read_text() + "  - train: {max_steps: 1}\n")
    server.responder = lambda messages, params, index: "It is -1.\nThe answer is -1."  # never right
    capfd.readouterr()
    assert main(["run", str(path)]) == 1
    _, err = capfd.readouterr()
    assert "synthdistill: warning: 04-train got no records to train on, so no student was trained" in err
    manifest = json.loads(Path("outputs/t/manifest.json").read_text())
    assert manifest["status"] == "done" and "student_model" not in manifest["artifacts"]
    assert "no record was kept by 03-filter; the dataset is empty" in manifest["warnings"]
