"""The gkd stage: a teacher that gives no logits (an API) or no teacher at all refused before anything runs, a
teacher with another tokenizer refused before any weights load, and real trainings of the embedded SmolLM2
on the prompts of a crafted run: with the base student as its own teacher the generalized JSD starts at
zero; with the run's SFT student as the teacher it starts clearly above zero and falls, and the result
becomes the student that evaluate scores; a killed training resumes and ends at the same step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_pairs import QUESTIONS, write_project

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.errors import ConfigError
from synthdistill.pipeline import RunOptions, run_pipeline

REPO = Path(__file__).resolve().parents[1]
RECORDS = len(QUESTIONS)  # one record per question: its recorded completions are its samples
API_TEACHER = {"backend": "openai", "model": "gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1"}
# Tiny trainings: short sequences, few sampled tokens, a log line every step.
TINY: dict[str, Any] = {"max_length": 128, "max_new_tokens": 8, "gkd": {"logging_steps": 1}}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


BAD = [
    (
        [{"gkd": {"teacher": "default"}}],
        API_TEACHER,
        "stages[1].gkd.teacher: gkd needs the teacher's next-token",
    ),
    ([{"gkd": {"teacher": API_TEACHER}}], None, "the openai teacher 'gpt-4o-mini' answers through an API"),
    ([{"gkd": {}}], None, "stages[1].gkd.teacher_model: teacher_model: student distils the run's trained"),
    ([{"gkd": {"teacher_model": "no-such-model"}}], None, "stages[1].gkd.teacher_model: unknown model"),
    ([{"gkd": {"teacher": "default", "teacher_model": "smollm2-135m"}}], None, "either as teacher or as"),
    ([{"gkd": {"teacher_model": "smollm2-135m", "beta": 1.5}}], None, "stages[1].gkd.beta"),
    ([{"gkd": {"teacher_model": "smollm2-135m", "gkd": {"no_such_option": 1}}}], None, "GKDConfig"),
]


@pytest.mark.parametrize(
    ("stages", "teacher", "message"),
    BAD,
    ids=[
        "api teacher by name",
        "api teacher mapping",
        "no train",
        "unknown model",
        "both",
        "beta",
        "gkd key",
    ],
)
def test_bad_gkd_teachers_and_options_are_one_line_and_exit_2_before_anything_runs(
    project, capfd, stages, teacher, message
):
    path = write_project(project, stages, teacher=teacher)
    with pytest.raises(ConfigError):
        load_pipeline(path)
    code = main(["run", str(path)])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and message in err, err
    if "API" in message:
        assert "use SFT (train) or DPO on its outputs instead" in err
    assert not (project / "outputs").exists()


def test_a_local_pipeline_teacher_and_a_trained_student_teacher_pass_validation(project):
    local = {"backend": "transformers", "model": "smollm2-135m"}
    load_pipeline(write_project(project, [{"gkd": {"teacher": "default"}}], teacher=local))
    load_pipeline(write_project(project, [{"train": {}}, {"gkd": {}}]))


def test_a_teacher_with_another_tokenizer_is_refused_before_anything_runs(project, capfd):
    from synthdistill.models import load_tokenizer

    # A teacher folder whose tokenizer has one token more (the same family, numbered otherwise) and no
    # weights: preflight reads the tokenizers alone (the student's from its GGUF, nothing converted).
    teacher = project / "other-teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text(json.dumps({"model_type": "llama"}))
    tokenizer = load_tokenizer("smollm2-135m")
    tokenizer.add_tokens(["<extra-token>"])
    tokenizer.save_pretrained(str(teacher))
    path = write_project(project, [{"gkd": {"teacher_model": str(teacher)}}])
    capfd.readouterr()
    code = main(["run", str(path)])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1, err
    assert (
        "stages[1].gkd.teacher_model: teacher 'other-teacher' has another tokenizer than the student" in err
    )
    assert "use SFT (train) or DPO on its outputs instead" in err
    assert not (project / "outputs").exists()


@pytest.mark.slow
def test_the_base_student_as_its_own_teacher_starts_at_zero_divergence(project):
    # Fully on-policy (lmbda 1): the student samples its completions, and the teacher (the same weights)
    # agrees with it on every token; the new LoRA adapter starts as the identity.
    options = {"teacher_model": "smollm2-135m", "lmbda": 1.0, "max_steps": 1, "batch_size": 2, **TINY}
    path = write_project(project, [{"gkd": options}])
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    details = manifest.stages[1].details
    assert details["steps"] == 1 and details["method"] == "gkd+lora" and details["teacher"] == "smollm2-135m"
    assert details["losses"][0] == pytest.approx(0.0, abs=1e-5), details["losses"]
    adapter = json.loads((project / "outputs/pairs/02-gkd/model/adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "smollm2-135m"


@pytest.mark.slow
def test_distilling_the_sft_student_into_the_base_lowers_the_divergence_and_evaluate_scores_it(project):
    # The teacher is the run's own SFT student (an adapter over the base, two steps at a high rate); gkd
    # trains a new adapter on the base. Off-policy (lmbda 0) with every record in each batch, each step's
    # loss is measured on the same tokens, so the losses are comparable.
    train = {"max_steps": 2, "batch_size": 4, "learning_rate": 3e-3, "max_length": 128, "lora": {"r": 4}}
    gkd = {"lmbda": 0.0, "max_steps": 3, "batch_size": RECORDS, "learning_rate": 2e-3, **TINY}
    evaluate = {"evaluate": {"max_tokens": 8, "plot": False}}
    test = {"question": "What is 2 + 2?", "answer": "4", "completions": []}
    (project / "test.jsonl").write_text(json.dumps(test) + "\n")
    path = write_project(project, [{"train": train}, {"gkd": gkd}, evaluate])
    raw = load_pipeline(path).raw
    raw["data"] |= {"test_source": "test.jsonl", "split": {"train": len(QUESTIONS), "test": 1}}
    path.write_text(json.dumps(raw))
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    details = manifest.stages[2].details
    assert details["teacher"] == str(Path("outputs/pairs/02-train/model"))
    assert details["examples"] == RECORDS and details["steps"] == 3
    losses = details["losses"]
    assert len(losses) == 3 and losses[0] > 0.01 and losses[-1] < losses[0], losses

    run = project / "outputs" / "pairs"
    model = run / "03-gkd" / "model"
    assert manifest.artifacts["student_model"] == str(Path("outputs/pairs/03-gkd/model"))
    card = (model / "README.md").read_text()
    facts = json.loads((model / "synthdistill-card.json").read_text())["training"]
    assert facts["beta"] == 0.5 and facts["lmbda"] == 0.0 and facts["method"] == "gkd+lora"
    assert "method: gkd+lora, 4 examples from 4 records, 3 steps" in card and "| student |" in card
    assert facts["teacher"] == details["teacher"] and facts["teacher_model"] == "student"
    assert (run / "04-evaluate" / "predictions-student.jsonl").is_file()


@pytest.mark.slow
def test_gkd_killed_after_a_checkpoint_resumes_and_ends_at_the_same_step(project):
    options = {
        "teacher_model": "smollm2-135m",
        "lmbda": 0.0,
        "lora": {"r": 4},
        "batch_size": 1,
        "max_steps": 3,
        "save_steps": 1,
        "save_total_limit": 3,
        "keep_checkpoints": True,
        **TINY,
    }
    path = write_project(project, [{"gkd": options}])
    checkpoints = project / "outputs" / "pairs" / "02-gkd" / "checkpoints"
    process = subprocess.Popen(
        [sys.executable, "-m", "synthdistill", "run", str(path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 600
        while not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not (checkpoints.parent / "model").exists(), "training finished before it could be killed"
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    details = manifest.stages[1].details
    assert details["resumed_from"] is not None and int(details["resumed_from"].split("-")[1]) < 3
    assert details["steps"] == 3
    state = json.loads((checkpoints / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
