"""What every training of the student shares (sft.py, dpo.py, gkd.py): the schedule options, trainer
arguments for the device, resumable checkpoints, an atomic save, and the callback that sends the trainer's
log lines to run.log.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.models import ADAPTER_CONFIG, EMBEDDED_MODELS
from synthdistill.runs.context import StageContext


class Schedule(BaseModel):
    """How long and how fast a training runs, and how it checkpoints and saves (shared by trainings)."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(2.0, gt=0, description="Passes over the training examples.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps; -1 lets epochs decide.")
    lr_scheduler: str = Field(
        "linear", description="Learning-rate schedule (transformers' lr_scheduler_type)."
    )
    warmup: float = Field(
        0.0, ge=0.0, description="Learning-rate warmup: a share of the steps below 1, else a number of steps."
    )
    batch_size: int = Field(8, ge=1, description="Sequences (or pairs) per device step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Steps accumulated per optimizer step.")
    max_length: int = Field(384, ge=16, description="Longest tokenized example; longer ones are truncated.")
    save_steps: int = Field(20, ge=1, description="Optimizer steps between checkpoints (to resume a kill).")
    save_total_limit: int = Field(1, ge=1, description="Most checkpoints kept on disk.")
    keep_checkpoints: bool = Field(
        False, description="Whether to keep the checkpoints once training finished (they exist to resume)."
    )


def schedule_args(config: Any, ctx: StageContext, checkpoints: Path, steps_per_epoch: int) -> dict[str, Any]:
    """The trainer arguments every training sets the same way: its schedule (`config`, a `Schedule` or a
    config with the same fields, and its `learning_rate`), the seed, the device and quiet logging."""
    from synthdistill.devices import default_dtype

    return {
        "output_dir": str(checkpoints),
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "max_length": config.max_length,
        "seed": ctx.seed,
        "data_seed": ctx.seed,
        # The device follows the pipeline's `device` (devices.py): bf16 mixed precision on a GPU with it.
        "use_cpu": ctx.device == "cpu",
        "bf16": default_dtype(ctx.device) != float32(),
        # Checkpointing activations trades compute for memory that a small student does not need (and slows
        # a CPU by ~20%); a large one turns it on through the stage's pass-through options.
        "activation_checkpointing": False,
        # Progress and losses go to run.log through our callback; stdout is for results only.
        "disable_tqdm": True,
        "logging_steps": max(1, min(10, steps_per_epoch)),
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "report_to": "none",
    }


def quiet(trainer: Any, log: logging.Logger) -> None:
    """Send the trainer's progress to `log` (hence run.log) instead of stdout."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_log_callback(log))


def train_dtype(device: str, *, full: bool) -> Any:
    """Full fine-tuning keeps fp32 master weights (bf16 autocast does the speed-up); LoRA freezes the base
    in the device's dtype, where bf16 halves the memory of the frozen weights."""
    from synthdistill.devices import default_dtype

    return float32() if full else default_dtype(device)


def float32() -> Any:
    """torch.float32, imported when asked for."""
    import torch

    return torch.float32


def resumable_checkpoint(folder: Path, fingerprint: str) -> str | None:
    """The last complete checkpoint of this same training, or None; another training's are removed."""
    stamp = folder / "fingerprint.txt"
    if folder.is_dir() and (not stamp.is_file() or stamp.read_text(encoding="utf-8").strip() != fingerprint):
        shutil.rmtree(folder)
    if not folder.is_dir():
        folder.mkdir(parents=True)
        stamp.write_text(fingerprint, encoding="utf-8")
        return None
    complete = []
    for checkpoint in folder.glob("checkpoint-*"):
        # The Trainer writes trainer_state.json last: a checkpoint without it was cut off mid-save.
        if (checkpoint / "trainer_state.json").is_file():
            complete.append(checkpoint)
        else:
            shutil.rmtree(checkpoint, ignore_errors=True)
    if not complete:
        return None
    return str(max(complete, key=lambda path: int(path.name.rsplit("-", 1)[-1])))


def save_model(model: Any, tokenizer: Any, target: Path, *, adapter_of: str | None = None) -> Path:
    """Save model and tokenizer to `target` by way of a temporary folder: a kill leaves no half model.

    An adapter's config then names its base as `adapter_of`: peft wrote the converted folder it was
    loaded from, which lives under one machine's SYNTHDISTILL_HOME.
    """
    scratch = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    model.save_pretrained(str(scratch))
    tokenizer.save_pretrained(str(scratch))
    if adapter_of is not None:
        config_path = scratch / ADAPTER_CONFIG
        adapter = json.loads(config_path.read_text(encoding="utf-8"))
        adapter["base_model_name_or_path"] = adapter_of
        config_path.write_text(json.dumps(adapter, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    scratch.rename(target)
    return target


def base_name(model: str) -> str:
    """How an adapter names its base: an alias or hub id as the pipeline gives it, a folder by its
    absolute path (found from any working folder)."""
    path = Path(model).expanduser()
    return model if model in EMBEDDED_MODELS or not path.exists() else str(path.resolve())


def _log_callback(log: logging.Logger) -> Any:
    """A TrainerCallback sending the trainer's log lines (loss, learning rate) to `log`, hence to run.log."""
    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            log.info("step %d: %s", state.global_step, logs)

    return LogCallback()
