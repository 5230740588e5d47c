"""train: supervised fine-tuning of the student on the kept records, with trl (full or LoRA).

The records become prompt/completion pairs in chat form (trl then puts the loss on the completion
only); the evaluation split never enters training (`on_leak`); a user file can be mixed in
(`extra_data`); distilling step-by-step trains label and rationale as two weighted tasks. Checkpoints
go to `NN-train/checkpoints/`, so a killed training resumes with its optimizer state and step count
when the same training is asked again; the final model is saved merged, with its tokenizer and a model
card, to `NN-train/model/`.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthdistill.errors import DataError, StageError
from synthdistill.records import Record, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.student.prompts import (
    Task,
    TaskCue,
    label_text,
    normalize_question,
    prompt_messages,
    response_text,
    target_text,
)

# Defaults under the user's `lora` keys: all-linear adapters of rank 16 trained well on SmolLM2 (LAB.md).
LORA_DEFAULTS: dict[str, Any] = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "target_modules": "all-linear",
}
# LoRA keys checked here without importing peft (6 s), so that `synthdistill validate` stays fast.
_PLAIN_LORA_KEYS: dict[str, type | tuple[type, ...]] = {
    "r": int,
    "lora_alpha": int,
    "lora_dropout": float,
    "target_modules": (str, list),
}


class StepByStepConfig(BaseModel):
    """Distilling step-by-step: label and rationale as two tasks with weighted losses."""

    model_config = ConfigDict(extra="forbid")

    label_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Weight of the label task's loss; the rationale task gets 1 - label_weight "
        "(1 is label-only training).",
    )
    # The paper's T5 student read tags at the start ("[label] "); a decoder-only student barely told those
    # apart (299 of 300 answers to "[rationale] " were the bare label), so the default cue is an
    # instruction at the end of the prompt, next to where the answer starts: 459 of 900 rationale prompts
    # then got steps after one epoch per task, 299 of 300 after two, and label prompts the label
    # (bench/README.md, distillation quality).
    label_prefix: str = Field("", description="Starts the label task's prompt (evaluation's too).")
    label_suffix: str = Field(
        "\n\nGive the answer only.", description="Ends the label task's prompt (evaluation's too)."
    )
    rationale_prefix: str = Field("", description="Starts the rationale task's prompt.")
    rationale_suffix: str = Field("\n\nGive the steps only.", description="Ends the rationale task's prompt.")

    def cue(self, task: Task) -> TaskCue:
        """The text around the prompt that asks for `task`."""
        return TaskCue(getattr(self, f"{task}_prefix"), getattr(self, f"{task}_suffix"))


class ExtraDataConfig(BaseModel):
    """A user file mixed into the training set."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        description="A .jsonl/.json/.csv/.parquet file (relative to the pipeline file) or hf:<name>."
    )
    fields: dict[str, str | dict[str, str]] = Field(
        default_factory=dict,
        description="Task field -> column, jinja expression or {from, regex}, as in data.fields; question "
        "is required, rationale and answer are learnt when present (else the gold answer alone).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the file source (key, split)."
    )
    limit: int | None = Field(None, ge=1, description="Use at most this many rows; None uses them all.")


class TrainConfig(BaseModel):
    """Options of the train stage."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        "cot_student.j2", description="The student's prompt template (evaluate uses it too)."
    )
    target: Literal["rationale", "label", "response"] = Field(
        "rationale",
        description="What the student learns to write: the rationale and the answer sentence, the "
        "answer sentence alone (label-only training), or the teacher's reply as written (open-ended "
        "instructions, generate with parse: text).",
    )
    # LoRA by default: on a 2-core CPU it steps faster and peaks lower than full SFT (LAB.md).
    lora: dict[str, Any] | None = Field(
        default_factory=lambda: {"r": 16},
        description="peft.LoraConfig options over the defaults (r 16, lora_alpha 32, lora_dropout 0.05, "
        "target_modules all-linear); null for full fine-tuning.",
    )
    epochs: float = Field(2.0, gt=0, description="Passes over the training examples.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps; -1 lets epochs decide.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (LoRA wants ~1e-4..5e-4).")
    lr_scheduler: str = Field(
        "linear", description="Learning-rate schedule (transformers' lr_scheduler_type)."
    )
    warmup: float = Field(
        0.0, ge=0.0, description="Learning-rate warmup: a share of the steps below 1, else a number of steps."
    )
    batch_size: int = Field(8, ge=1, description="Sequences per device step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Steps accumulated per optimizer step.")
    max_length: int = Field(384, ge=16, description="Longest tokenized example; longer ones are truncated.")
    packing: bool = Field(
        False, description="Whether to pack several short examples into one sequence (faster on a GPU)."
    )
    max_examples: int | None = Field(
        None,
        ge=1,
        description="Train on a seeded sample of at most this many records (equal-data comparisons).",
    )
    step_by_step: StepByStepConfig | None = Field(
        None, description="Distilling step-by-step: train label and rationale as two weighted tasks."
    )
    extra_data: ExtraDataConfig | None = Field(None, description="A user file mixed into the training set.")
    on_leak: Literal["drop", "error", "warn"] = Field(
        "drop",
        description="What to do with a training example whose question is in the test split: drop it, "
        "stop with an error, or keep it with a warning. Leaks are always reported.",
    )
    save_steps: int = Field(20, ge=1, description="Optimizer steps between checkpoints (to resume a kill).")
    save_total_limit: int = Field(1, ge=1, description="Most checkpoints kept on disk.")
    keep_checkpoints: bool = Field(
        False, description="Whether to keep the checkpoints once training finished (they exist to resume)."
    )
    sft: dict[str, Any] = Field(
        default_factory=dict, description="Passed through to trl.SFTConfig, over the settings above."
    )

    @field_validator("lora")
    @classmethod
    def _valid_lora(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        plain = all(
            key in _PLAIN_LORA_KEYS and isinstance(v, _PLAIN_LORA_KEYS[key]) for key, v in value.items()
        )
        if not plain:
            # Only options beyond the plain ones pay for importing peft.
            lora_config({**value})
        elif value.get("r", 1) < 1:
            raise ValueError("lora.r must be at least 1")
        return value

    @field_validator("sft")
    @classmethod
    def _valid_sft(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            sft_config(
                {
                    "output_dir": "unused",
                    "use_cpu": True,
                    "bf16": False,
                    "activation_checkpointing": False,
                    **value,
                }
            )
        return value


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Fine-tune the student on the records, save it merged with a model card, and hand the records on."""
    config: TrainConfig = ctx.config
    kept = list(records)
    training = _sample(kept, config.max_examples, ctx.seed)
    if config.extra_data is not None:
        extra = _extra_records(config.extra_data, ctx)
        ctx.details["extra_examples"] = len(extra)
        training += extra
    training = _check_leaks(training, ctx)
    if not training:
        raise StageError(
            "no records reached training; loosen the filter or generate more (n, data.split.train)",
            stage=ctx.spec.name,
        )
    ctx.details["records"] = len(training)
    examples = build_examples(training, config, ctx)
    model_path = _fine_tune(examples, config, ctx)
    ctx.artifacts["student_model"] = model_path
    yield from kept


def build_examples(records: list[Record], config: TrainConfig, ctx: StageContext) -> list[dict[str, Any]]:
    """Prompt/completion pairs in chat form; with step-by-step, a label and a rationale example per record."""
    from synthdistill.stages.train.stepbystep import TASK_IDS

    template = config.template
    if config.step_by_step is None:
        learn = {"label": label_text, "rationale": target_text, "response": response_text}[config.target]
        return [_example(ctx, template, r, TaskCue(), learn(r)) for r in records]
    sbs = config.step_by_step
    examples = []
    for record in records:
        label = _example(ctx, template, record, sbs.cue("label"), label_text(record))
        examples.append({**label, "task": TASK_IDS["label"]})
        if (record.rationale or "").strip():
            rationale = _example(
                ctx, template, record, sbs.cue("rationale"), (record.rationale or "").strip()
            )
            examples.append({**rationale, "task": TASK_IDS["rationale"]})
    return examples


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


def _example(
    ctx: StageContext, template: str, record: Record, cue: TaskCue, completion: str
) -> dict[str, Any]:
    return {
        "prompt": prompt_messages(ctx.templates, template, record, cue),
        "completion": [{"role": "assistant", "content": completion}],
    }


def _sample(records: list[Record], limit: int | None, seed: int) -> list[Record]:
    if limit is None or len(records) <= limit:
        return list(records)
    return random.Random(seed).sample(records, limit)


def _extra_records(extra: ExtraDataConfig, ctx: StageContext) -> list[Record]:
    """The user file's rows as records whose rationale and answer (when mapped) are what is learnt."""
    from synthdistill.data import load_items

    file = str(ctx.pipeline.path)
    key = f"stages[{ctx.spec.index - 1}].train.extra_data.source"
    items = load_items(extra.source, extra.fields, extra.options, ctx.pipeline.base_dir, file=file, key=key)
    records = []
    for item in items[: extra.limit]:
        if "question" not in item:
            raise DataError(
                f"{file}: train.extra_data: rows of {extra.source} have no question; map one with "
                "extra_data.fields.question"
            )
        record = Record.from_input(item)
        records.append(
            record.model_copy(update={"rationale": item.get("rationale"), "answer": item.get("answer")})
        )
    return records


def _check_leaks(records: list[Record], ctx: StageContext) -> list[Record]:
    """Report (and by `on_leak`, drop or refuse) training records whose question is in the test split."""
    config: TrainConfig = ctx.config
    held_out = {normalize_question(r.input.get("question", "")) for r in ctx.test_records}
    held_out.discard("")
    leaked = [r for r in records if normalize_question(r.input.get("question", "")) in held_out]
    if not leaked:
        ctx.details["leaks"] = 0
        return records
    message = (
        f"{len(leaked)} training examples have a question of the test split "
        f"(first ids: {', '.join(r.id for r in leaked[:5])})"
    )
    ctx.details["leaks"] = len(leaked)
    ctx.details["leaked_ids"] = [r.id for r in leaked[:100]]
    if config.on_leak == "error":
        raise StageError(
            f"{message}; remove them from the training data, or set train.on_leak to drop",
            stage=ctx.spec.name,
        )
    action = "dropped" if config.on_leak == "drop" else "kept (on_leak: warn)"
    ctx.details.setdefault("warnings", []).append(f"{message}: {action}")
    ctx.log.warning("%s: %s", message, action)
    if config.on_leak == "warn":
        return records
    ids = {id(r) for r in leaked}
    return [r for r in records if id(r) not in ids]


def _fine_tune(examples: list[dict[str, Any]], config: TrainConfig, ctx: StageContext) -> Path:
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
    if config.lora is not None:
        trained = trained.merge_and_unload()
    target = _save(trained, tokenizer, ctx.folder / "model")
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


def _save(model: Any, tokenizer: Any, target: Path) -> Path:
    """Save model and tokenizer to `target` by way of a temporary folder: a kill leaves no half model."""
    scratch = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    model.save_pretrained(str(scratch))
    tokenizer.save_pretrained(str(scratch))
    if target.exists():
        shutil.rmtree(target)
    scratch.rename(target)
    return target


def _log_callback(log: logging.Logger) -> Any:
    """A TrainerCallback sending the trainer's log lines (loss, learning rate) to `log`, hence to run.log."""
    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            log.info("step %d: %s", state.global_step, logs)

    return LogCallback()


STAGE = Stage(
    name="train",
    config=TrainConfig,
    run=run,
    summary="Fine-tune the student on the kept records (trl SFT, LoRA or full; step-by-step as an option).",
    inputs=lambda config: [config.template],
    batch_input=True,
    writes_records=False,
    uses=("student",),
)
