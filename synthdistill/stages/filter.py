"""filter: run critics in order, batch by batch; a record is kept when every critic passes it.

Every record is written to the stage file, the dropped ones too: each carries the verdict of every
critic that saw it, and `dropped_by` names the critic that dropped it. A critic sees only the records
that the critics before it passed. Per critic, the manifest records how many records it saw, passed
and dropped, and the seconds it took (`details.critics`), and the terminal shows them as a table.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from synthdistill.critics import Critic, build_critic, critic_folders, find_critic, known_critics
from synthdistill.errors import CriticError
from synthdistill.records import Record, Verdict
from synthdistill.runs.context import StageContext
from synthdistill.runs.folder import read_records
from synthdistill.runs.steps import Stage


class FilterConfig(BaseModel):
    """Options of the filter stage."""

    model_config = ConfigDict(extra="forbid")

    critics: list[str | dict[str, dict[str, Any]]] = Field(
        description="Critics in order, each a name or {name: options}: "
        "[answer_match, {length: {max_words: 200}}]. A name is a built-in or plugin critic, one defined in "
        "critics/*.py beside the pipeline file or in the project's critics/ folder, or a dotted path "
        "package.module:Class."
    )
    batch_size: int = Field(
        256, ge=1, description="Records scored per critic call (embedding critics batch)."
    )

    @field_validator("critics")
    @classmethod
    def _known(cls, value: list[str | dict[str, Any]], info: ValidationInfo) -> list[str | dict[str, Any]]:
        # The pipeline's folder comes in the validation context, when the loader passes it.
        base_dir = (info.context or {}).get("base_dir")
        folders = critic_folders(None if base_dir is None else Path(base_dir))
        names: list[str] | None = None
        seen: set[str] = set()
        for entry in value:
            name = entry if isinstance(entry, str) else next(iter(entry), "")
            if isinstance(entry, dict) and len(entry) != 1:
                raise ValueError(f"a critic entry is a name or one {{name: options}}, got {entry!r}")
            if name in seen:
                raise ValueError(
                    f"critic {name!r} is named twice; verdicts are kept by critic name, so merge the entries"
                )
            seen.add(name)
            if ":" in name:
                continue  # a dotted path is imported when the stage runs; its errors name it then
            names = names if names is not None else known_critics(folders)
            if name not in names:
                raise ValueError(
                    f"unknown critic {name!r}; valid critics: {', '.join(names)} "
                    "(or a dotted path package.module:Class)"
                )
            if isinstance(entry, dict):
                _check_options(name, entry[name], folders)
        return value


def _check_options(name: str, options: dict[str, Any] | None, folders: list[Path]) -> None:
    """A critic's options against its `Options` model, so a typo is named before anything runs."""
    model = getattr(find_critic(name, folders), "Options", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return
    try:
        model.model_validate(options or {})
    except ValidationError as exc:
        problem = exc.errors()[0]
        option = ".".join(str(part) for part in problem["loc"])
        known = ", ".join(model.model_fields) or "none"
        raise ValueError(f"critic {name}: option {option}: {problem['msg']} (its options: {known})") from None


def run(records: Iterable[Record], ctx: StageContext) -> Iterator[Record]:
    """Score batches with each critic; record every verdict; drop at the first failing critic."""
    config: FilterConfig = ctx.config
    critics = [build_critic(entry, ctx) for entry in config.critics]
    names = [c.name for c in critics]
    if len(set(names)) != len(names):
        raise CriticError(
            f"the filter names a critic twice ({', '.join(names)}): verdicts are stored by critic name, "
            "so merge the two entries into one"
        )
    _recall_passed(critics, ctx.written, config.batch_size)
    stats = {c.name: {"seen": 0, "passed": 0, "dropped": 0, "seconds": 0.0} for c in critics}
    iterator = iter(records)
    while batch := list(islice(iterator, config.batch_size)):
        for critic in critics:
            alive = [i for i, r in enumerate(batch) if r.kept]
            if not alive:
                break
            started = time.perf_counter()
            verdicts = _score(critic, [batch[i] for i in alive])
            stat = stats[critic.name]
            stat["seconds"] += time.perf_counter() - started
            for i, verdict in zip(alive, verdicts, strict=True):
                record = batch[i]
                stat["seen"] += 1
                record = record.model_copy(update={"verdicts": {**record.verdicts, critic.name: verdict}})
                if verdict.passed:
                    stat["passed"] += 1
                else:
                    stat["dropped"] += 1
                    record = record.drop(critic.name)
                batch[i] = record
        yield from batch
    for stat in stats.values():
        stat["seconds"] = round(stat["seconds"], 3)
    ctx.details["critics"] = stats


def critic_templates(config: FilterConfig) -> list[str]:
    """The templates the filter's critics read (llm_judge rubrics), for the fingerprint and the check."""
    from synthdistill.critics.llm_judge import DEFAULT_TEMPLATES

    templates = []
    for entry in config.critics:
        if isinstance(entry, dict) and "llm_judge" in entry:
            options = entry["llm_judge"] or {}
            templates.append(options.get("template") or DEFAULT_TEMPLATES[options.get("mode", "score")])
        elif entry == "llm_judge":
            templates.append(DEFAULT_TEMPLATES["score"])
    return templates


def critic_files(config: FilterConfig, base_dir: Path, run_dir: Path) -> list[Path]:
    """Files the critics' verdicts depend on, for the fingerprint: a user's critic source, a classifier."""
    import inspect

    import synthdistill
    from synthdistill.critics.classifier import MODEL_FILE

    package = Path(synthdistill.__file__).resolve().parent
    files = []
    for entry in config.critics:
        name, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        try:
            source = inspect.getsourcefile(find_critic(name, critic_folders(base_dir)))
        except (CriticError, TypeError):
            source = None
        # The package's own critics change only with its version, which every fingerprint holds.
        if source is not None and package not in Path(source).resolve().parents:
            files.append(Path(source).resolve())
        if name == "classifier":
            model = (options or {}).get("model")
            files.append(base_dir / model if model else run_dir / MODEL_FILE)
    return files


def _recall_passed(critics: list[Critic], written: Path | None, batch_size: int) -> None:
    """On a resumed filter, hand each critic that keeps state (exact_dup, near_dup) what it passed before."""
    remembering = [c for c in critics if hasattr(c, "remember")]
    if not remembering or written is None or not written.exists():
        return  # a fresh stage: the pipeline has removed the file
    records = iter(read_records(written))
    while batch := list(islice(records, batch_size)):
        for critic in remembering:
            passed = [r for r in batch if (v := r.verdicts.get(critic.name)) is not None and v.passed]
            if passed:
                critic.remember(passed)


def _score(critic: Critic, records: list[Record]) -> list[Verdict]:
    try:
        verdicts = critic.score(records)
    except CriticError as exc:
        raise CriticError(
            f"critic {critic.name!r} on a batch starting at record {records[0].id}: {exc}"
        ) from exc
    except Exception as exc:
        raise CriticError(
            f"critic {critic.name!r} raised {type(exc).__name__}: {exc} on a batch starting at record "
            f"{records[0].id}; fix the critic or remove it from the filter"
        ) from exc
    if not isinstance(verdicts, list | tuple) or len(verdicts) != len(records):
        got = len(verdicts) if isinstance(verdicts, list | tuple) else type(verdicts).__name__
        raise CriticError(
            f"critic {critic.name!r} returned {got} verdicts for {len(records)} records "
            f"(batch starting at record {records[0].id}); it must return one per record"
        )
    for record, verdict in zip(records, verdicts, strict=True):
        if not isinstance(verdict, Verdict):
            raise CriticError(
                f"critic {critic.name!r} returned {type(verdict).__name__} instead of a Verdict for record "
                f"{record.id}; return synthdistill.records.Verdict(passed=..., score=..., reason=...)"
            )
    return list(verdicts)


STAGE = Stage(
    name="filter",
    config=FilterConfig,
    run=run,
    summary="Judge records with critics; keep those every critic passes.",
    inputs=critic_templates,
    files=critic_files,
    # A judge is a teacher and token bounds count in the student's tokenizer: either changing re-judges.
    uses=("teacher", "student"),
    # What an llm_judge's rubric gets besides the record's fields.
    variables=lambda config: {"record", "text", "first", "second"},
    needs_outputs=lambda config: True,
)
