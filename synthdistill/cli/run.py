"""`synthdistill run | validate | plugins`: run or check a pipeline file, list what it can name."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_FAILURES = 1
"""A run that stopped (budget, ...) or left requests that failed after all retries."""

PipelineArg = Annotated[
    Path,
    typer.Argument(
        help="Pipeline YAML file.", metavar="PIPELINE", exists=True, dir_okay=False, readable=True
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a config value: key.path=value (YAML), e.g. generate.n=2.",
        metavar="KEY=VALUE",
    ),
]


RUN_EXAMPLES = """Examples:

synthdistill run pipelines/cot.yaml

synthdistill run pipelines/cot.yaml --limit 10 --set generate.n=2 --run-name cot-small

synthdistill run pipelines/cot.yaml --dry-run"""
VALIDATE_EXAMPLES = """Example:

synthdistill validate pipelines/cot.yaml --set generate.n=8"""
PLUGINS_EXAMPLES = """Example:

synthdistill plugins"""


def run(
    pipeline: PipelineArg,
    limit: Annotated[
        int | None, typer.Option(help="Run on the first N items of each split.", min=1, rich_help_panel="Run")
    ] = None,
    overrides: SetOption = None,
    run_name: Annotated[
        str | None,
        typer.Option(
            help="Run folder name under outputs/ (a plain name, no path); default the pipeline's name.",
            callback=_plain_run_name,
            rich_help_panel="Run",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Start over a run folder that holds another pipeline's run.", rich_help_panel="Run"
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            help="Reuse what fits of a run folder that holds another pipeline's run.", rich_help_panel="Run"
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Print the teacher calls, tokens and worst-case cost the run would need, checked against "
            "the cache; send and write nothing.",
            rich_help_panel="Run",
        ),
    ] = False,
    clean: Annotated[
        bool,
        typer.Option(
            help="Remove the stage folders (NN-<stage>) of earlier pipeline shapes that this pipeline no "
            "longer has, once the run is done.",
            rich_help_panel="Run",
        ),
    ] = False,
) -> None:
    """Run a pipeline: each stage is skipped, resumed or re-run by its fingerprint."""
    from rich.console import Console

    from synthdistill.cli.report import (
        critics_tables,
        metrics_table,
        progress_bars,
        rerun_lines,
        rounds_tables,
        stage_warnings,
        summary_table,
    )
    from synthdistill.config import load_pipeline
    from synthdistill.pipeline import RunOptions, run_pipeline, stale_stage_folders

    # The libraries' own bars (conversion, tokenizing, saving) would interleave with ours.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    loaded = load_pipeline(pipeline, overrides)
    console = Console(stderr=True)
    if dry_run:
        from synthdistill.cli.report import plan_table
        from synthdistill.dryrun import plan_pipeline

        console.print(plan_table(plan_pipeline(loaded, RunOptions(limit=limit, run_name=run_name))))
        return
    run_dir = Path(loaded.config.outputs) / (run_name or loaded.config.name)
    progress, hook = progress_bars(console)
    options = RunOptions(
        limit=limit, run_name=run_name, force=force, resume=resume, progress=hook, clean=clean
    )
    # The run's log starts once the run folder is claimed: a run refused before leaves no trace there.
    options.on_claim = lambda root: _log_to(root / "run.log")
    try:
        manifest = run_pipeline(loaded, options)
    except KeyboardInterrupt:
        # typer turns a Ctrl-C into a silent exit 130; an Abort reaches main, which says how to resume.
        raise typer.Abort() from None
    finally:
        if progress.live.is_started:
            progress.stop()
        _stop_logging()
    console.print(summary_table(manifest))
    for line in rerun_lines(manifest):
        console.print(line, soft_wrap=True)
    for table in [*critics_tables(manifest), *rounds_tables(manifest)]:
        console.print(table)
    for warning in stage_warnings(manifest):
        console.print(f"[yellow]{warning}[/yellow]")
    if manifest.metrics:
        console.print(metrics_table(manifest))
    stale = stale_stage_folders(run_dir, loaded)
    if stale:
        names = ", ".join(folder.name for folder in stale)
        console.print(
            f"[yellow]{run_dir} holds stage folders this pipeline no longer has: {names}; run with "
            "--clean to remove them[/yellow]",
            soft_wrap=True,
        )
    typer.echo(str(run_dir))
    if manifest.status == "stopped":
        console.print(
            f"[yellow]{manifest.stopped_reason} (spent {manifest.teacher.cost_usd:.4f} USD)[/yellow]"
        )
        raise typer.Exit(EXIT_FAILURES)
    if manifest.teacher.failures:
        console.print(
            f"[yellow]{manifest.teacher.failures} requests failed after all retries; they are listed in "
            f"{run_dir / 'failed_requests.jsonl'}, and running the same command again retries only "
            "them[/yellow]"
        )
        raise typer.Exit(EXIT_FAILURES)
    if manifest.warnings:
        # A run that finished with nothing to show, or on less data than asked, is not a plain success.
        for warning in manifest.warnings:
            typer.echo(f"synthdistill: warning: {warning}", err=True)
        raise typer.Exit(EXIT_FAILURES)


def validate(pipeline: PipelineArg, overrides: SetOption = None) -> None:
    """Check a pipeline file without running it: keys, stage order, templates and their variables, data,
    models and keys; everything that needs no model call."""
    from synthdistill import preflight
    from synthdistill.config import load_pipeline

    loaded = load_pipeline(pipeline, overrides)
    checked = preflight.check(loaded)
    for note in checked.notes:
        typer.echo(f"synthdistill: warning: {note}", err=True)
    stages = ", ".join(spec.name for spec in loaded.stages)
    typer.echo(f"{pipeline}: ok ({len(loaded.stages)} stages: {stages})")


def plugins() -> None:
    """List the stages, teachers, critics and data sources that are registered."""
    from synthdistill.registry import GROUPS, registry

    for kind in GROUPS:
        typer.echo(f"{kind}s: {', '.join(registry(kind).names())}")


def _plain_run_name(value: str | None) -> str | None:
    from synthdistill.config import run_name_problem

    problem = run_name_problem(value) if value is not None else None
    if problem:
        raise typer.BadParameter(problem)
    return value


_LOGGERS = ("synthdistill", "transformers", "trl", "peft", "datasets", "py.warnings")


def _log_to(path: Path) -> None:
    """Send the library's logs to the run's run.log; the terminal keeps progress and tables."""
    handler = _LazyFileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)  # library deprecation warnings belong in the log, not the terminal
    _stop_logging()
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        _SAVED[name] = (logger.level, logger.propagate)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _stop_logging() -> None:
    """Close the run's log and give the loggers back their levels, so that later calls in this process
    (tests, notebooks) write nothing to it, and a library's own handler (transformers' writes to the
    stderr of its import) is not woken at INFO."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, _LazyFileHandler)]:
            logger.removeHandler(handler)
            handler.close()
        if name in _SAVED:
            level, logger.propagate = _SAVED.pop(name)
            logger.setLevel(level)  # setLevel, not the attribute: it clears the loggers' cached levels


_SAVED: dict[str, tuple[int, bool]] = {}
"""Each logger's level and propagation before the run's log took it over."""


class _LazyFileHandler(logging.FileHandler):
    """Creates its file (and folder) at the first message, so a run refused early leaves nothing behind."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()
