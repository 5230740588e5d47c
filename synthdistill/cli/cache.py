"""`synthdistill cache stats | clear`: the teacher call cache under the synthdistill home."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help="Inspect or clear the teacher call cache.",
    epilog="Example:\n\nsynthdistill cache stats",
    no_args_is_help=True,
)


@app.command("stats", epilog="Example:\n\nsynthdistill cache stats")
def cache_stats() -> None:
    """Print the call cache's location, size and entries per model as JSON."""
    import json

    from synthdistill.home import home
    from synthdistill.teachers.cache import CallCache

    cache = CallCache(home() / "cache" / "calls.sqlite")
    typer.echo(json.dumps(cache.stats(), indent=2))
    cache.close()


@app.command(
    "clear", epilog="Examples:\n\nsynthdistill cache clear --model scripted\n\nsynthdistill cache clear"
)
def cache_clear(
    model: Annotated[str | None, typer.Option(help="Clear only this model's entries.")] = None,
) -> None:
    """Delete cached teacher calls (all, or one model's)."""
    from synthdistill.home import home
    from synthdistill.teachers.cache import CallCache

    cache = CallCache(home() / "cache" / "calls.sqlite")
    typer.echo(f"cleared {cache.clear(model)} entries")
    cache.close()
