"""The dpo stage: the bad inputs refused before anything runs, and real trainings of the embedded SmolLM2 on
the pairs of a crafted run that lower the DPO loss and raise the chosen-rejected margin on those pairs (both
measured here again from the saved models, not only from trl's log), become the student that evaluate scores,
and survive a kill.
"""

from __future__ import annotations

import json
import math
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
from synthdistill.runs.dataset import pair_texts
from synthdistill.runs.folder import read_records

REPO = Path(__file__).resolve().parents[1]
PAIRS = {"pairs": {"method": "correct_over_incorrect", "per_question": 2}}  # 3 pairs from QUESTIONS


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


BAD = [
    ([{"dpo": {"model": "smollm2-135m"}}], "no pairs stage comes before it; put a pairs stage"),
    ([PAIRS, {"dpo": {}}], "no train stage comes before it; put a train stage before dpo, or name the model"),
    ([PAIRS, {"dpo": {"model": "smollm2-135m", "dpo": {"no_such_option": 1}}}], "stages[2].dpo.dpo: "),
    ([PAIRS, {"dpo": {"model": "smollm2-135m", "lora": {"no_such_option": 1}}}], "LoraConfig"),
    ([PAIRS, {"dpo": {"model": "smollm2-135m", "beta": 0}}], "stages[2].dpo.beta"),
]


@pytest.mark.parametrize(
    ("stages", "message"), BAD, ids=["no pairs", "no train", "dpo key", "lora key", "beta"]
)
def test_bad_dpo_options_are_one_line_and_exit_2_before_anything_runs(project, capfd, stages, message):
    path = write_project(project, stages)
    with pytest.raises(ConfigError):
        load_pipeline(path)
    code = main(["run", str(path)])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (project / "outputs").exists()


def sequence_logps(model: Any, tokenizer: Any, prompt: list[dict[str, str]], completion: str) -> float:
    """log p(completion | prompt) under `model`, the completion ending an assistant turn."""
    import torch

    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": completion}], tokenize=False
    )
    assert full.startswith(head)
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return float(logps[len(head_ids) - 1 :].sum())


def margins(policy: Path, reference: Path, pairs: list[tuple[list[dict[str, str]], str, str]]) -> list[float]:
    """Each pair's DPO margin: how much more the policy than the reference prefers chosen to rejected."""
    from synthdistill.models import load_causal_lm

    models = [load_causal_lm(path, "cpu") for path in (policy, reference)]
    values = []
    for prompt, chosen, rejected in pairs:
        (pc, pr), (rc, rr) = [
            (sequence_logps(m, t, prompt, chosen), sequence_logps(m, t, prompt, rejected)) for m, t in models
        ]
        values.append((pc - rc) - (pr - rr))
    return values


@pytest.mark.slow
def test_a_few_dpo_steps_lower_the_loss_and_raise_the_margin_and_evaluate_scores_the_result(project):
    from model_helpers import make_adapter

    from synthdistill.student.prompts import prompt_messages
    from synthdistill.templates import Templates

    # The start is a LoRA student: it goes on training its own adapter, against a frozen copy of it.
    start = make_adapter(project / "sft-student")
    test = {"question": "What is 2 + 2?", "answer": "4", "completions": []}
    (project / "test.jsonl").write_text(json.dumps(test) + "\n")
    options = {"model": str(start), "max_steps": 3, "batch_size": 3, "learning_rate": 1e-3, "max_length": 128}
    evaluate = {"evaluate": {"max_tokens": 8, "plot": False}}
    path = write_project(project, [PAIRS, {"dpo": options}, evaluate])
    raw = load_pipeline(path).raw
    raw["data"] |= {"test_source": "test.jsonl", "split": {"train": len(QUESTIONS), "test": 1}}
    path.write_text(json.dumps(raw))
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    details = manifest.stages[2].details
    assert details["method"] == "dpo+lora (the start's adapter)" and details["steps"] == 3
    assert details["reference"] == "the start's adapter, frozen"
    assert details["pairs"] == {"stage": "02-pairs", "methods": {"correct_over_incorrect": 3}}
    # trl's own log: the loss starts at log 2 (policy = reference) and falls; the margin grows from 0.
    assert details["losses"][0] == pytest.approx(math.log(2), abs=1e-3) and details["losses"][-1] < math.log(
        2
    )
    assert details["margins"][0] == pytest.approx(0.0, abs=1e-3) and details["margins"][-1] > 0

    run = project / "outputs" / "pairs"
    model = run / "03-dpo" / "model"
    assert manifest.artifacts["student_model"] == str(Path("outputs/pairs/03-dpo/model"))
    adapter = json.loads((model / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "smollm2-135m" and not (model / "ref").exists()
    # Measured again on the training pairs from the saved model: every margin is above 0, so the DPO loss
    # -log sigmoid(beta * margin) is below its value at the start, log 2.
    templates = Templates.for_pipeline(project)
    pairs = []
    for record in read_records(run / "02-pairs" / "records.jsonl", kept_only=True):
        texts = pair_texts(record)
        assert texts is not None
        pairs.append((prompt_messages(templates, "cot_student.j2", record), *texts))
    measured = margins(model, start, pairs)
    assert len(measured) == 3 and all(m > 0 for m in measured), measured
    loss = sum(math.log1p(math.exp(-0.1 * m)) for m in measured) / len(measured)
    assert loss < math.log(2)

    card = (model / "README.md").read_text()
    assert "method: dpo+lora (the start's adapter), 3 examples from 3 records, 3 steps" in card
    facts = json.loads((model / "synthdistill-card.json").read_text())["training"]
    assert facts["pairs"] == {"stage": "02-pairs", "methods": {"correct_over_incorrect": 3}}
    assert facts["beta"] == 0.1 and facts["loss_type"] == "sigmoid" and '"beta": 0.1' in card
    # evaluate scored the DPO student and wrote its metrics into the DPO student's card.
    assert "student" in manifest.metrics and "| student |" in card
    assert (run / "04-evaluate" / "predictions-student.jsonl").is_file()


@pytest.mark.slow
def test_dpo_killed_after_a_checkpoint_resumes_and_ends_at_the_same_step(project):
    options = {
        "model": "smollm2-135m",
        "lora": {"r": 4},
        "batch_size": 1,
        "max_length": 128,
        "save_steps": 1,
        "save_total_limit": 3,
        "keep_checkpoints": True,
        "learning_rate": 1e-3,
    }
    path = write_project(project, [PAIRS, {"dpo": options}])  # 3 pairs, batch 1, 1 epoch: 3 steps
    checkpoints = project / "outputs" / "pairs" / "03-dpo" / "checkpoints"
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
    details = manifest.stages[2].details
    assert details["resumed_from"] is not None and int(details["resumed_from"].split("-")[1]) < 3
    assert details["steps"] == 3 and details["method"] == "dpo+lora"
    state = json.loads((checkpoints / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    adapter = json.loads((checkpoints.parent / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "smollm2-135m"
