"""gkd: on-policy and logit distillation of a local teacher into the student, with trl's GKD trainer.

Generalized knowledge distillation (Agarwal et al., 2024) matches the student's next-token distribution to
the teacher's, token by token, under the generalized Jensen-Shannon divergence: `beta` 0 is the forward
KL (teacher to student), 1 the reverse KL that MiniLLM (Gu et al., 2024) minimises, 0.5 the symmetric JSD.
With probability `lmbda` a step trains on completions the student samples itself (on-policy, at
`temperature`, up to `max_new_tokens`), else on the records' own completions (the rationale and answer
line, as train learns them); `seq_kd` replaces those with the teacher's own samples (sequence-level KD).
The divergence itself is taken at temperature 1 (trl's `temperature` is the sampling one).

The teacher has to give its logits over the student's vocabulary, so it is a local model with the
student's tokenizer: `teacher_model: student` (the default) is the run's trained student (the train
stage's, `ctx.artifacts["student_model"]`: in the embedded demo a stronger model than the base), or any
local model (an alias, a folder, a LoRA adapter folder over its base, a cached hub id); `teacher:` may
name one of the pipeline's teachers when it is local. An API teacher is refused when the pipeline loads,
a named teacher with another tokenizer by preflight (`validate`, and `run` before anything is spent);
SFT or DPO on its outputs is the way to distil those. The options live in gkd_config.py.

The student starts from the pipeline's student (`student.model`) unless `model` names another, with a new
LoRA adapter (`lora`) or whole (`lora: null`), as dpo does. Prompts are the student's (`template`, as
train builds them); checkpoints go to `NN-gkd/checkpoints/`, so a killed training resumes and ends at the
same step; the result, with its model card, goes to `NN-gkd/model/` and becomes the run's student, which
a following evaluate scores.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from synthdistill.config import DEFAULT_TEACHER
from synthdistill.errors import StageError
from synthdistill.records import Record, stable_hash
from synthdistill.runs.context import StageContext
from synthdistill.runs.folder import shareable_path
from synthdistill.runs.steps import Stage
from synthdistill.stages.train.examples import check_leaks, sample
from synthdistill.stages.train.gkd_config import GKDStageConfig, trl_config, vocabulary_problem
from synthdistill.stages.train.sft import lora_config
from synthdistill.stages.train.training import (
    base_name,
    quiet,
    resumable_checkpoint,
    save_model,
    schedule_args,
    train_dtype,
)
from synthdistill.student.card import task_cue, write_model_card
from synthdistill.student.prompts import prompt_messages, target_text


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Distil the teacher into the student on the records' prompts, save it with a card, hand records on."""
    config: GKDStageConfig = ctx.config
    kept = list(records)
    usable = [r for r in kept if (r.rationale or "").strip() or r.answer is not None or r.gold is not None]
    chosen = check_leaks(sample(usable, config.max_examples, ctx.seed), ctx)
    ctx.details["records"] = len(chosen)
    if not chosen:
        # As train: not an error of the input; the run goes on (evaluate scores the student so far).
        ctx.log.warning("no records with a prompt and a completion reached gkd; no student is trained")
        yield from kept
        return
    teacher = _teacher(config, ctx)
    start = config.model or ctx.pipeline.config.student.model
    examples = _examples(chosen, start, ctx)
    ctx.artifacts["student_model"] = distil(examples, start, teacher, ctx)
    yield from kept


def distil(examples: list[dict[str, Any]], start: str, teacher: str, ctx: StageContext) -> Path:
    """Train `start` towards `teacher` on the chat `examples` (resuming this same training's checkpoint);
    the folder of the saved result."""
    from datasets import Dataset
    from trl.experimental.gkd import GKDTrainer

    from synthdistill.devices import default_dtype
    from synthdistill.models import checkpoint_hash, load_causal_lm, resolve_model

    config: GKDStageConfig = ctx.config
    # Preflight compared a named teacher's tokenizer; the run's trained student is known only now.
    problem = vocabulary_problem(start, teacher)
    if problem is not None:
        raise StageError(problem, stage=ctx.spec.name)
    path, teacher_path = resolve_model(start), resolve_model(teacher)
    model, tokenizer, how = _student(start, path, config, ctx)
    model.train()
    teacher_lm, _ = load_causal_lm(teacher_path, ctx.device, dtype=default_dtype(ctx.device))
    steps_per_epoch = math.ceil(len(examples) / (config.batch_size * config.gradient_accumulation_steps))
    checkpoints = ctx.folder / "checkpoints"
    fingerprint = stable_hash(
        examples,
        config.model_dump(mode="json"),
        checkpoint_hash(path),
        checkpoint_hash(teacher_path),
        ctx.seed,
        ctx.device,
    )
    resume_from = resumable_checkpoint(checkpoints, fingerprint)
    settings = {
        "beta": config.beta,
        "lmbda": config.lmbda,
        "temperature": config.temperature,
        "max_new_tokens": config.max_new_tokens,
        "seq_kd": config.seq_kd,
        **config.gkd,
    }
    try:
        args = trl_config({**schedule_args(config, ctx, checkpoints, steps_per_epoch), **settings})
    except ValueError as exc:
        raise StageError(f"{exc}; check the gkd options and gkd.gkd", stage=ctx.spec.name) from None
    trainer = GKDTrainer(
        model=model,
        teacher_model=teacher_lm,
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
    adapter_of = how["adapter_of"]
    if adapter_of is not None and (config.merge or how["merge"]):
        trained, adapter_of = trained.merge_and_unload(), None
    target = save_model(trained, tokenizer, ctx.folder / "model", adapter_of=adapter_of)
    ctx.details.update(
        {
            "examples": len(examples),
            "steps": trainer.state.global_step,
            "train_loss": round(result.training_loss, 4),
            "losses": [round(entry["loss"], 4) for entry in trainer.state.log_history if "loss" in entry],
            "method": how["method"],
            "teacher": shareable_path(teacher),
            "start": shareable_path(start),
            "device": ctx.device,
            "resumed_from": Path(resume_from).name if resume_from else None,
        }
    )
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    write_model_card(target, ctx, training=ctx.details)
    return target


def _teacher(config: GKDStageConfig, ctx: StageContext) -> str:
    """The teacher's model name: a local pipeline teacher's, the run's trained student, or as named."""
    named = config.named_teacher(
        {DEFAULT_TEACHER: ctx.pipeline.config.teacher, **ctx.pipeline.config.teachers}
    )
    if named is not None:
        return named
    trained = ctx.artifacts.get("student_model")
    if trained is None:
        raise StageError(
            "teacher_model: student, and no stage before gkd left a trained student; put a train stage "
            "before gkd, or name a local teacher model",
            stage=ctx.spec.name,
        )
    return str(trained)


def _student(
    start: str, path: Path, config: GKDStageConfig, ctx: StageContext
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, how) for starting from `start` (its folder `path`), as dpo starts."""
    from synthdistill.models import adapter_base, is_adapter, load_causal_lm, resolve_model

    dtype = train_dtype(ctx.device, full=config.lora is None)
    if config.lora is None:
        model, tokenizer = load_causal_lm(path, ctx.device, dtype=dtype)
        return (
            model,
            tokenizer,
            {"method": "gkd+full", "adapter_of": None, "new_adapter": False, "merge": False},
        )
    if is_adapter(path):
        from peft import PeftModel

        base = adapter_base(path)
        model, tokenizer = load_causal_lm(resolve_model(base), ctx.device, dtype=dtype)
        model = PeftModel.from_pretrained(model, str(path), is_trainable=True)
        how = {"method": "gkd+lora (the start's adapter)", "adapter_of": base, "new_adapter": False}
        return model, tokenizer, {**how, "merge": False}
    model, tokenizer = load_causal_lm(path, ctx.device, dtype=dtype)
    # An adapter over anything but the pipeline's student would depend on a folder the run does not own.
    own = start == ctx.pipeline.config.student.model
    how = {"method": "gkd+lora", "adapter_of": base_name(start), "new_adapter": True, "merge": not own}
    return model, tokenizer, how


def _examples(records: list[Record], start: str, ctx: StageContext) -> list[dict[str, Any]]:
    """The records as chat conversations on the student's prompt, ending in the completion train learns
    (the off-policy steps' target; the on-policy ones keep the prompt alone)."""
    config: GKDStageConfig = ctx.config
    cue, task = task_cue(Path(start)), ctx.pipeline.config.data.task
    return [
        {
            "messages": [
                *prompt_messages(ctx.templates, config.template, record, cue),
                {"role": "assistant", "content": target_text(record, "text", task)},
            ]
        }
        for record in records
    ]


STAGE = Stage(
    name="gkd",
    config=GKDStageConfig,
    run=run,
    summary="Distil a local teacher's logits into the student (trl GKD: generalized JSD, on-policy samples).",
    inputs=lambda config: [config.template],
    batch_input=True,
    writes_records=False,
    uses=("student",),
    needs_answers=lambda config: config.lmbda < 1 and not config.seq_kd,
)
