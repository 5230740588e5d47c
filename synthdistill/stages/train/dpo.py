"""dpo: direct preference optimisation of the student on the pairs stage's pairs, with trl's DPOTrainer.

It starts from the run's trained student (the train stage's, `ctx.artifacts["student_model"]`) unless
`model` names another, and the reference model is the start, held as trl holds it:
- a LoRA student (an adapter folder) goes on training its own adapter, and trl keeps a frozen copy of it
  (its "ref" adapter) as the reference; the result is again an adapter over the base;
- a whole model (the base, a fully trained or merged student) gets a new LoRA adapter (`lora`), and the
  model with the adapter disabled is the reference;
- `lora: null` trains the whole model against a frozen copy of the start.
Each pair is the student's prompt (`template`) with the chosen and rejected completions in chat form
(runs/dataset.py `pair_texts`: review edits and rejections apply). Checkpoints go to
`NN-dpo/checkpoints/`, so a killed training resumes and ends at the same step; the model, with a card
naming the pairs, their method, beta and the loss, goes to `NN-dpo/model/` and becomes the run's student,
which a following evaluate scores.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from synthdistill.errors import StageError
from synthdistill.records import Record, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.dataset import pair_texts
from synthdistill.runs.steps import Stage
from synthdistill.stages.train.examples import check_leaks, sample
from synthdistill.stages.train.sft import lora_config, valid_lora
from synthdistill.stages.train.training import (
    Schedule,
    base_name,
    quiet,
    resumable_checkpoint,
    save_model,
    schedule_args,
    train_dtype,
)
from synthdistill.student.card import task_cue, write_model_card
from synthdistill.student.prompts import prompt_messages

# Stages that leave a trained student in the run's artifacts for the stages after them.
TRAINERS = ("train", "dpo")


class DPOStageConfig(Schedule):
    """Options of the dpo stage (the schedule's too: epochs, batch_size, save_steps, ...)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None,
        description="The model to start from and compare with (the reference): an alias, a folder (a LoRA "
        "adapter too) or a hub id; None is the run's trained student.",
    )
    template: str = Field("cot_student.j2", description="The student's prompt template (as train uses it).")
    beta: float = Field(
        0.1, gt=0, description="trl's beta: how far the student may move from the reference (higher: less)."
    )
    loss_type: str | list[str] = Field(
        "sigmoid",
        description="trl's loss_type: sigmoid (the DPO paper's), hinge, ipo, robust, ...; a list combines "
        "several (weighted by dpo.loss_weights).",
    )
    # LoRA steps want a larger rate than whole-model DPO (about 1e-6).
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate.")
    lora: dict[str, Any] | None = Field(
        default_factory=lambda: {"r": 16},
        description="peft.LoraConfig options of a new adapter over a whole start model (a LoRA student goes "
        "on training its own adapter); null trains the whole model.",
    )
    merge: bool = Field(
        False,
        description="Whether to save a LoRA result merged into its base (a whole model) instead of the "
        "adapter alone; an adapter over a start folder other than the pipeline's student is always merged, "
        "so that the result never depends on that folder.",
    )
    max_pairs: int | None = Field(
        None, ge=1, description="Train on a seeded sample of at most this many pairs."
    )
    on_leak: Literal["drop", "error", "warn"] = Field(
        "drop", description="What to do with a pair whose question is in the test split (as train does)."
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the pairs.")
    batch_size: int = Field(4, ge=1, description="Pairs per device step.")
    dpo: dict[str, Any] = Field(
        default_factory=dict, description="Passed through to trl.DPOConfig, over the settings above."
    )

    @field_validator("lora")
    @classmethod
    def _valid_lora(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return valid_lora(value)

    @field_validator("dpo")
    @classmethod
    def _valid_dpo(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            dpo_config({"output_dir": "unused", "use_cpu": True, "bf16": False, **value})
        return value

    @model_validator(mode="after")
    def _after_what_it_needs(self, info: ValidationInfo) -> DPOStageConfig:
        before = (info.context or {}).get("stages_before")
        if before is None:
            return self
        if "pairs" not in before:
            raise ValueError(
                "dpo trains on preference pairs, and no pairs stage comes before it; put a pairs stage "
                "(method: teacher_over_student, correct_over_incorrect or judge) before dpo"
            )
        if self.model is None and not set(before) & set(TRAINERS):
            raise ValueError(
                "dpo starts from the run's trained student, and no train stage comes before it; put a train "
                "stage before dpo, or name the model to start from in `model:`"
            )
        return self


def dpo_config(options: dict[str, Any]) -> Any:
    """A trl.DPOConfig from `options`; ValueError names a bad key."""
    from trl import DPOConfig

    try:
        return DPOConfig(**options)
    except TypeError as exc:
        raise ValueError(f"not an option of trl.DPOConfig ({exc}); see its documentation") from None


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Preference-tune the student on the pairs, save it with a model card, and hand the records on."""
    config: DPOStageConfig = ctx.config
    kept = list(records)
    pairs = [r for r in kept if pair_texts(r) is not None]
    pairs = check_leaks(sample(pairs, config.max_pairs, ctx.seed), ctx)
    ctx.details["records"] = len(pairs)
    ctx.details["pairs"] = _pairs_facts(pairs, ctx)
    if not pairs:
        # As train: not an error of the input; the run goes on (evaluate scores the student so far).
        ctx.log.warning("no preference pairs reached dpo; the student is not trained further")
        yield from kept
        return
    start = config.model or ctx.artifacts.get("student_model")
    if start is None:
        raise StageError(
            "no model to start from: put a train stage before dpo, or set dpo.model", stage=ctx.spec.name
        )
    ctx.artifacts["student_model"] = preference_tune(_examples(pairs, str(start), ctx), str(start), ctx)
    yield from kept


def preference_tune(examples: list[dict[str, Any]], start: str, ctx: StageContext) -> Path:
    """Train `start` on the preference `examples` (resuming this same training's checkpoint); the folder
    of the saved result."""
    from datasets import Dataset
    from trl import DPOTrainer

    from synthdistill.models import checkpoint_hash, resolve_model

    config: DPOStageConfig = ctx.config
    path = resolve_model(start)
    model, ref_model, tokenizer, how = _models(start, path, config, ctx)
    model.train()
    steps_per_epoch = math.ceil(len(examples) / (config.batch_size * config.gradient_accumulation_steps))
    checkpoints = ctx.folder / "checkpoints"
    fingerprint = stable_hash(
        examples, config.model_dump(mode="json"), checkpoint_hash(path), ctx.seed, ctx.device
    )
    resume_from = resumable_checkpoint(checkpoints, fingerprint)
    settings = {"beta": config.beta, "loss_type": config.loss_type, **config.dpo}
    try:
        args = dpo_config({**schedule_args(config, ctx, checkpoints, steps_per_epoch), **settings})
    except ValueError as exc:
        raise StageError(f"{exc}; check the dpo options and dpo.dpo", stage=ctx.spec.name) from None
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=lora_config(config.lora) if how["new_adapter"] and config.lora is not None else None,
    )
    quiet(trainer, ctx.log)
    if resume_from:
        ctx.log.info("resuming training from %s", resume_from)
    result = trainer.train(resume_from_checkpoint=resume_from)
    trained: Any = trainer.model
    if "ref" in getattr(trained, "peft_config", {}):
        trained.delete_adapter("ref")  # trl's frozen copy of the start adapter: the reference, not the result
    adapter_of = how["adapter_of"]
    if adapter_of is not None and (config.merge or how.get("merge")):
        trained, adapter_of = trained.merge_and_unload(), None
    target = save_model(trained, tokenizer, ctx.folder / "model", adapter_of=adapter_of)
    history = trainer.state.log_history
    ctx.details.update(
        {
            "examples": len(examples),
            "steps": trainer.state.global_step,
            "train_loss": round(result.training_loss, 4),
            "losses": [round(entry["loss"], 4) for entry in history if "loss" in entry],
            "margins": [
                round(entry["rewards/margins"], 4) for entry in history if "rewards/margins" in entry
            ],
            "method": how["method"],
            "reference": how["reference"],
            "start": start,
            "device": ctx.device,
            "resumed_from": Path(resume_from).name if resume_from else None,
        }
    )
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    write_model_card(target, ctx, training=ctx.details)
    return target


def _models(
    start: str, path: Path, config: DPOStageConfig, ctx: StageContext
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(model, reference or None, tokenizer, how) for starting from `start` (its folder `path`)."""
    from synthdistill.models import adapter_base, is_adapter, load_causal_lm, resolve_model

    dtype = train_dtype(ctx.device, full=config.lora is None)
    if config.lora is None:
        model, tokenizer = load_causal_lm(path, ctx.device, dtype=dtype)
        reference, _ = load_causal_lm(path, ctx.device, dtype=dtype)
        how: dict[str, Any] = {"method": "dpo+full", "reference": "a frozen copy of the start"}
        return model, reference, tokenizer, {**how, "adapter_of": None, "new_adapter": False}
    if is_adapter(path):
        from peft import PeftModel

        base = adapter_base(path)
        model, tokenizer = load_causal_lm(resolve_model(base), ctx.device, dtype=dtype)
        model = PeftModel.from_pretrained(model, str(path), is_trainable=True)
        how = {"method": "dpo+lora (the start's adapter)", "reference": "the start's adapter, frozen"}
        return model, None, tokenizer, {**how, "adapter_of": base, "new_adapter": False}
    model, tokenizer = load_causal_lm(path, ctx.device, dtype=dtype)
    # An adapter over anything but the pipeline's student would depend on a folder the run does not own.
    own = start == ctx.pipeline.config.student.model
    how = {"method": "dpo+lora", "reference": "the start, adapter disabled", "merge": not own}
    return model, None, tokenizer, {**how, "adapter_of": base_name(start), "new_adapter": True}


def _examples(pairs: list[Record], start: str, ctx: StageContext) -> list[dict[str, Any]]:
    """The pairs in trl's conversational preference form, on the student's prompt."""
    config: DPOStageConfig = ctx.config
    cue = task_cue(Path(start))
    examples = []
    for pair in pairs:
        texts = pair_texts(pair)
        assert texts is not None
        chosen, rejected = texts
        examples.append(
            {
                "prompt": prompt_messages(ctx.templates, config.template, pair, cue),
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return examples


def _pairs_facts(pairs: list[Record], ctx: StageContext) -> dict[str, Any]:
    """What the card says of the pairs: the stage that made them and how many each method made."""
    methods = Counter(str(p.provenance[-1].params.get("method")) for p in pairs if p.provenance)
    made_by = [
        spec.folder for spec in ctx.pipeline.stages if spec.name == "pairs" and spec.index < ctx.spec.index
    ]
    return {"stage": made_by[-1] if made_by else None, "methods": dict(methods)}


STAGE = Stage(
    name="dpo",
    config=DPOStageConfig,
    run=run,
    summary="Preference-tune the student on the pairs (trl DPO, LoRA or full, the start as reference).",
    inputs=lambda config: [config.template],
    batch_input=True,
    writes_records=False,
    uses=("student",),
    needs_outputs=lambda config: True,
)
