"""The command line: `synthdistill run | validate | cache | plugins`.

Errors of the SynthdistillError family and click's usage errors become one line on stderr and exit
code 2; `--debug` anywhere on the line shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

# typer 0.29 ships its own fork of click; its usage errors (bad option, missing file) live here.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from synthdistill.errors import SynthdistillError

EXIT_OK, EXIT_FAILURES, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="synthdistill",
    help="Distil large language models through their outputs: generate, filter, train, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # tracebacks never print locals: they may hold API keys
)
cache_app = typer.Typer(help="Inspect or clear the teacher call cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

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


@app.command()
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
) -> None:
    """Run a pipeline: each stage is skipped, resumed or re-run by its fingerprint."""
    from rich.console import Console

    from synthdistill.config import load_pipeline
    from synthdistill.pipeline import RunOptions, run_pipeline
    from synthdistill.report import metrics_table, progress_bars, summary_table

    # The libraries' own bars (conversion, tokenizing, saving) would interleave with ours.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    loaded = load_pipeline(pipeline, overrides)
    console = Console(stderr=True)
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
    if manifest.metrics:
        console.print(metrics_table(manifest))
    typer.echo(str(run_dir))
    if manifest.teacher.failures:
        console.print(f"[yellow]{manifest.teacher.failures} requests failed after all retries[/yellow]")
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def validate(pipeline: PipelineArg, overrides: SetOption = None) -> None:
    """Check a pipeline file (keys, stages, critics, templates) without running it."""
    from synthdistill.config import load_pipeline
    from synthdistill.pipeline import check_pipeline

    loaded = load_pipeline(pipeline, overrides)
    check_pipeline(loaded)
    stages = ", ".join(spec.name for spec in loaded.stages)
    typer.echo(f"{pipeline}: ok ({len(loaded.stages)} stages: {stages})")


@app.command()
def plugins() -> None:
    """List the stages, teachers, critics and data sources that are registered."""
    from synthdistill.registry import GROUPS, registry

    for kind in GROUPS:
        typer.echo(f"{kind}s: {', '.join(registry(kind).names())}")


@cache_app.command("stats")
def cache_stats() -> None:
    """Print the call cache's location, size and entries per model as JSON."""
    import json

    from synthdistill.cache import CallCache
    from synthdistill.home import home

    cache = CallCache(home() / "cache" / "calls.sqlite")
    typer.echo(json.dumps(cache.stats(), indent=2))
    cache.close()


@cache_app.command("clear")
def cache_clear(
    model: Annotated[str | None, typer.Option(help="Clear only this model's entries.")] = None,
) -> None:
    """Delete cached teacher calls (all, or one model's)."""
    from synthdistill.cache import CallCache
    from synthdistill.home import home

    cache = CallCache(home() / "cache" / "calls.sqlite")
    typer.echo(f"cleared {cache.clear(model)} entries")
    cache.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `synthdistill` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("SYNTHDISTILL_DEBUG"))
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="synthdistill", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except NoArgsIsHelpError:
        return EXIT_BAD_INPUT  # typer has printed the help already
    except UsageError as exc:
        if debug:
            raise
        hint = f" (see synthdistill {exc.ctx.command_path.split(' ', 1)[-1]} --help)" if exc.ctx else ""
        _error(f"{exc.format_message()}{hint}".replace("\n", " "))
        return EXIT_BAD_INPUT
    except SynthdistillError as exc:
        if debug:
            raise
        _error(str(exc).replace("\n", " "))
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, typer.Abort):
        _error("interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _error(message: str) -> None:
    sys.stderr.write(f"synthdistill: error: {message}\n")


def _log_to(path: Path) -> None:
    """Send the library's logs to the run's run.log; the terminal keeps progress and tables."""
    handler = _LazyFileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)  # library deprecation warnings belong in the log, not the terminal
    for name in ("synthdistill", "transformers", "trl", "peft", "datasets", "py.warnings"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class _LazyFileHandler(logging.FileHandler):
    """Creates its file (and folder) at the first message, so a run refused early leaves nothing behind."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


if __name__ == "__main__":
    sys.exit(main())
