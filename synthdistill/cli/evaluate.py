"""`synthdistill evaluate`: a model's accuracy on a data file, without a pipeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

EVALUATE_EXAMPLES = """Examples:

synthdistill evaluate --model outputs/cot-arith/04-train/model --data test.jsonl --base smollm2-135m

synthdistill evaluate --model smollm2-135m --data gsm8k/test.jsonl --field answer=answer --limit 50"""


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

    from synthdistill.cli.report import evaluation_table
    from synthdistill.errors import ConfigError
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
