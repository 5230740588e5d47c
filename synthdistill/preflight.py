"""Preflight: every check of a pipeline that needs no model call.

`synthdistill validate` makes them, and so does `run` before it touches the run folder or pays for
anything, so that a pipeline that passes validate does not fail at run time on something that could
have been seen, and a pipeline that fails leaves the last good run as it was:

- every template a stage reads exists and parses, and every variable it uses is a field of the records
  that can reach it or one the stage passes (a misspelt `{{ questoin }}` is named, with the fields);
- the data source exists, parses, maps, and fills each split with at least one item;
- every item's answer can be scored as its task type (scoring/checks.py): `choices` of the right shape,
  each gold answer among its item's choices or the task's labels (the items that are not are counted);
- recorded completions (generate's `recorded`) are there: a field that some training item fills, or a
  file whose every row matches an item of the data (stages/generate/recorded_checks.py);
- the student and any local teacher resolve (nothing is converted or downloaded), and a teacher whose
  logits gkd distils has the student's vocabulary;
- a program-of-thought template (generate's `parse: program`) shows a ```python block to imitate;
- the stage order makes sense: a stage that needs a teacher's outputs comes after one that makes them,
  one that needs a trained student after a train stage;
- a remote teacher's key variable is set (it is named, never printed).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from synthdistill.config import DEFAULT_TEACHER, Pipeline, StageSpec, TeacherConfig, config_error
from synthdistill.data import load_splits
from synthdistill.errors import ConfigError, SynthdistillError, TemplateError
from synthdistill.parsing import program_of
from synthdistill.records import Record
from synthdistill.registry import registry
from synthdistill.runs.steps import Stage
from synthdistill.scoring.task import TaskConfig
from synthdistill.stages.generate.recorded_checks import check_recorded, optional_fields
from synthdistill.templates import Templates

# Stages that make a teacher's outputs, named in the fix of a stage that needs them.
_MAKERS = "generate (or self_instruct)"
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)


@dataclass
class Checked:
    """What the checks read and a run goes on with: the templates and the data's splits."""

    templates: Templates
    train: list[Record]
    test: list[Record]
    notes: list[str] = field(default_factory=list)
    """What does not stop a run but makes it end with exit 1: the data did not fill the split asked."""


def check(pipeline: Pipeline, limit: int | None = None) -> Checked:
    """Make every check; the first problem raises a one-line error naming the file and the key."""
    file = str(pipeline.path)
    stages = [(spec, registry("stage").get(spec.name)) for spec in pipeline.stages]
    templates = Templates.for_pipeline(pipeline.base_dir)
    notes: list[str] = []
    config = pipeline.config
    # A column of recorded completions may be empty in some rows: generate drops those, with the reason.
    train, test = load_splits(
        config.data,
        seed=config.seed,
        base_dir=pipeline.base_dir,
        limit=limit,
        file=file,
        notes=notes,
        optional=optional_fields(pipeline),
    )
    if config.data.split.test and not test and limit != 0:
        raise ConfigError(
            f"{config.data.test_source or config.data.source} gives no test items for a test split of "
            f"{config.data.split.test}; give more data, or set data.split.test: 0",
            file=file,
            key="data.source",
        )
    _check_task(config.data.task, [*train, *test], file)
    check_recorded(pipeline, train, test)
    fields = {key for record in [*train[:50], *test[:50]] for key in record.input}
    _check_order(stages, file, gold=any(record.gold is not None for record in train[:50]))
    _check_budgets(stages, len(train), file)
    for spec, stage in stages:
        for name in stage.inputs(spec.config):
            _check_template(templates, name, fields | stage.variables(spec.config), spec, file)
        _check_program_template(templates, spec, file)
        fields |= stage.adds(spec.config)
    _check_models(pipeline, stages)
    _check_vocabularies(pipeline, stages)
    return Checked(templates=templates, train=train, test=test, notes=notes)


def _check_order(stages: list[tuple[StageSpec, Stage]], file: str, gold: bool) -> None:
    """Each stage after what it needs: a trained student, a teacher's outputs, answers to learn."""
    trained = made = False
    for spec, stage in stages:
        key = f"stages[{spec.index - 1}].{spec.name}"
        if stage.needs_student and not trained:
            raise ConfigError(
                f"{spec.name} needs a student to work on; put a train stage before it", file=file, key=key
            )
        if stage.needs_outputs(spec.config) and not made:
            raise ConfigError(
                f"{spec.name} needs records with a teacher's outputs, and no stage before it makes them "
                f"(it would get none); put {_MAKERS} before it",
                file=file,
                key=key,
            )
        if stage.needs_answers(spec.config) and not made and not gold:
            raise ConfigError(
                f"{spec.name} needs answers to learn, and neither a stage before it nor the data gives any "
                f"(map data.fields.answer for label-only training, or put {_MAKERS} before it)",
                file=file,
                key=key,
            )
        if stage.needs_gold and not gold:
            raise ConfigError(
                f"{spec.name} keeps what reaches the data's gold answers, and the data gives none; map "
                "data.fields.answer to the column that holds them",
                file=file,
                key=key,
            )
        trained = trained or spec.name == "train"
        made = made or stage.makes_outputs


def _check_task(task: TaskConfig, records: list[Record], file: str) -> None:
    """Every item's answer can be scored as its task type says; the items that cannot are counted."""
    from synthdistill.scoring.checks import data_problem

    problem = data_problem(records, task)
    if problem is not None:
        key, message = problem
        raise ConfigError(message, file=file, key=key)


def _check_template(templates: Templates, name: str, known: set[str], spec: StageSpec, file: str) -> None:
    key = f"stages[{spec.index - 1}].{spec.name}"
    try:
        used = templates.variables(name)
    except TemplateError as exc:
        raise ConfigError(str(exc), file=file, key=key) from None
    unknown = sorted(used - known)
    if unknown:
        word = unknown[0]
        close = difflib.get_close_matches(word, sorted(known), n=1)
        hint = f"did you mean {{{{ {close[0]} }}}}? " if close else ""
        raise ConfigError(
            f"template {name} uses {{{{ {word} }}}}, which no record field or the stage provides; {hint}"
            f"fix the template or map the field in data.fields (available: {', '.join(sorted(known))})",
            file=file,
            key=key,
        )


def _check_program_template(templates: Templates, spec: StageSpec, file: str) -> None:
    """A program-of-thought template shows the teacher a program: a ```python block, outside comments."""
    config, template = spec.config, getattr(spec.config, "template", None)
    if getattr(config, "parse", None) != "program" or getattr(config, "recorded", None) is not None:
        return
    if template is None or program_of(_JINJA_COMMENT.sub("", templates.source(template))) is None:
        raise ConfigError(
            f"template {template} has no ```python block, and parse: program reads the program "
            "a teacher writes in one; give its few-shot answers as ```python blocks that print the answer "
            "(see prompts/pot_rationale.j2)",
            file=file,
            key=f"stages[{spec.index - 1}].{spec.name}.template",
        )


def _check_budgets(stages: list[tuple[StageSpec, Stage]], items: int, file: str) -> None:
    """A select budget (a number of records) above the most records that can reach it, before anything is
    spent. The most is known through generate (one record per item and expanded value), self_consistency
    (at most one rationale per sample) and filter; past any other stage that makes records it is not."""
    most: int | None = items
    samples = 1
    for spec, stage in stages:
        config: Any = spec.config  # the stages' own config models, read by name below
        budget = getattr(config, "budget", None) if spec.name == "select" else None
        if most is not None and isinstance(budget, int) and budget > most:
            raise ConfigError(
                f"budget {budget} is above the {most} records at most that can reach select ({items} "
                "training items); lower it, give a share of the pool (budget: 0.5) or raise data.split.train",
                file=file,
                key=f"stages[{spec.index - 1}].select.budget",
            )
        sampled = getattr(config, "recorded", None) is None  # a recorded column may hold any number
        if spec.name == "generate" and sampled and config.parse in ("rationale", "text", "program"):
            combinations = 1
            for values in config.expand.values():
                combinations *= len(values)
            most = None if most is None else most * combinations
            samples = config.n
        elif spec.name == "self_consistency":
            per_record = config.max_per_record or samples
            most = None if most is None else most * per_record
            samples = 1
        elif stage.writes_records and spec.name not in ("filter", "select"):
            most = None


def _check_models(pipeline: Pipeline, stages: list[tuple[StageSpec, Stage]]) -> None:
    """The student and every teacher the stages use resolve, without converting or downloading."""
    file = str(pipeline.path)
    uses = {part for _, stage in stages for part in stage.uses}
    if "student" in uses or any(spec.name in ("train", "evaluate") for spec, _ in stages):
        _resolves(pipeline.config.student.model, file, "student.model")
    if "teacher" in uses:
        _check_teacher(pipeline.config.teacher, file, "teacher", pipeline.config.max_cost_usd)
    for name, teacher in pipeline.config.teachers.items():
        _check_teacher(teacher, file, f"teachers.{name}", pipeline.config.max_cost_usd)
    for spec, _ in stages:
        for key, teacher in _teachers_in(spec.config, f"stages[{spec.index - 1}].{spec.name}", file):
            _check_teacher(teacher, file, key, pipeline.config.max_cost_usd)


def _check_vocabularies(pipeline: Pipeline, stages: list[tuple[StageSpec, Stage]]) -> None:
    """A teacher whose logits gkd distils has the student's vocabulary (the tokenizers alone are read)."""
    from synthdistill.stages.train.gkd_config import GKDStageConfig, vocabulary_problem

    config = pipeline.config
    for spec, _ in stages:
        if not isinstance(spec.config, GKDStageConfig):
            continue
        teacher = spec.config.named_teacher({DEFAULT_TEACHER: config.teacher, **config.teachers})
        problem = teacher and vocabulary_problem(spec.config.model or config.student.model, teacher)
        if problem:
            key = f"stages[{spec.index - 1}].gkd.{spec.config.teacher_key}"
            raise ConfigError(problem, file=str(pipeline.path), key=key)


def _check_teacher(teacher: TeacherConfig, file: str, key: str, budget: float | None = None) -> None:
    from synthdistill.teachers.costs import price_for

    backend = registry("teacher").get(teacher.backend)
    local = getattr(backend, "local", False)
    if budget is not None and price_for(teacher, local) is None:
        raise ConfigError(
            f"max_cost_usd is set but no price is known for model {teacher.model!r}; set "
            f"{key}.price: {{input_per_mtok: ..., output_per_mtok: ...}} or install litellm for its prices",
            file=file,
            key=f"{key}.price",
        )
    if local:
        _resolves(teacher.model, file, f"{key}.model")
    elif teacher.api_key_env is not None:
        from synthdistill.teachers.chat import api_key_from_env

        try:
            api_key_from_env(teacher)
        except SynthdistillError as exc:
            raise ConfigError(
                str(exc).replace("teacher.api_key_env", key + ".api_key_env"), file=file
            ) from None


def _resolves(name: str, file: str, key: str) -> None:
    from synthdistill.models import check_model

    try:
        check_model(name)
    except SynthdistillError as exc:
        raise ConfigError(str(exc), file=file, key=key) from None


def _teachers_in(value: Any, key: str, file: str) -> list[tuple[str, TeacherConfig]]:
    """Teachers named inside a stage's options (a referee, a judge's `teacher`), with their key paths."""
    if isinstance(value, TeacherConfig):
        return [(key, value)]
    if isinstance(value, BaseModel):
        return [
            pair
            for name in type(value).model_fields
            for pair in _teachers_in(getattr(value, name), f"{key}.{name}", file)
        ]
    found: list[tuple[str, TeacherConfig]] = []
    if isinstance(value, dict):
        for name, item in value.items():
            if name == "teacher" and isinstance(item, dict):
                # A critic's options are plain mappings: a judge's own teacher is checked as one here.
                try:
                    item = TeacherConfig.model_validate(item)
                except ValidationError as exc:
                    raise config_error(exc, file, prefix=f"{key}.teacher", model=TeacherConfig) from None
            found += _teachers_in(item, f"{key}.{name}", file)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _teachers_in(item, f"{key}[{i}]", file)
    return found
