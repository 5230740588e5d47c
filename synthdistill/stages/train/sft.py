"""Supervised fine-tuning with trl's SFTTrainer: LoRA or full, resumable checkpoints, adapter or model."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdistill.errors import StageError
from synthdistill.models import ADAPTER_CONFIG, EMBEDDED_MODELS
from synthdistill.records import stable_hash
from synthdistill.runs.context import StageContext

if TYPE_CHECKING:
    from synthdistill.stages.train.stage import TrainConfig

# Defaults under the user's `lora` keys: all-linear adapters of rank 16 trained well on SmolLM2 (LAB.md).
LORA_DEFAULTS: dict[str, Any] = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "target_modules": "all-linear",
}
# LoRA keys checked here without importing peft (6 s), so that `synthdistill validate` stays fast.
PLAIN_LORA_KEYS: dict[str, type | tuple[type, ...]] = {
    "r": int,
    "lora_alpha": int,
    "lora_dropout": float,
    "target_modules": (str, list),
}


def lora_config(options: dict[str, Any]) -> Any:
    """A peft.LoraConfig from the stage's `lora` options over `LORA_DEFAULTS`; ValueError names a bad key."""
    from peft import LoraConfig

    try:
        return LoraConfig(**{**LORA_DEFAULTS, "task_type": "CAUSAL_LM", **options})
    except TypeError as exc:
        raise ValueError(f"not an option of peft.LoraConfig ({exc}); see its documentation") from None


def sft_config(options: dict[str, Any]) -> Any:
    """A trl.SFTConfig from `options`; ValueError names a bad key."""
    from trl import SFTConfig

    try:
        return SFTConfig(**options)
    except TypeError as exc:
        raise ValueError(f"not an option of trl.SFTConfig ({exc}); see its documentation") from None


def fine_tune(examples: list[dict[str, Any]], config: TrainConfig, ctx: StageContext) -> Path:
    """Train the student on `examples` (resuming this same training's checkpoint); the saved folder's path.

    A LoRA training saves its adapter, naming its base as the pipeline does, unless `config.merge` asks
    for the model merged; a full fine-tuning saves the model.
    """
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from synthdistill.models import checkpoint_hash, load_causal_lm, resolve_model
    from synthdistill.student.card import write_model_card

    base = resolve_model(ctx.pipeline.config.student.model)
    train_dtype = _train_dtype(ctx.device, full=config.lora is None)
    model, tokenizer = load_causal_lm(base, ctx.device, dtype=train_dtype)
    model.train()
    steps_per_epoch = math.ceil(len(examples) / (config.batch_size * config.gradient_accumulation_steps))
    checkpoints = ctx.folder / "checkpoints"
    fingerprint = stable_hash(
        examples, config.model_dump(mode="json"), checkpoint_hash(base), ctx.seed, ctx.device
    )
    resume_from = _resumable_checkpoint(checkpoints, fingerprint)
    try:
        args = _args(config, ctx, checkpoints, steps_per_epoch)
    except ValueError as exc:
        raise StageError(f"{exc}; check the train options and train.sft", stage=ctx.spec.name) from None

    trainer_kwargs: dict[str, Any] = {
        "model": model,
        "args": args,
        "train_dataset": Dataset.from_list(examples),
        "processing_class": tokenizer,
        "peft_config": lora_config(config.lora) if config.lora is not None else None,
    }
    trainer = _trainer(trainer_kwargs, config, tokenizer, ctx)
    if len(trainer.train_dataset) == 0:
        raise StageError(
            f"every example's prompt fills max_length ({config.max_length} tokens), leaving no completion "
            "to learn; raise train.max_length",
            stage=ctx.spec.name,
        )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_log_callback(ctx.log))
    if resume_from:
        ctx.log.info("resuming training from %s", resume_from)
    result = trainer.train(resume_from_checkpoint=resume_from)
    trained: Any = trainer.model
    adapter_of = None
    if config.lora is not None and config.merge:
        trained = trained.merge_and_unload()
    elif config.lora is not None:
        adapter_of = _base_name(ctx.pipeline.config.student.model)
    target = _save(trained, tokenizer, ctx.folder / "model", adapter_of=adapter_of)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    ctx.details.update(
        {
            "examples": len(examples),
            "steps": trainer.state.global_step,
            "train_loss": round(result.training_loss, 4),
            "losses": [round(loss, 4) for loss in losses],
            "method": ("lora" if config.lora is not None else "full")
            + ("+step_by_step" if config.step_by_step else ""),
            "device": ctx.device,
            "resumed_from": Path(resume_from).name if resume_from else None,
        }
    )
    if config.step_by_step is not None:
        for part in ("label_loss", "rationale_loss"):
            values = [entry[part] for entry in trainer.state.log_history if part in entry]
            if values:
                ctx.details[part] = round(values[-1], 4)
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    write_model_card(target, ctx, training=ctx.details)
    return target


def _args(config: TrainConfig, ctx: StageContext, checkpoints: Path, steps_per_epoch: int) -> Any:
    """The trl.SFTConfig of this training: the stage's settings, then `sft` over them."""
    from synthdistill.devices import default_dtype

    return sft_config(
        {
            "output_dir": str(checkpoints),
            "num_train_epochs": config.epochs,
            "max_steps": config.max_steps,
            "learning_rate": config.learning_rate,
            "lr_scheduler_type": config.lr_scheduler,
            "warmup_steps": config.warmup,
            "per_device_train_batch_size": config.batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "max_length": config.max_length,
            "packing": config.packing,
            "seed": ctx.seed,
            "data_seed": ctx.seed,
            # The device follows the pipeline's `device` (devices.py): bf16 mixed precision on a GPU with it.
            "use_cpu": ctx.device == "cpu",
            "bf16": default_dtype(ctx.device) != _float32(),
            # Checkpointing activations trades compute for memory that a small student does not need
            # (and slows a CPU by ~20%); a large one turns it on with sft: {activation_checkpointing: true}.
            "activation_checkpointing": False,
            # Progress and losses go to run.log through our callback; stdout is for results only.
            "disable_tqdm": True,
            "logging_steps": max(1, min(10, steps_per_epoch)),
            "save_strategy": "steps",
            "save_steps": config.save_steps,
            "save_total_limit": config.save_total_limit,
            "report_to": "none",
            **config.sft,
        }
    )


def _trainer(kwargs: dict[str, Any], config: TrainConfig, tokenizer: Any, ctx: StageContext) -> Any:
    from trl import SFTTrainer

    if config.step_by_step is None:
        return SFTTrainer(**kwargs)
    from synthdistill.stages.train.stepbystep import task_collator, trainer_class

    if config.packing or kwargs["args"].padding_free:
        raise StageError(
            "step_by_step weighs each example's task, and packing or padding_free merges examples; "
            "turn packing off",
            stage=ctx.spec.name,
        )
    return trainer_class()(
        **kwargs,
        data_collator=task_collator(tokenizer.pad_token_id),
        label_weight=config.step_by_step.label_weight,
    )


def _train_dtype(device: str, *, full: bool) -> Any:
    """Full fine-tuning keeps fp32 master weights (bf16 autocast does the speed-up); LoRA freezes the base
    in the device's dtype, where bf16 halves the memory of the frozen weights."""
    from synthdistill.devices import default_dtype

    return _float32() if full else default_dtype(device)


def _float32() -> Any:
    import torch

    return torch.float32


def _resumable_checkpoint(folder: Path, fingerprint: str) -> str | None:
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


def _save(model: Any, tokenizer: Any, target: Path, *, adapter_of: str | None = None) -> Path:
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


def _base_name(model: str) -> str:
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
