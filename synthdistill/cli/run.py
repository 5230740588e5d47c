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
    Path, typer.Argument(help="Pipeline YAML file.", exists=True, dir_okay=False, readable=True)
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a config value: key.path=value (YAML), e.g. generate.n=2.",
        metavar="KEY=VALUE",
    ),
]


def run(
    pipeline: PipelineArg,
    limit: Annotated[
        int | None, typer.Option(help="Run on the first N items of each split.", min=1, rich_help_panel="Run")
    ] = None,
    overrides: SetOption = None,
    run_name: Annotated[
        str | None, typer.Option(help="Run folder name; default the pipeline's name.", rich_help_panel="Run")
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
) -> None:
    """Run a pipeline: each stage is skipped, resumed or re-run by its fingerprint."""
    from rich.console import Console

    from synthdistill.cli.report import (
        critics_tables,
        metrics_table,
        progress_bars,
        rounds_tables,
        stage_warnings,
        summary_table,
    )
    from synthdistill.config import load_pipeline
    from synthdistill.pipeline import RunOptions, run_pipeline

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
    _log_to(run_dir / "run.log")
    progress, hook = progress_bars(console)
    options = RunOptions(limit=limit, run_name=run_name, force=force, resume=resume, progress=hook)
    try:
        manifest = run_pipeline(loaded, options)
    finally:
        if progress.live.is_started:
            progress.stop()
    console.print(summary_table(manifest))
    for table in [*critics_tables(manifest), *rounds_tables(manifest)]:
        console.print(table)
    for warning in stage_warnings(manifest):
        console.print(f"[yellow]{warning}[/yellow]")
    if manifest.metrics:
        console.print(metrics_table(manifest))
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


def validate(pipeline: PipelineArg, overrides: SetOption = None) -> None:
    """Check a pipeline file (keys, stages, critics, templates) without running it."""
    from synthdistill.config import load_pipeline
    from synthdistill.pipeline import check_pipeline

    loaded = load_pipeline(pipeline, overrides)
    check_pipeline(loaded)
    stages = ", ".join(spec.name for spec in loaded.stages)
    typer.echo(f"{pipeline}: ok ({len(loaded.stages)} stages: {stages})")


def plugins() -> None:
    """List the stages, teachers, critics and data sources that are registered."""
    from synthdistill.registry import GROUPS, registry

    for kind in GROUPS:
        typer.echo(f"{kind}s: {', '.join(registry(kind).names())}")


def _log_to(path: Path) -> None:
    """Send the library's logs to the run's run.log; the terminal keeps progress and tables."""
    handler = _LazyFileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)  # library deprecation warnings belong in the log, not the terminal
    for name in ("synthdistill", "transformers", "trl", "peft", "datasets", "py.warnings"):
        logger = logging.getLogger(name)
        # A second run in one process (tests, notebooks) logs to its own run folder, not the first one's.
        for old in [h for h in logger.handlers if isinstance(h, _LazyFileHandler)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class _LazyFileHandler(logging.FileHandler):
    """Creates its file (and folder) at the first message, so a run refused early leaves nothing behind."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()
