"""Supervised fine-tuning with trl's SFTTrainer: LoRA or full, resumable checkpoints, adapter or model."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthdistill.errors import StageError
from synthdistill.records import stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.stages.train.training import (
    base_name,
    quiet,
    resumable_checkpoint,
    save_model,
    schedule_args,
    train_dtype,
)

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


def valid_lora(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stage's `lora` options checked (peft imported only for options beyond the plain ones)."""
    if value is None:
        return None
    plain = all(key in PLAIN_LORA_KEYS and isinstance(v, PLAIN_LORA_KEYS[key]) for key, v in value.items())
    if not plain:
        lora_config({**value})
    elif value.get("r", 1) < 1:
        raise ValueError("lora.r must be at least 1")
    return value


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

    from synthdistill.models import checkpoint_hash, load_causal_lm, resolve_model
    from synthdistill.student.card import write_model_card

    base = resolve_model(ctx.pipeline.config.student.model)
    dtype = train_dtype(ctx.device, full=config.lora is None)
    model, tokenizer = load_causal_lm(base, ctx.device, dtype=dtype)
    model.train()
    steps_per_epoch = math.ceil(len(examples) / (config.batch_size * config.gradient_accumulation_steps))
    checkpoints = ctx.folder / "checkpoints"
    fingerprint = stable_hash(
        examples, config.model_dump(mode="json"), checkpoint_hash(base), ctx.seed, ctx.device
    )
    resume_from = resumable_checkpoint(checkpoints, fingerprint)
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
    quiet(trainer, ctx.log)
    if resume_from:
        ctx.log.info("resuming training from %s", resume_from)
    result = trainer.train(resume_from_checkpoint=resume_from)
    trained: Any = trainer.model
    adapter_of = None
    if config.lora is not None and config.merge:
        trained = trained.merge_and_unload()
    elif config.lora is not None:
        adapter_of = base_name(ctx.pipeline.config.student.model)
    target = save_model(trained, tokenizer, ctx.folder / "model", adapter_of=adapter_of)
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
    """The trl.SFTConfig of this training: the shared schedule and device settings, then `sft` over them."""
    return sft_config(
        {**schedule_args(config, ctx, checkpoints, steps_per_epoch), "packing": config.packing, **config.sft}
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
