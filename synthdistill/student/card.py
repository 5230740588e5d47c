"""The model card saved beside a trained student: data, teacher, filters, training and metrics.

The card's facts live in `synthdistill-card.json` beside the weights; `README.md` is rendered from
them, so that evaluation can add its metrics later and render the card again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthdistill.models import is_adapter
from synthdistill.runs.context import StageContext
from synthdistill.runs.folder import shareable_path
from synthdistill.student.prompts import Task, TaskCue

CARD_DATA = "synthdistill-card.json"


def write_model_card(folder: Path, ctx: StageContext, *, training: dict[str, Any]) -> Path:
    """Write the card of the model in `folder`, trained by the stage of `ctx`; return the README's path."""
    config = ctx.pipeline.config
    teacher = config.teacher
    facts = {
        "run": ctx.run.run.root.name,
        "base_model": shareable_path(config.student.model),
        # A LoRA student is saved as its adapter alone unless train.merge asked for the whole model.
        "adapter": is_adapter(folder),
        # Backend and model only: an endpoint address or a key variable's name says nothing to a reader.
        "teacher": {"backend": teacher.backend, "model": teacher.model},
        # Paths as a published card may show them (no local folders), and the --limit the run had.
        "data": {
            **config.data.model_dump(mode="json"),
            "source": shareable_path(config.data.source),
            "test_source": config.data.test_source and shareable_path(config.data.test_source),
            "limit": ctx.run.limit,
        },
        "seed": config.seed,
        "stages_before_training": [
            {spec.name: spec.config.model_dump(mode="json")}
            for spec in ctx.pipeline.stages
            if spec.index < ctx.spec.index
        ],
        "training": {
            **ctx.config.model_dump(mode="json"),
            **{k: v for k, v in training.items() if k != "losses"},
        },
        "metrics": {},
    }
    (folder / CARD_DATA).write_text(json.dumps(facts, indent=2, default=str), encoding="utf-8")
    return _render(folder, facts)


def add_metrics(folder: Path, metrics: dict[str, Any]) -> Path | None:
    """Add evaluation metrics to the card of the model in `folder`; None when it has no card."""
    path = folder / CARD_DATA
    if not path.is_file():
        return None
    facts = json.loads(path.read_text(encoding="utf-8"))
    facts["metrics"] = metrics
    path.write_text(json.dumps(facts, indent=2, default=str), encoding="utf-8")
    return _render(folder, facts)


def task_cue(folder: Path, task: Task = "label") -> TaskCue:
    """The cue that asks the model in `folder` for `task`: a step-by-step student's own, else none."""
    try:
        facts = json.loads((Path(folder) / CARD_DATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return TaskCue()
    step_by_step = facts.get("training", {}).get("step_by_step") or {}
    return TaskCue(str(step_by_step.get(f"{task}_prefix", "")), str(step_by_step.get(f"{task}_suffix", "")))


def _render(folder: Path, facts: dict[str, Any]) -> Path:
    training = facts["training"]
    data = facts["data"]
    lines = [
        "---",
        f"base_model: {facts['base_model']}",
        f"library_name: {'peft' if facts.get('adapter') else 'transformers'}",
        "tags: [synthdistill, distillation, trl, sft]",
        "---",
        "",
        f"# {facts['run']}: student distilled by synthdistill",
        "",
        f"Fine-tuned from `{facts['base_model']}` on rationales written by the teacher "
        f"`{facts['teacher']['model']}` ({facts['teacher']['backend']}).",
        "",
    ]
    if facts.get("adapter"):
        lines += [
            f"This folder holds the LoRA adapter alone: load it over `{facts['base_model']}` with peft "
            "(`PeftModel.from_pretrained`), or give the folder to synthdistill wherever it takes a model "
            "(`synthdistill evaluate --model`), which does the same.",
            "",
        ]
    lines += [
        "## Data",
        "",
        f"- source: `{data['source']}` (options {data.get('options') or {}}), split "
        f"train {data['split']['train']} / test {data['split']['test']}"
        + (
            f", --limit {data['limit']} (each split cut to its first {data['limit']})"
            if data.get("limit")
            else ""
        )
        + f", seed {facts['seed']}",
        "- stages before training (generation, voting and filters):",
    ]
    lines += [f"  - `{json.dumps(stage, default=str)}`" for stage in facts["stages_before_training"]] or [
        "  - none"
    ]
    options = {k: training[k] for k in sorted(training) if k not in _SHOWN}
    lines += [
        "",
        "## Training",
        "",
        f"- method: {training.get('method')}, {training.get('examples')} examples from "
        f"{training.get('records')} records, {training.get('steps')} steps, final train loss "
        f"{training.get('train_loss')}",
        f"- leaks of the test split found: {training.get('leaks', 0)} (on_leak: {training.get('on_leak')})",
        f"- options: `{json.dumps(options, default=str)}`",
        "",
        "## Evaluation",
        "",
    ]
    metrics = facts.get("metrics") or {}
    if not metrics:
        lines.append("Not evaluated yet (the evaluate stage adds its metrics here).")
    else:
        lines += ["| model | accuracy | 95% CI | items |", "| --- | --- | --- | --- |"]
        for label, values in metrics.items():
            if "accuracy" in values:
                low, high = values.get("ci", ["", ""])
                lines.append(f"| {label} | {values['accuracy']:.3f} | {low}-{high} | {values.get('n')} |")
        judge = metrics.get("judge")
        if judge:
            lines += ["", f"Judge win rate of the student over its base: {judge['win_rate']:.3f} "
                      f"({judge['wins']} wins, {judge['ties']} ties, {judge['losses']} losses)."]  # fmt: skip
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_SHOWN = {
    "method",
    "examples",
    "records",
    "steps",
    "train_loss",
    "leaks",
    "on_leak",
    "leaked_ids",
    "warnings",
}
