"""train: supervised fine-tuning of the student on the kept records, with trl (full or LoRA)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.context import StageContext
from synthdistill.errors import StageError
from synthdistill.records import Record
from synthdistill.stages import Stage
from synthdistill.student import prompt_messages, target_text


class LoraOptions(BaseModel):
    """LoRA adapter settings (peft); anything else goes through `peft`."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="Scaling numerator (lora_alpha).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: str | list[str] = Field("all-linear", description="Modules that get adapters.")
    peft: dict[str, Any] = Field(default_factory=dict, description="Passed through to peft.LoraConfig.")


class TrainConfig(BaseModel):
    """Options of the train stage."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        "cot_student.j2", description="The student's prompt template (evaluate uses it too)."
    )
    # LoRA by default: on a 2-core CPU it steps faster and peaks lower than full SFT (LAB.md).
    lora: LoraOptions | None = Field(
        default_factory=LoraOptions, description="LoRA settings; null for full fine-tuning."
    )
    epochs: float = Field(2.0, gt=0, description="Passes over the training records.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps; -1 lets epochs decide.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (LoRA wants ~1e-4..5e-4).")
    batch_size: int = Field(8, ge=1, description="Sequences per device step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Steps accumulated per optimizer step.")
    max_length: int = Field(384, ge=16, description="Longest tokenized example; longer ones are truncated.")
    trl: dict[str, Any] = Field(default_factory=dict, description="Passed through to trl.SFTConfig.")


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Fine-tune the student on the records, save it merged, and hand the records on."""
    config: TrainConfig = ctx.config
    kept = list(records)
    examples = [
        {
            "prompt": prompt_messages(ctx.templates, config.template, record),
            "completion": [{"role": "assistant", "content": target_text(record)}],
        }
        for record in kept
    ]
    if not examples:
        raise StageError(
            "no records reached training; loosen the filter or generate more (n, data.split.train)",
            stage=ctx.spec.name,
        )
    model_path = _fine_tune(examples, config, ctx)
    ctx.artifacts["student_model"] = model_path
    yield from kept


def _fine_tune(examples: list[dict[str, Any]], config: TrainConfig, ctx: StageContext) -> Path:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    from synthdistill.devices import default_dtype
    from synthdistill.models import load_causal_lm, resolve_model

    base = resolve_model(ctx.pipeline.config.student.model)
    model, tokenizer = load_causal_lm(base, ctx.device)
    model.train()
    use_bf16 = default_dtype(ctx.device) == torch.bfloat16
    steps_per_epoch = math.ceil(len(examples) / (config.batch_size * config.gradient_accumulation_steps))
    args = SFTConfig(
        output_dir=str(ctx.folder / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_length=config.max_length,
        seed=ctx.seed,
        data_seed=ctx.seed,
        use_cpu=ctx.device == "cpu",
        bf16=use_bf16,
        # Checkpointing trades compute for memory a 135M model does not need, and slows a CPU.
        activation_checkpointing=False,
        # Progress and losses go to run.log through our callback; stdout is for results only.
        disable_tqdm=True,
        logging_steps=max(1, min(10, steps_per_epoch)),
        save_strategy="no",
        report_to="none",
        **config.trl,
    )
    peft_config = None
    if config.lora is not None:
        peft_config = LoraConfig(
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=config.lora.target_modules,
            task_type="CAUSAL_LM",
            **config.lora.peft,
        )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_log_callback(ctx.log))
    result = trainer.train()
    trained: Any = trainer.model
    if config.lora is not None:
        trained = trained.merge_and_unload()
    target = ctx.folder / "model"
    trained.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    ctx.details.update(
        {
            "examples": len(examples),
            "steps": trainer.state.global_step,
            "train_loss": round(result.training_loss, 4),
            "losses": [round(loss, 4) for loss in losses],
            "method": "lora" if config.lora is not None else "full",
        }
    )
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
    summary="Fine-tune the student on the kept records (trl SFT, LoRA or full).",
    inputs=lambda config: [config.template],
    batch_input=True,
    writes_records=False,
    uses=("student",),
)
