"""Specifications of synthdistill.models: resolving names, converting the embedded GGUF once, hashing."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from synthdistill import models
from synthdistill.errors import TeacherError
from synthdistill.models import (
    adapter_base,
    checkpoint_hash,
    is_adapter,
    load_causal_lm,
    load_tokenizer,
    model_hash,
    resolve_model,
)


def test_embedded_alias_resolves_to_a_converted_loadable_checkpoint(synthdistill_home: Path) -> None:
    # The session's shared models folder: converted here, or by an earlier test (conftest).
    folder = resolve_model("smollm2-135m")
    assert folder.parent == synthdistill_home / "models"
    assert folder.name.startswith("smollm2-135m-")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}

    started = time.perf_counter()
    assert resolve_model("smollm2-135m") == folder
    assert time.perf_counter() - started < 1.0

    model, tokenizer = load_causal_lm(folder, "cpu")
    assert not hasattr(model.config, "quantization_config")
    assert not model.training
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token is not None
    assert tokenizer.chat_template
    assert sum(p.numel() for p in model.parameters()) > 100_000_000


# From a fresh home, so that the two really convert at once (about 30 s).
@pytest.mark.slow
def test_two_processes_converting_at_once_share_one_finished_folder(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_resolve_in_child, args=(str(tmp_path), results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    paths = {results.get(timeout=300) for _ in workers}
    for worker in workers:
        worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert len(paths) == 1

    entries = list((tmp_path / "models").iterdir())
    folders = [entry for entry in entries if entry.is_dir()]
    assert [folder.name for folder in folders] == [Path(paths.pop()).name]
    assert not [entry for entry in entries if entry.name.startswith(".")], "a temporary folder was left"
    assert (folders[0] / "model.safetensors").is_file()


def test_a_local_folder_is_returned_as_is(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == tmp_path


def test_a_local_folder_without_config_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match=r"no config\.json"):
        resolve_model(str(tmp_path))


def test_a_missing_local_path_says_so(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match="does not exist"):
        resolve_model(str(tmp_path / "student"))


def test_an_unknown_alias_lists_the_embedded_ones() -> None:
    with pytest.raises(TeacherError, match=r"unknown model 'smollm9'.*embedded aliases: smollm2-135m"):
        resolve_model("smollm9")


def test_a_hub_id_not_in_the_local_cache_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        TeacherError, match=r"not in the local Hugging Face cache.*HF_HUB_OFFLINE.*hf download"
    ):
        resolve_model("someone/not-cached")


def test_a_hub_id_in_the_local_cache_resolves_to_its_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someone--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert resolve_model("someone/tiny") == snapshot


def test_checkpoint_hash_changes_when_the_weights_change(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x01" * 1000)
    before = checkpoint_hash(tmp_path)
    assert checkpoint_hash(tmp_path) == before

    # Same size, other content: what a retrained student looks like.
    weights.write_bytes(b"\x02" * 1000)
    after = checkpoint_hash(tmp_path)
    assert after != before
    (tmp_path / "adapter.safetensors").write_bytes(b"\x03")
    assert checkpoint_hash(tmp_path) not in (before, after)


def test_checkpoint_hash_reads_unchanged_weights_only_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\x01" * 1000)
    first = checkpoint_hash(tmp_path)

    def unexpected_read(file: Path) -> str:
        raise AssertionError(f"{file} was read again although it did not change")

    monkeypatch.setattr(models, "_sha256", unexpected_read)
    assert checkpoint_hash(tmp_path) == first


def test_checkpoint_hash_of_a_folder_without_weights_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TeacherError, match="no weight files"):
        checkpoint_hash(tmp_path)


def test_an_adapter_folder_resolves_as_is_and_loads_merged_into_its_base(tmp_path: Path) -> None:
    import torch
    from model_helpers import make_adapter
    from peft import PeftModel

    adapter = make_adapter(tmp_path / "adapter")
    assert is_adapter(adapter) and resolve_model(str(adapter)) == adapter
    assert adapter_base(adapter) == "smollm2-135m"

    model, tokenizer = load_causal_lm(adapter, "cpu")
    assert not isinstance(model, PeftModel), "generation should run on the merged model"
    assert not model.training and tokenizer.padding_side == "left" and tokenizer.chat_template
    base, _ = load_causal_lm(resolve_model("smollm2-135m"), "cpu")
    ids = tokenizer("What is 2 + 3?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = base(ids).logits
        expected = PeftModel.from_pretrained(base, adapter)(ids).logits
        merged = model(ids).logits
    assert torch.allclose(merged, expected, atol=1e-4)
    assert not torch.allclose(merged, plain, atol=1e-3), "the adapter changed nothing"


def test_an_adapters_hash_covers_its_own_weights_and_its_base(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    (base / "model.safetensors").write_bytes(b"\x01" * 100)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\x02" * 100)
    first = checkpoint_hash(adapter)
    assert model_hash(str(adapter)) == first

    (adapter / "adapter_model.safetensors").write_bytes(b"\x03" * 100)  # the student, retrained
    retrained = checkpoint_hash(adapter)
    assert retrained != first
    (base / "model.safetensors").write_bytes(b"\x04" * 100)  # the same adapter over another base
    assert checkpoint_hash(adapter) not in (first, retrained)


def test_an_adapter_that_names_no_base_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\x01")
    assert resolve_model(str(tmp_path)) == tmp_path
    with pytest.raises(TeacherError, match=r"names no base model \(base_model_name_or_path"):
        checkpoint_hash(tmp_path)


def test_the_embedded_models_hash_is_known_without_converting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    monkeypatch.setenv("SYNTHDISTILL_HOME", str(fresh))
    first = model_hash("smollm2-135m")
    assert model_hash("smollm2-135m") == first and len(first) == 16
    assert list(fresh.iterdir()) == [], "hashing the embedded model wrote under SYNTHDISTILL_HOME"


def test_the_embedded_models_hash_follows_its_gguf_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "SmolLM2.gguf"
    monkeypatch.setattr(models, "_embedded_file", lambda alias, embedded: gguf)
    gguf.write_bytes(b"\x01" * 100)
    first = model_hash("smollm2-135m")
    gguf.write_bytes(b"\x02" * 100)  # same name and size, other weights
    assert model_hash("smollm2-135m") != first


def test_the_tokenizer_of_an_unconverted_embedded_model_is_read_from_its_gguf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoTokenizer

    converted = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    monkeypatch.setenv("SYNTHDISTILL_HOME", str(fresh))
    from_gguf = load_tokenizer("smollm2-135m")
    assert list(fresh.iterdir()) == [], "the model was converted for its tokenizer"
    text = "Natalia sold 48 clips in April. The answer is 72."
    assert from_gguf(text)["input_ids"] == converted(text)["input_ids"]
    assert from_gguf.chat_template == converted.chat_template


def _resolve_in_child(home: str, results: Any) -> None:
    os.environ["SYNTHDISTILL_HOME"] = home
    results.put(str(models.resolve_model("smollm2-135m")))
