"""`synthdistill review | inspect | export`: browse, sum up and export a run folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

RunArg = Annotated[Path, typer.Argument(help="Run folder, such as outputs/<name>.", metavar="RUN")]

REVIEW_EXAMPLES = """Examples:

synthdistill review outputs/cot-arith

synthdistill review outputs/cot-arith --port 0 --no-open"""
INSPECT_EXAMPLES = """Examples:

synthdistill inspect outputs/cot-arith

synthdistill inspect outputs/cot-arith --json --samples 0"""
EXPORT_EXAMPLES = """Examples:

synthdistill export outputs/cot-arith

synthdistill export outputs/cot-arith --format parquet --out cot-data

--out is refused when it is a file, or a folder that holds anything but an earlier export (a synthdistill \
dataset card as README.md, beside the data files an export writes); an earlier export is replaced."""


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


def inspect_command(
    run_dir: RunArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")] = False,
    samples: Annotated[int, typer.Option(help="Sample records to show.", min=0)] = 3,
) -> None:
    """Summarise a run folder: stages, counts, calls, tokens, cost, metrics, review, sample records."""
    import json

    from rich.console import Console

    from synthdistill.cli.summary import inspect_run, print_summary

    summary = inspect_run(run_dir, samples=samples)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print_summary(summary, Console())


def export_command(
    run_dir: RunArg,
    format: Annotated[
        str, typer.Option("--format", help="jsonl, parquet, or hf (a datasets save_to_disk folder).")
    ] = "jsonl",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder to write: a new or empty one, or an earlier export, which is replaced; "
            "default RUN/export."
        ),
    ] = None,
    push_to_hub: Annotated[
        str | None, typer.Option(help="Also push the dataset and its card to this hub repository.")
    ] = None,
) -> None:
    """Export a run's kept records, with the review applied, and a dataset card."""
    from synthdistill.export import export_run

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:  # imported before (a notebook, a test): it has read the variable already
        sys.modules["datasets"].disable_progress_bars()
    typer.echo(str(export_run(run_dir, format=format, out=out, push_to_hub=push_to_hub)))
