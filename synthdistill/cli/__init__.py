"""The command line: the `synthdistill` app, its entry point `main` and its error handling.

One module per group of commands, each registered on `app` here, in the order `--help` lists them:

- run.py: run, validate and plugins (a pipeline file and what it can name);
- runs.py: review, inspect and export (a run folder);
- evaluate.py: evaluate (a model on a data file, without a pipeline);
- cache.py: cache stats and clear;
- critic.py: critic train;
- summary.py and report.py: the tables and progress bars those commands draw.

Errors of the SynthdistillError family and click's usage errors become one line on stderr and exit
code 2; `--debug` anywhere on the line shows the traceback instead. Exit codes: 0 done, 1 a run that
stopped or left failed requests, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

# typer 0.29 ships its own fork of click; its usage errors (bad option, missing file) live here.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from synthdistill.cli import cache, critic, evaluate, run, runs
from synthdistill.errors import SynthdistillError

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130

app = typer.Typer(
    name="synthdistill",
    help="Distil large language models through their outputs: generate, filter, train, evaluate.",
    epilog="Examples:\n\nsynthdistill run pipelines/cot.yaml\n\nsynthdistill inspect outputs/cot-arith",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # tracebacks never print locals: they may hold API keys
)
app.command(epilog=run.RUN_EXAMPLES)(run.run)
app.command(epilog=run.VALIDATE_EXAMPLES)(run.validate)
app.command(epilog=run.PLUGINS_EXAMPLES)(run.plugins)
app.command(epilog=runs.REVIEW_EXAMPLES)(runs.review)
app.command("inspect", epilog=runs.INSPECT_EXAMPLES)(runs.inspect_command)
app.command("export", epilog=runs.EXPORT_EXAMPLES)(runs.export_command)
app.command("evaluate", epilog=evaluate.EVALUATE_EXAMPLES)(evaluate.evaluate_command)
app.add_typer(cache.app, name="cache")
app.add_typer(critic.app, name="critic")


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the traceback of an error instead of its one line (anywhere on the line; "
            "SYNTHDISTILL_DEBUG=1 does the same).",
        ),
    ] = False,
) -> None:
    """Options of every command; `main` reads --debug itself, so it works after a command's name too."""


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
        hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx else ""
        _error(f"{exc.format_message()}{hint}".replace("\n", " "))
        return EXIT_BAD_INPUT
    except SynthdistillError as exc:
        if debug:
            raise
        _error(str(exc).replace("\n", " "))
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, typer.Abort):  # `run` turns its Ctrl-C into an Abort
        _error("interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _error(message: str) -> None:
    sys.stderr.write(f"synthdistill: error: {message}\n")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"synthdistill {version('synthdistill')}")
        raise typer.Exit()
