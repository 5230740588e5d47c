"""`synthdistill critic train`: the classifier critic, trained on labelled or reviewed records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Train critics on labelled records.",
    epilog="Example:\n\nsynthdistill critic train outputs/cot-arith --from-review",
    no_args_is_help=True,
)


@app.command(
    "train",
    epilog="Examples:\n\nsynthdistill critic train outputs/cot-arith --from-review\n\n"
    "synthdistill critic train outputs/cot-arith --labels labels.jsonl --field rationale",
)
def critic_train(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="Run folder (outputs/<name>); the model is saved in it.",
            metavar="RUN",
            exists=True,
            file_okay=False,
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
