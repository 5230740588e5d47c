"""The command line: `synthdistill run | validate | cache | plugins | review | inspect | export`.

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
critic_app = typer.Typer(help="Train critics on labelled records.", no_args_is_help=True)
app.add_typer(critic_app, name="critic")

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

    from synthdistill.config import load_pipeline
    from synthdistill.pipeline import RunOptions, run_pipeline
    from synthdistill.report import (
        critics_tables,
        metrics_table,
        progress_bars,
        rounds_tables,
        stage_warnings,
        summary_table,
    )

    # The libraries' own bars (conversion, tokenizing, saving) would interleave with ours.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    loaded = load_pipeline(pipeline, overrides)
    console = Console(stderr=True)
    if dry_run:
        from synthdistill.dryrun import plan_pipeline
        from synthdistill.report import plan_table

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


RunArg = Annotated[Path, typer.Argument(help="Run folder, such as outputs/<name>.", metavar="RUN")]


@app.command()
def review(
    run_dir: RunArg,
    host: Annotated[
        str, typer.Option(help="Address to listen on; any other than 127.0.0.1 needs --token.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535)
    ] = 8765,
    open_page: Annotated[
        bool, typer.Option("--open/--no-open", help="Whether to open the page in a browser.")
    ] = True,
    token: Annotated[
        str | None,
        typer.Option(
            help="Secret that writes (and, off this machine, every request) must carry; "
            "default a new random one each session.",
            envvar="SYNTHDISTILL_REVIEW_TOKEN",
        ),
    ] = None,
) -> None:
    """Browse, filter, accept, reject and edit a run's records in a local web page."""
    import webbrowser

    from synthdistill.review.server import ReviewServer

    server = ReviewServer(run_dir, host=host, port=port, token=token)
    build = server.build
    if build.stages_indexed:
        typer.echo(
            f"indexed {build.records_indexed} records of {', '.join(build.stages_indexed)} "
            f"in {build.seconds:.1f} s",
            err=True,
        )
    typer.echo(server.url if server.loopback else f"{server.url}?token=<the token you passed>")
    if open_page:
        webbrowser.open(server.page_url)
    server.serve_forever()


@app.command("inspect")
def inspect_command(
    run_dir: RunArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")] = False,
    samples: Annotated[int, typer.Option(help="Sample records to show.", min=0)] = 3,
) -> None:
    """Summarise a run folder: stages, counts, calls, tokens, cost, metrics, review, sample records."""
    import json

    from rich.console import Console

    from synthdistill.inspect import inspect_run, print_summary

    summary = inspect_run(run_dir, samples=samples)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print_summary(summary, Console())


@app.command("export")
def export_command(
    run_dir: RunArg,
    format: Annotated[
        str, typer.Option("--format", help="jsonl, parquet, or hf (a datasets save_to_disk folder).")
    ] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Folder to write; default RUN/export.")] = None,
    push_to_hub: Annotated[
        str | None, typer.Option(help="Also push the dataset and its card to this hub repository.")
    ] = None,
) -> None:
    """Export a run's kept records, with the review applied, and a dataset card."""
    from synthdistill.export import export_run

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

    typer.echo(str(export_run(run_dir, format=format, out=out, push_to_hub=push_to_hub)))


@app.command("evaluate")
def evaluate_command(
    model: Annotated[
        str, typer.Option(help="Model to evaluate: a folder, an embedded alias or a cached hub id.")
    ],
    data: Annotated[str, typer.Option(help="Test file (.jsonl, .json, .csv, .parquet) or hf:<name>.")],
    field: Annotated[
        list[str] | None,
        typer.Option(
            help="Field mapping as in data.fields: question=COLUMN, answer=COLUMN or a jinja expression.",
            metavar="FIELD=COLUMN",
        ),
    ] = None,
    base: Annotated[str | None, typer.Option(help="Also evaluate this model, and the gain over it.")] = None,
    template: Annotated[str, typer.Option(help="The prompt template (prompts/ or the shipped ones).")] = (
        "cot_student.j2"
    ),
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per answer (greedy).", min=1)] = 192,
    limit: Annotated[int | None, typer.Option(help="Evaluate the first N items.", min=1)] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for predictions, metrics.json and the plot.")
    ] = None,
) -> None:
    """Measure a model's accuracy (with a 95% bootstrap interval) on a data file, without a pipeline."""
    import json

    from rich.console import Console

    from synthdistill.errors import ConfigError
    from synthdistill.report import evaluation_table
    from synthdistill.stages.evaluate.stage import evaluate_model

    fields: dict[str, str | dict[str, str]] = {}
    for item in field or []:
        name, sep, column = item.partition("=")
        if not sep or not name or not column:
            raise ConfigError(
                f"--field {item!r} is not FIELD=COLUMN; write for example --field question=problem"
            )
        fields[name] = column
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    metrics = evaluate_model(
        model, data, fields=fields, base=base, template=template, max_tokens=max_tokens, limit=limit,
        output=out,
    )  # fmt: skip
    Console(stderr=True).print(evaluation_table(metrics))
    typer.echo(json.dumps(metrics, indent=2))


@critic_app.command("train")
def critic_train(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="Run folder (outputs/<name>); the model is saved in it.", exists=True, file_okay=False
        ),
    ],
    labels: Annotated[
        Path | None,
        typer.Option(help='Labelled JSONL: {"text": ..., "label": 1} or record fields with a label.'),
    ] = None,
    from_review: Annotated[
        bool, typer.Option(help="Whether to use the run's review decisions (accept 1, reject 0).")
    ] = False,
    field: Annotated[
        str, typer.Option(help="Record field the classifier reads (text, rationale, input.<key>, ...).")
    ] = "text",
    target_precision: Annotated[
        float, typer.Option(help="Choose the threshold for this held-out precision.", min=0.0, max=1.0)
    ] = 0.9,
    target_recall: Annotated[
        float | None,
        typer.Option(help="Choose the threshold for this held-out recall instead.", min=0.0, max=1.0),
    ] = None,
    embedder: Annotated[str, typer.Option(help="Sentence-transformers model.")] = "all-minilm-l6-v2",
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and the model.")] = 0,
) -> None:
    """Train the classifier critic (embedding + logistic regression) on accepted and rejected records."""
    from synthdistill.critics.classifier import train_classifier

    path, metrics = train_classifier(
        run_dir,
        labels=labels,
        from_review=from_review,
        field=field,
        embedder=embedder,
        target_precision=target_precision,
        target_recall=target_recall,
        seed=seed,
    )
    reached = "" if metrics["target_reached"] else " (target not reached: best effort)"
    typer.echo(
        f"trained on {metrics['train']} records ({metrics['accepted']} accepted, {metrics['rejected']} "
        f"rejected in all); threshold {metrics['threshold']:.3f}{reached}: held-out precision "
        f"{metrics['precision']:.3f}, recall {metrics['recall']:.3f} on {metrics['heldout']} records",
        err=True,
    )
    typer.echo(str(path))


@cache_app.command("stats")
def cache_stats() -> None:
    """Print the call cache's location, size and entries per model as JSON."""
    import json

    from synthdistill.home import home
    from synthdistill.teachers.cache import CallCache

    cache = CallCache(home() / "cache" / "calls.sqlite")
    typer.echo(json.dumps(cache.stats(), indent=2))
    cache.close()


@cache_app.command("clear")
def cache_clear(
    model: Annotated[str | None, typer.Option(help="Clear only this model's entries.")] = None,
) -> None:
    """Delete cached teacher calls (all, or one model's)."""
    from synthdistill.home import home
    from synthdistill.teachers.cache import CallCache

    cache = CallCache(home() / "cache" / "calls.sqlite")
    typer.echo(f"cleared {cache.clear(model)} entries")
    cache.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `synthdistill` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("SYNTHDISTILL_DEBUG"))
    args = [a for a in args if a != "--debug"]
    try:
        # Outside standalone mode click hands back the code of a typer.Exit instead of raising it.
        code = app(args=args, prog_name="synthdistill", standalone_mode=False)
        if isinstance(code, int) and code:
            return code
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


if __name__ == "__main__":
    sys.exit(main())
