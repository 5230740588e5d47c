"""End to end on real models: generate, vote, filter, fine-tune and evaluate the embedded SmolLM2.

The fast test takes its teacher from the scripted server (so the filter keeps a known share) and
trains and evaluates the real student; the slow test runs the shipped default, the local model as
its own teacher, at a tiny size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from synthdistill.cli import main
from synthdistill.config import load_pipeline
from synthdistill.data import load_splits
from synthdistill.testing.scripted_server import ScriptedServer

REPO = Path(__file__).resolve().parents[1]

TINY = """
name: tiny
seed: 0
teacher: {{backend: openai, model: scripted, api_base: "{url}"}}
student: {{model: smollm2-135m}}
data: {{source: builtin:arith, split: {{train: 8, test: 4}}}}
stages:
  - generate: {{n: 2, temperature: 0.7}}
  - self_consistency: {{keep: all}}
  - filter: {{critics: [answer_match, {{length: {{max_words: 60}}}}]}}
  - train: {{max_steps: 3, batch_size: 4, learning_rate: 1e-3}}
  - evaluate: {{max_tokens: 48}}
"""


def test_tiny_pipeline_keeps_records_trains_the_student_and_evaluates_it(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    with ScriptedServer() as server:
        path = tmp_path / "tiny.yaml"
        path.write_text(TINY.format(url=server.url))
        pipeline = load_pipeline(path)
        train, _ = load_splits(pipeline.config.data, seed=0, base_dir=tmp_path)
        gold = {r.input["question"]: int(r.input["answer"]) for r in train}
        # Right on sample 0, wrong on sample 1: the filter must keep exactly half.
        server.responder = lambda messages, params, i: (
            f"Working it out gives {gold[messages[-1]['content']] + i}.\n"
            f"The answer is {gold[messages[-1]['content']] + i}."
        )
        code = main(["run", str(path)])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert out.strip() == str(Path("outputs") / "tiny")
    assert "evaluation on the test split" in err and "student" in err

    manifest = json.loads(Path("outputs/tiny/manifest.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    assert stages["filter"]["records_in"] == 16 and stages["filter"]["records_out"] == 8
    assert stages["train"]["details"]["steps"] == 3
    assert set(manifest["metrics"]) >= {"base", "student"}
    assert all(0.0 <= manifest["metrics"][k]["accuracy"] <= 1.0 for k in ("base", "student"))
    assert manifest["teacher"]["calls"] >= 8

    # The LoRA student is saved as its adapter, whose B matrices peft starts at zero.
    adapter = load_file(Path("outputs/tiny/04-train/model/adapter_model.safetensors"))
    assert any(t.abs().sum() > 0 for n, t in adapter.items() if "lora_B" in n), "training changed nothing"
    assert Path("outputs/tiny/dataset/train.parquet").exists()
    assert Path("outputs/tiny/05-evaluate/predictions-student.jsonl").exists()


@pytest.mark.slow
def test_default_pipeline_self_distils_the_local_model_at_tiny_size(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    args = ["run", str(REPO / "pipelines" / "cot.yaml"), "--limit", "12"]
    args += ["--set", "train.max_steps=2", "--set", "evaluate.max_tokens=64"]
    code = main(args)
    _, err = capfd.readouterr()
    assert code == 0, err
    manifest = json.loads(Path("outputs/cot-arith/manifest.json").read_text())
    stages = {s["name"]: s for s in manifest["stages"]}
    assert stages["generate"]["records_in"] == 12
    assert stages["filter"]["records_out"] >= 1, "no sample of the local teacher survived answer_match"
    assert manifest["metrics"]["student"]["n"] == 12
    # A second run is answered wholly from the cache and the finished stages.
    assert main(args) == 0
    again = json.loads(Path("outputs/cot-arith/manifest.json").read_text())
    assert again["teacher"]["calls"] == 0
    assert {s["status"] for s in again["stages"]} == {"skipped"}
