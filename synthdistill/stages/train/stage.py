"""train: supervised fine-tuning of the student on the kept records, with trl (full or LoRA).

The records become prompt/completion pairs in chat form (examples.py; trl then puts the loss on the
completion only); the evaluation split never enters training (`on_leak`); a user file can be mixed in
(`extra_data`); distilling step-by-step trains label and rationale as two weighted tasks
(stepbystep.py). sft.py runs trl: checkpoints go to `NN-train/checkpoints/`, so a killed training
resumes with its optimizer state and step count when the same training is asked again; the final model
goes with its tokenizer and a model card to `NN-train/model/`: a LoRA training's adapter alone (loaded
over its base wherever a model folder is taken), or the whole model when `merge` asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from synthdistill.records import Record
from synthdistill.runs.context import StageContext
from synthdistill.runs.steps import Stage
from synthdistill.stages.train.examples import build_examples, check_leaks, extra_records, sample
from synthdistill.stages.train.sft import PLAIN_LORA_KEYS, fine_tune, lora_config, sft_config
from synthdistill.student.prompts import AnswerFormat, Task, TaskCue


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
    # The text, as before the option existed; bench/quality.py measures the three on CommonsenseQA.
    answer_format: AnswerFormat = Field(
        "text",
        description="How a multiple-choice record's answer line names the choice: its text ('The answer "
        "is house.'), its letter ('The answer is (c).') or both ('The answer is (c) house.'); the student "
        "template should ask for the same form (cqa_student.j2, cqa_student_letter.j2, "
        "cqa_student_letter_text.j2). Records of other tasks ignore it.",
    )
    # LoRA by default: on a 2-core CPU it steps faster and peaks lower than full SFT (LAB.md).
    lora: dict[str, Any] | None = Field(
        default_factory=lambda: {"r": 16},
        description="peft.LoraConfig options over the defaults (r 16, lora_alpha 32, lora_dropout 0.05, "
        "target_modules all-linear); null for full fine-tuning.",
    )
    # The adapter of SmolLM2-135M at r 16 is about 20 MB, the merged model 517 MB: most of a run folder.
    merge: bool = Field(
        False,
        description="Whether to save a LoRA student merged into its base (a whole model) instead of the "
        "adapter alone, which synthdistill loads over its base wherever it takes a model folder; full "
        "fine-tuning always saves the whole model.",
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
            key in PLAIN_LORA_KEYS and isinstance(v, PLAIN_LORA_KEYS[key]) for key, v in value.items()
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

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out when it is the text, so that the fingerprints of runs made before the option still hold.
        dumped: dict[str, Any] = handler(self)
        if self.answer_format == "text":
            dumped.pop("answer_format", None)
        return dumped


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Fine-tune the student on the records, save it with a model card, and hand the records on."""
    config: TrainConfig = ctx.config
    kept = list(records)
    training = sample(kept, config.max_examples, ctx.seed)
    if config.extra_data is not None:
        extra = extra_records(config.extra_data, ctx)
        ctx.details["extra_examples"] = len(extra)
        training += extra
    training = check_leaks(training, ctx)
    ctx.details["records"] = len(training)
    if not training:
        # Not an error of the input: the run goes on (evaluate scores the base) and ends with exit 1.
        ctx.log.warning("no records reached training; the student is not trained")
        yield from kept
        return
    examples = build_examples(training, config, ctx)
    model_path = fine_tune(examples, config, ctx)
    ctx.artifacts["student_model"] = model_path
    yield from kept


STAGE = Stage(
    name="train",
    config=TrainConfig,
    run=run,
    summary="Fine-tune the student on the kept records (trl SFT, LoRA or full; step-by-step as an option).",
    inputs=lambda config: [config.template],
    batch_input=True,
    writes_records=False,
    uses=("student",),
    # Label-only training learns the data's gold answers; replies and rationales must come from a teacher,
    # or from a file of them mixed in (extra_data).
    needs_outputs=lambda config: (
        (config.target == "response" or config.step_by_step is not None) and config.extra_data is None
    ),
    needs_answers=lambda config: config.extra_data is None,
)
