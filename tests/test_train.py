"""The train stage: options passed through to trl and peft, the test-split leak check, step-by-step's
weighted loss, and real trainings of the embedded SmolLM2 that lower the loss and survive a kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.data import load_splits
from synthdistill.errors import ConfigError
from synthdistill.pipeline import RunOptions, run_pipeline

REPO = Path(__file__).resolve().parents[1]

TRAIN_ONLY = """
name: tr
seed: 0
data: {{source: builtin:arith, split: {{train: {train}, test: 4}}}}
stages:
  - train: {options}
"""


def write_pipeline(folder: Path, options: str, train: int = 6) -> Path:
    path = folder / "tr.yaml"
    path.write_text(TRAIN_ONLY.format(train=train, options=options))
    return path


def test_unknown_sft_or_lora_option_is_refused_when_the_pipeline_loads(tmp_path):
    ok = load_pipeline(
        write_pipeline(tmp_path, "{sft: {weight_decay: 0.01}, lora: {r: 4, use_rslora: true}}")
    )
    assert ok.stages[0].config.sft == {"weight_decay": 0.01}
    with pytest.raises(ConfigError, match=r"stages\[0\]\.train\.sft: .*SFTConfig"):
        load_pipeline(write_pipeline(tmp_path, "{sft: {no_such_option: 1}}"))
    with pytest.raises(ConfigError, match=r"stages\[0\]\.train\.lora: .*LoraConfig"):
        load_pipeline(write_pipeline(tmp_path, "{lora: {no_such_option: 1}}"))


def leaking_file(folder: Path, pipeline: Path) -> Path:
    """A user file mixing one question of the test split (re-spaced and re-cased) with a fresh one."""
    _, test = load_splits(load_pipeline(pipeline).config.data, seed=0, base_dir=folder)
    question = test[0].input["question"]
    rows = [
        {"q": "  " + question.upper() + " ", "a": test[0].input["answer"]},
        {"q": "What is 40 + 2?", "a": "42"},
    ]
    path = folder / "extra.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_test_question_in_the_training_mix_stops_training_with_on_leak_error(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    options = "{extra_data: {source: extra.jsonl, fields: {question: q, answer: a}}, on_leak: error}"
    path = write_pipeline(tmp_path, options)
    leaking_file(tmp_path, path)
    code = main(["run", str(path)])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert "1 training examples have a question of the test split" in err and "on_leak" in err
    assert not Path("outputs/tr/01-train/model").exists()


@pytest.mark.slow
def test_weight_one_on_the_label_task_reproduces_label_only_loss(tmp_path):
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from synthdistill.models import load_causal_lm, resolve_model
    from synthdistill.stages.train.stepbystep import TASK_IDS, task_collator, trainer_class

    def example(question: str, completion: str) -> dict:
        return {
            "prompt": [{"role": "user", "content": question}],
            "completion": [{"role": "assistant", "content": completion}],
        }

    labels = [
        example("[label] What is 2 + 3?", "The answer is 5."),
        example("[label] 4 * 3?", "The answer is 12."),
    ]
    rationales = [
        example("[rationale] What is 2 + 3?", "Two plus three makes five, counting up from two."),
        example("[rationale] 4 * 3?", "Four threes are twelve."),
    ]
    mixed = [{**e, "task": TASK_IDS["label"]} for e in labels]
    mixed += [{**e, "task": TASK_IDS["rationale"]} for e in rationales]
    args = {"output_dir": str(tmp_path), "use_cpu": True, "bf16": False, "report_to": "none"}
    args |= {"max_length": 64, "shuffle_dataset": False, "activation_checkpointing": False}
    model, tokenizer = load_causal_lm(resolve_model("smollm2-135m"), "cpu")
    collate = task_collator(tokenizer.pad_token_id)
    sbs = trainer_class()(
        model=model,
        args=SFTConfig(**args),
        train_dataset=Dataset.from_list(mixed),
        processing_class=tokenizer,
        data_collator=collate,
        label_weight=1.0,
    )
    batch = collate([sbs.train_dataset[i] for i in range(len(mixed))])
    assert sorted(batch["task"].tolist()) == [0, 0, 1, 1]

    def weighted(weight: float) -> float:
        sbs.label_weight = weight
        with torch.no_grad():
            return sbs.compute_loss(model, dict(batch)).item()

    def only(examples: list[dict]) -> float:
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**args),
            train_dataset=Dataset.from_list(examples),
            processing_class=tokenizer,
        )
        rows = [trainer.train_dataset[i] for i in range(len(examples))]
        inputs = trainer.data_collator([{k: r[k] for k in ("input_ids", "labels")} for r in rows])
        with torch.no_grad():
            return trainer.compute_loss(model, inputs).item()

    label_only, rationale_only = only(labels), only(rationales)
    assert weighted(1.0) == pytest.approx(label_only, rel=1e-5)
    assert abs(label_only - rationale_only) > 0.1  # the tasks differ, so the test can tell them apart
    assert weighted(0.0) == pytest.approx(rationale_only, rel=1e-5)
    assert weighted(0.5) == pytest.approx((label_only + rationale_only) / 2, rel=1e-5)


@pytest.mark.slow
def test_a_few_steps_change_the_weights_lower_the_loss_and_drop_a_leaked_question(
    tmp_path, monkeypatch, capfd
):
    from safetensors.torch import load_file

    monkeypatch.chdir(tmp_path)
    options = (
        "{max_steps: 4, batch_size: 4, epochs: 10, learning_rate: 2e-3, max_length: 128, lora: {r: 4}, "
        "extra_data: {source: extra.jsonl, fields: {question: q, answer: a}}}"
    )
    path = write_pipeline(tmp_path, options, train=2)
    leaking_file(tmp_path, path)
    code = main(["run", str(path), "--limit", "2"])
    _, err = capfd.readouterr()
    assert code == 0, err
    assert "01-train: 1 training examples have a question of the test split" in err
    details = json.loads(Path("outputs/tr/manifest.json").read_text())["stages"][0]["details"]
    assert details["leaks"] == 1 and details["records"] == 3 and details["steps"] == 4
    assert details["losses"][-1] < details["losses"][0], details["losses"]
    model = Path("outputs/tr/01-train/model")
    # peft starts every B matrix at zero: a trained adapter has moved some away from it.
    adapter = load_file(model / "adapter_model.safetensors")
    assert any(tensor.abs().sum() > 0 for name, tensor in adapter.items() if "lora_B" in name)
    card = (model / "README.md").read_text()
    assert "builtin:arith" in card and "leaks of the test split found: 1" in card
    assert "--limit 2 (each split cut to its first 2)" in card and str(tmp_path) not in card
    assert not Path("outputs/tr/01-train/checkpoints").exists()  # removed once training finished


@pytest.mark.slow
def test_a_step_by_step_student_learns_both_tasks_and_is_asked_by_its_cue(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    rows = [
        {"q": f"What is {a} + {b}?", "r": f"{a} plus {b} makes {a + b}.", "a": str(a + b)}
        for a, b in [(2, 3), (4, 5), (7, 1), (6, 6)]
    ]
    (tmp_path / "extra.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = tmp_path / "sbs.yaml"
    path.write_text(
        """
name: sbs
seed: 0
data: {source: builtin:arith, split: {train: 1, test: 3}}
stages:
  - train:
      max_steps: 2
      batch_size: 4
      max_length: 128
      lora: {r: 4}
      extra_data: {source: extra.jsonl, fields: {question: q, rationale: r, answer: a}}
      step_by_step: {label_weight: 0.3}
  - evaluate: {max_tokens: 4, plot: false, student_task: rationale}
"""
    )
    code = main(["run", str(path)])
    _, err = capfd.readouterr()
    assert code == 0, err
    stages = json.loads(Path("outputs/sbs/manifest.json").read_text())["stages"]
    train = stages[0]["details"]
    # Each user row gave a label and a rationale example, the raw data item (no rationale) a label alone.
    assert train["method"] == "lora+step_by_step" and train["examples"] == 9
    assert train["label_loss"] > 0 and train["rationale_loss"] > 0
    card = json.loads(Path("outputs/sbs/01-train/model/synthdistill-card.json").read_text())
    assert card["training"]["step_by_step"]["rationale_suffix"] == "\n\nGive the steps only."
    # Evaluation asked the student with its rationale cue and the base with the template alone.
    prompt_tokens = {
        label: [
            json.loads(line)["samples"][0]["prompt_tokens"]
            for line in Path(f"outputs/sbs/02-evaluate/predictions-{label}.jsonl").read_text().splitlines()
        ]
        for label in ("base", "student")
    }
    assert all(s > b for s, b in zip(prompt_tokens["student"], prompt_tokens["base"], strict=True))


KILLABLE = (
    "{epochs: 1, batch_size: 2, max_length: 128, lora: {r: 4}, save_steps: 1, save_total_limit: 3, "
    "keep_checkpoints: true, learning_rate: 1e-3}"
)


@pytest.mark.slow
def test_training_killed_after_a_checkpoint_resumes_and_ends_at_the_same_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_pipeline(tmp_path, KILLABLE, train=6)  # 6 examples, batch 2, 1 epoch: 3 steps
    checkpoints = tmp_path / "outputs" / "tr" / "01-train" / "checkpoints"
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
    assert not Path("outputs/tr/01-train/model").exists(), "training finished before it could be killed"
    manifest = run_pipeline(load_pipeline(path), RunOptions())
    details = manifest.stages[0].details
    assert details["resumed_from"] is not None and details["resumed_from"].startswith("checkpoint-")
    assert int(details["resumed_from"].split("-")[1]) < 3
    assert details["steps"] == 3
    state = json.loads((checkpoints / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["max_steps"] == 3
    assert Path("outputs/tr/01-train/model/adapter_model.safetensors").is_file()


GENERATE_THEN_TRAIN = """
name: {name}
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}"}}
data: {{source: builtin:arith, split: {{train: 4, test: 2}}}}
stages:
  - generate: {{n: 1}}
  - train: {{max_steps: 2, batch_size: 4, learning_rate: 2e-3, lora: {{r: 4}}, merge: {merge}}}
"""


@pytest.mark.slow
def test_a_lora_student_is_saved_as_its_adapter_unless_merge_asks_for_the_whole_model(tmp_path, monkeypatch):
    import torch

    from synthdistill.models import adapter_base, is_adapter, load_causal_lm
    from synthdistill.testing.scripted_server import ScriptedServer

    monkeypatch.chdir(tmp_path)
    with ScriptedServer(
        responder=lambda messages, params, index: "Two and three.\nThe answer is 5."
    ) as server:
        for name, merge in (("adapter", "false"), ("merged", "true")):
            path = tmp_path / f"{name}.yaml"
            path.write_text(GENERATE_THEN_TRAIN.format(name=name, url=server.url, merge=merge))
            assert run_pipeline(load_pipeline(path), RunOptions()).status == "done"

    adapter, merged = Path("outputs/adapter/02-train/model"), Path("outputs/merged/02-train/model")
    assert is_adapter(adapter) and adapter_base(adapter) == "smollm2-135m"
    assert not (adapter / "model.safetensors").exists()
    assert {"tokenizer.json", "README.md", "synthdistill-card.json"} <= {p.name for p in adapter.iterdir()}
    size = sum(p.stat().st_size for p in adapter.iterdir())
    assert size < 30e6, f"the adapter folder takes {size / 1e6:.0f} MB"
    assert not is_adapter(merged) and (merged / "model.safetensors").stat().st_size > 400e6
    card = (adapter / "README.md").read_text()
    assert "library_name: peft" in card and "LoRA adapter alone" in card and str(tmp_path) not in card
    assert "library_name: transformers" in (merged / "README.md").read_text()

    # The same training, seeded alike: the adapter loaded over its base is the merged model.
    (from_adapter, tokenizer), (whole, _) = load_causal_lm(adapter, "cpu"), load_causal_lm(merged, "cpu")
    ids = tokenizer("What is 12 + 30?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(from_adapter(ids).logits, whole(ids).logits, atol=1e-4)
