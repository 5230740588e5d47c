"""evaluate: accuracy of the base student, the trained student and (optionally) the teacher on held-out items.

Answers are read and judged by the task's scorer (scoring/scorer.py), as the answer_match critic and
self_consistency read them (accuracy.py; free text also gets ROUGE-L and embedding similarity); each
accuracy carries a seeded percentile bootstrap interval, and the student's gain over its base a paired
one, so a reader sees whether a gain is real. The teacher can also judge student against base on
open-ended prompts, in both orders. The metrics go to the manifest and the model card, predictions and
judgments to the stage folder, and a plot to `accuracy.png`. `evaluate_model` runs the same on any
model and data file, without a pipeline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.data import load_items
from synthdistill.embeddings import DEFAULT_EMBEDDER
from synthdistill.records import Record
from synthdistill.runs.context import StageContext
from synthdistill.runs.folder import RecordWriter
from synthdistill.runs.steps import Stage
from synthdistill.scoring.scorer import Scorer
from synthdistill.scoring.task import TaskConfig
from synthdistill.student.prompts import Task, TaskCue, prompt_messages
from synthdistill.teachers.base import Request
from synthdistill.teachers.engine import Engine


class JudgeConfig(BaseModel):
    """The teacher's pairwise judgment of student against base."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        "eval_compare.j2", description="Judge prompt; variables question, answer_a, answer_b."
    )
    items: int = Field(50, ge=1, description="Prompts judged (each in both orders, so twice the calls).")
    source: str | None = Field(
        None, description="A file of open-ended prompts (question field); None judges the test split's."
    )
    fields: dict[str, str | dict[str, str]] = Field(
        default_factory=dict, description="Field mapping for `source`, as in data.fields."
    )
    answer_template: str | None = Field(
        None, description="The prompt the models answer; None uses the evaluation template."
    )
    max_tokens: int = Field(16, ge=1, description="Most tokens of a judgment (one word is asked for).")


class EvaluateConfig(BaseModel):
    """Options of the evaluate stage."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        "cot_student.j2", description="Prompt template; the train stage's, so formats agree."
    )
    max_tokens: int = Field(192, ge=1, description="Most new tokens per answer (greedy decoding).")
    base: bool = Field(True, description="Whether to evaluate the untrained student too, for the gain.")
    teacher: bool = Field(False, description="Whether to evaluate the teacher too (costs teacher calls).")
    teacher_template: str | None = Field(
        None, description="Template for the teacher's evaluation; None uses `template`."
    )
    batch_size: int = Field(32, ge=1, description="Sequences per local generate() call.")
    resamples: int = Field(1000, ge=100, description="Bootstrap resamples for the 95% intervals.")
    judge: JudgeConfig | None = Field(
        None, description="Teacher-judged win rate of student over base; None skips it (it costs calls)."
    )
    plot: bool = Field(True, description="Whether to save accuracy.png in the stage folder.")
    embedder: str | None = Field(
        DEFAULT_EMBEDDER,
        description="Embedder of free-text items' answers and references, for their embedding similarity "
        "(beside exact match and ROUGE-L); None skips it.",
    )
    student_task: Task = Field(
        "label",
        description="The task a step-by-step student is asked at test time: label (the answer alone, as "
        "in the paper) or rationale (its reasoning, trained without the closing answer sentence; the "
        "answer is read from it as the critics read one); other students ignore it.",
    )


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Evaluate each model on the test split; metrics go to the manifest, predictions to the stage folder."""
    from synthdistill.student.card import add_metrics, task_cue

    config: EvaluateConfig = ctx.config
    test = ctx.test_records
    if not test:
        ctx.log.warning("the test split is empty (data.split.test: 0); nothing to evaluate")
    models: list[tuple[str, Engine, str, TaskCue]] = []
    if config.base:
        base = ctx.engine(ctx.local_model(ctx.pipeline.config.student.model, config.batch_size))
        models.append(("base", base, config.template, TaskCue()))
    trained = ctx.artifacts.get("student_model")
    if trained is not None:
        # A step-by-step student is asked one of the two tasks it was trained on, by its cue.
        cue = task_cue(Path(trained), config.student_task)
        models.append(
            ("student", ctx.engine(ctx.local_model(trained, config.batch_size)), config.template, cue)
        )
    if config.teacher:
        models.append(("teacher", ctx.engine(), config.teacher_template or config.template, TaskCue()))
    scores: dict[str, list[float]] = {}
    # Open-ended items have no gold answer to be accurate about; the judge's win rate speaks for them.
    graded = [record for record in test if record.gold is not None]
    ctx.details["items"] = len(test)
    if graded:
        for label, engine, template, cue in models:
            metrics, scores[label] = _accuracy(label, engine, template, cue, graded, config, ctx)
            ctx.metrics[label] = metrics
    elif test:
        ctx.log.info("no test item has a gold answer; accuracy is skipped")
    if "base" in scores and "student" in scores:
        from synthdistill.stages.evaluate.stats import paired_bootstrap

        gain = paired_bootstrap(scores["student"], scores["base"], resamples=config.resamples, seed=ctx.seed)
        ctx.metrics["student"] = {**ctx.metrics["student"], "gain_over_base": gain}
    labels = {model[0] for model in models}
    if config.judge is not None and {"base", "student"} <= labels:
        ctx.metrics["judge"] = _judge(config.judge, models, ctx)
    if config.plot and scores:
        ctx.artifacts["accuracy_plot"] = _plot(ctx)
    if trained is not None:
        add_metrics(
            Path(trained), {k: v for k, v in ctx.metrics.items() if k in {m[0] for m in models} | {"judge"}}
        )
    yield from records


def evaluate_model(
    model: str,
    data: str,
    *,
    fields: dict[str, str | dict[str, str]] | None = None,
    base: str | None = None,
    template: str = "cot_student.j2",
    max_tokens: int = 192,
    task: TaskConfig | None = None,
    limit: int | None = None,
    output: Path | None = None,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Accuracy of `model` (and of `base`, when given) on a data file; the API of `synthdistill evaluate`.

    Predictions and the plot go to `output` (default outputs/evaluate-<model folder name>); `task` says how
    answers are scored (None infers it per item, as a pipeline's `data.task` does).
    """
    from synthdistill.config import (
        DataConfig,
        Pipeline,
        PipelineConfig,
        SplitConfig,
        StageSpec,
        StudentConfig,
    )
    from synthdistill.models import resolve_model
    from synthdistill.runs.context import RunContext
    from synthdistill.runs.folder import RunFolder

    here = Path.cwd()
    items = load_items(data, fields or {}, {}, here, file="--data", key="")
    if limit is not None:
        items = items[:limit]
    test = [Record.from_input(item) for item in items]
    model_path = resolve_model(model)
    folder = output or Path("outputs") / f"evaluate-{model_path.name}"
    folder.mkdir(parents=True, exist_ok=True)
    stage_config = EvaluateConfig(template=template, max_tokens=max_tokens, base=base is not None)
    config = PipelineConfig(
        name="evaluate",
        seed=seed,
        device=device,
        student=StudentConfig(model=base or model),
        data=DataConfig(
            source=data,
            fields=fields or {},
            split=SplitConfig(train=1, test=len(test)),
            task=task or TaskConfig(),
        ),
        stages=[{"evaluate": stage_config.model_dump()}],
    )
    spec = StageSpec(name="evaluate", index=1, config=stage_config)
    pipeline = Pipeline(config=config, stages=[spec], path=here / "evaluate.yaml", raw={})
    ctx = RunContext.create(pipeline, RunFolder(folder), test, artifacts={"student_model": model_path})
    try:
        list(run([], StageContext(ctx, spec, folder)))
    finally:
        ctx.close()
    (folder / "metrics.json").write_text(json.dumps(ctx.metrics, indent=2), encoding="utf-8")
    return ctx.metrics


def parse_judgment(text: str) -> str | None:
    """'A', 'B' or 'tie' from a judge's reply ("A", "Answer B is better.", "Tie."), or None."""
    match = _JUDGMENT.search(text)
    if match is None:
        return None
    word = match.group(1)
    return "tie" if word.lower() == "tie" else word.upper()


def combine_judgments(first: str | None, second: str | None) -> str | None:
    """One prompt's outcome for the student from its two judgments: student in A first, then in B.

    Each judgment counts +1 for the student, -1 for the base, 0 for a tie; the sign of the sum decides,
    so judgments that flip with the order make a tie. None when neither judgment could be read.
    """
    votes = []
    if first is not None:
        votes.append({"A": 1, "B": -1, "tie": 0}[first])
    if second is not None:
        votes.append({"A": -1, "B": 1, "tie": 0}[second])
    if not votes:
        return None
    total = sum(votes)
    return "win" if total > 0 else "loss" if total < 0 else "tie"


_JUDGMENT = re.compile(r"\b(A|B|tie)\b", re.IGNORECASE)


def _accuracy(
    label: str,
    engine: Engine,
    template: str,
    cue: TaskCue,
    test: list[Record],
    config: EvaluateConfig,
    ctx: StageContext,
) -> tuple[dict[str, Any], list[float]]:
    from synthdistill.stages.evaluate.accuracy import accuracy_metrics, grade

    scorer = Scorer(ctx.pipeline.config.data.task)
    requests = (
        (
            record,
            Request(
                messages=prompt_messages(ctx.templates, template, record, cue),
                max_tokens=config.max_tokens,
            ),
        )
        for record in test
    )
    rows = [grade(record, samples, scorer) for record, samples in engine.map(requests)]
    path = ctx.folder / f"predictions-{label}.jsonl"
    path.unlink(missing_ok=True)
    with RecordWriter(path) as writer:
        writer.write(rows)
    metrics, scores = accuracy_metrics(
        rows, scorer, resamples=config.resamples, seed=ctx.seed, embedder=config.embedder
    )
    low, high = metrics["ci"]
    ctx.log.info(
        "%s accuracy %.3f [%.3f, %.3f] on %d items (%s)",
        label, metrics["accuracy"], low, high, len(rows), metrics["scoring"],
    )  # fmt: skip
    return metrics, scores


def _judge(
    judge: JudgeConfig, models: list[tuple[str, Engine, str, TaskCue]], ctx: StageContext
) -> dict[str, Any]:
    """Student and base answer the judge's prompts; the teacher judges each pair in both orders."""
    if judge.source is not None:
        file = str(ctx.pipeline.path)
        key = f"stages[{ctx.spec.index - 1}].evaluate.judge.source"
        items = load_items(judge.source, judge.fields, {}, ctx.pipeline.base_dir, file=file, key=key)
        prompts = [Record.from_input(item) for item in items[: judge.items]]
    else:
        prompts = ctx.test_records[: judge.items]
    answers: dict[str, list[str]] = {}
    by_label = {label: (engine, template, cue) for label, engine, template, cue in models}
    for label in ("student", "base"):
        engine, template, cue = by_label[label]
        template = judge.answer_template or template
        requests = (
            (
                r,
                Request(
                    messages=prompt_messages(ctx.templates, template, r, cue),
                    max_tokens=ctx.config.max_tokens,
                ),
            )
            for r in prompts
        )
        # The test split's answers come from the call cache: accuracy asked the same.
        answers[label] = [samples[0].text.strip() if samples else "" for _, samples in engine.map(requests)]
    result = judge_win_rate(
        prompts, answers, ctx.engine(), ctx.templates, judge, folder=ctx.folder, seed=ctx.seed,
        resamples=ctx.config.resamples,
    )  # fmt: skip
    ctx.log.info("judge: student wins %(wins)d, ties %(ties)d, loses %(losses)d of %(n)d prompts", result)
    return result


def judge_win_rate(
    prompts: list[Record],
    answers: dict[str, list[str]],
    judge: Engine,
    templates: Any,
    config: JudgeConfig,
    *,
    folder: Path | None = None,
    seed: int = 0,
    resamples: int = 1000,
) -> dict[str, Any]:
    """The judge's verdicts on `answers["student"]` against `answers["base"]`, both orders per prompt.

    A prompt's outcome comes from `combine_judgments`; the win rate counts a tie as half a win, over the
    prompts with a readable judgment. Judgments go to `folder`/judgments.jsonl when given.
    """
    from synthdistill.stages.evaluate.stats import bootstrap_ci

    def requests() -> Iterator[tuple[tuple[int, int], Request]]:
        for i, record in enumerate(prompts):
            question = str(record.input.get("question", ""))
            student, base = answers["student"][i], answers["base"][i]
            for order, (a, b) in enumerate(((student, base), (base, student))):
                variables = {"question": question, "answer_a": a, "answer_b": b}
                messages = templates.render_messages(config.template, variables)
                yield (i, order), Request(messages=messages, max_tokens=config.max_tokens)

    verdicts: list[list[str | None]] = [[None, None] for _ in prompts]
    texts: list[list[str]] = [["", ""] for _ in prompts]
    for (i, order), samples in judge.map(requests()):
        texts[i][order] = samples[0].text if samples else ""
        verdicts[i][order] = parse_judgment(texts[i][order])
    outcomes = [combine_judgments(*pair) for pair in verdicts]
    if folder is not None:
        with (folder / "judgments.jsonl").open("w", encoding="utf-8") as handle:
            for i, record in enumerate(prompts):
                row = {
                    "id": record.id,
                    "question": record.input.get("question"),
                    "student": answers["student"][i],
                    "base": answers["base"][i],
                    "judge_student_first": texts[i][0],
                    "judge_base_first": texts[i][1],
                    "outcome": outcomes[i],
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    counted = [o for o in outcomes if o is not None]
    scores = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[o] for o in counted]
    low, high = bootstrap_ci(scores, resamples=resamples, seed=seed)
    return {
        "win_rate": round(sum(scores) / len(scores), 4) if scores else 0.0,
        "ci": [low, high],
        "wins": counted.count("win"),
        "ties": counted.count("tie"),
        "losses": counted.count("loss"),
        "unreadable": len(prompts) - len(counted),
        "n": len(prompts),
    }


def _plot(ctx: StageContext) -> Path:
    from synthdistill.stages.evaluate.plots import accuracy_plot

    manifest = ctx.run.run.read_manifest()
    stages = [s for s in manifest.stages if s.folder != ctx.spec.folder] if manifest else []
    # The first bar is the training split the run started from, then what each stage handed on.
    counts = [("data", stages[0].records_in)] if stages else []
    counts += [(s.folder, s.records_out) for s in stages if s.status in ("done", "skipped")]
    return accuracy_plot(ctx.folder / "accuracy.png", ctx.metrics, counts)


STAGE = Stage(
    name="evaluate",
    config=EvaluateConfig,
    run=run,
    summary="Accuracy (with bootstrap intervals) of base, student (and teacher); judge win rate.",
    inputs=lambda config: (
        [config.template]
        + ([config.teacher_template] if config.teacher_template else [])
        + ([config.judge.template] if config.judge else [])
        + ([config.judge.answer_template] if config.judge and config.judge.answer_template else [])
    ),
    batch_input=True,
    writes_records=False,
    variables=lambda config: {"record", "answer_a", "answer_b"},
    uses=("student", "teacher"),
)
