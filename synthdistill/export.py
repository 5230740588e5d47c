"""`synthdistill export RUN`: the kept records, with the review applied, as JSONL, parquet or a
Hugging Face dataset, beside a dataset card (README.md) that records how they were made.

The export reads the last stage that wrote records and applies review.jsonl to it, so a record
rejected in review is absent and an edited answer or rationale is exported as edited, even before the
pipeline is run again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from synthdistill.errors import RunError
from synthdistill.runs.dataset import dataset_columns, dataset_rows, holds_pairs, kept_dataset
from synthdistill.runs.decisions import Decision, decision_counts, load_decisions
from synthdistill.runs.folder import shareable_path
from synthdistill.runs.view import RunView, open_run

FORMATS: tuple[str, ...] = ("jsonl", "parquet", "hf")
COLUMNS = dataset_columns(review=True)
DATA_FILES = {"jsonl": "data.jsonl", "parquet": "train.parquet"}
# What an export writes: its card, a data file, or what `save_to_disk` writes for hf.
_EXPORT_FILE = re.compile(
    r"README\.md|data\.jsonl|train\.parquet|dataset_info\.json|state\.json|data-\d+-of-\d+\.arrow"
)


def export_run(
    run_dir: str | Path,
    *,
    format: str = "jsonl",
    out: str | Path | None = None,
    push_to_hub: str | None = None,
) -> Path:
    """Write the export and its card into `out` (default outputs/<run>/export); returns that folder."""
    if format not in FORMATS:
        raise RunError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    run = open_run(run_dir)
    stage = run.last_stage
    if stage is None:
        raise RunError(f"run {run.root} has no stage with records to export; run its pipeline first")
    decisions = load_decisions(run.root)
    target = Path(out) if out is not None else run.root / "export"
    _clear_target(target)
    target.mkdir(parents=True, exist_ok=True)
    rows = 0
    if format == "jsonl":
        with (target / DATA_FILES["jsonl"]).open("w", encoding="utf-8") as handle:
            for row in dataset_rows(stage.path, decisions, review=True):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                rows += 1
    else:
        with kept_dataset(stage.path, decisions, review=True) as dataset:
            rows = len(dataset)
            if format == "parquet":
                dataset.to_parquet(str(target / DATA_FILES["parquet"]))
            else:
                dataset.save_to_disk(str(target))
    columns = dataset_columns(review=True, pairs=holds_pairs(stage.path, decisions))
    card = dataset_card(run, stage.folder, rows, decisions, format, columns=list(columns))
    (target / "README.md").write_text(card, encoding="utf-8")
    if push_to_hub:
        _push(stage.path, decisions, card, push_to_hub, target)
    return target


def dataset_card(
    run: RunView,
    stage: str,
    rows: int,
    decisions: dict[str, Decision],
    format: str,
    columns: list[str] | None = None,
) -> str:
    """A Hugging Face dataset card: the pipeline, teacher, filters, counts, review decisions and columns
    (`COLUMNS` unless given: a stage of preference pairs adds prompt, chosen and rejected)."""
    manifest = run.manifest
    config = _pipeline_config(run)
    teacher = config.get("teacher") or {}
    critics = [
        critic
        for entry in config.get("stages") or []
        if isinstance(entry, dict) and "filter" in entry
        for critic in ((entry["filter"] or {}).get("critics") or [])
    ]
    counts = decision_counts(decisions)
    reasons = sorted({d.reason for d in decisions.values() if d.status == "rejected" and d.reason})
    header = {
        "pretty_name": f"synthdistill run {manifest.name}",
        "tags": ["synthetic", "distillation", "synthdistill"],
        "size_categories": [_size_category(rows)],
    }
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        f"# {manifest.name}",
        "",
        f"Made by synthdistill from the pipeline `{shareable_path(manifest.pipeline)}` "
        f"(run status: {manifest.status}). "
        f"It holds the {rows} records kept by stage `{stage}` after the human review, as {format}.",
        "",
        "## Teacher",
        "",
        f"- backend: `{teacher.get('backend', '')}`, model: `{teacher.get('model', '')}`",
        "",
        "## Pipeline",
        "",
        *(f"- `{_one_line(entry)}`" for entry in config.get("stages") or []),
        "",
        "## Filters",
        "",
        *([f"- `{_one_line(critic)}`" for critic in critics] or ["- none"]),
        "",
        "## Counts",
        "",
        "| stage | status | records in | records out |",
        "| --- | --- | ---: | ---: |",
        *(f"| {s.folder} | {s.status} | {s.records_in} | {s.records_out} |" for s in manifest.stages),
        f"| export | | | {rows} |",
        "",
        "## Review decisions",
        "",
        f"{counts['accepted']} accepted, {counts['rejected']} rejected, {counts['edited']} edited "
        "(a rejected record is left out; an edit replaces the answer or rationale; an accept re-admits a "
        "record a critic dropped).",
        *([""] + [f"- rejected because: {_one_line(reason)}" for reason in reasons[:20]] if reasons else []),
        "",
        "## Columns",
        "",
        ", ".join(f"`{c}`" for c in columns or COLUMNS),
        "",
    ]
    return "\n".join(lines)


def _clear_target(target: Path) -> None:
    """Refuse a target that would overwrite what an export did not write; empty an earlier export."""
    if target.exists() and not target.is_dir():
        raise RunError(f"--out {target} is an existing file; choose another --out, or remove the file")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not _is_export(target):
        raise RunError(
            f"--out {target} is a folder that holds files an export did not write; choose another --out "
            "(a new or empty folder), or remove that folder"
        )
    # The format may change from one export to the next: no data file of the earlier one may stay.
    for child in target.iterdir():
        child.unlink()


def _is_export(folder: Path) -> bool:
    """Whether `folder` holds an earlier export and nothing else: its card and the files of one format."""
    card = folder / "README.md"
    if not card.is_file():
        return False
    try:
        front = card.read_text(encoding="utf-8").split("---\n")
        header = yaml.safe_load(front[1]) if len(front) > 2 and front[0] == "" else None
    except (UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(header, dict) or "synthdistill" not in (header.get("tags") or []):
        return False
    return all(child.is_file() and _EXPORT_FILE.fullmatch(child.name) for child in folder.iterdir())


def _push(stage_file: Path, decisions: dict[str, Decision], card: str, repo: str, target: Path) -> None:
    from huggingface_hub import DatasetCard

    try:
        with kept_dataset(stage_file, decisions, review=True) as dataset:
            dataset.push_to_hub(repo)
        DatasetCard(card).push_to_hub(repo)
    except Exception as exc:  # the hub's errors are many (offline, auth, network); each ends the same way
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError(
            f"pushing to the hub repository {repo!r} failed ({type(exc).__name__}: {message}); "
            f"the export is written in {target}; check HF_TOKEN and the network, then export again"
        ) from None


def _pipeline_config(run: RunView) -> dict[str, Any]:
    path = run.root / "pipeline.yaml"
    if not path.exists():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def _one_line(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text.replace("\n", " ").replace("`", "'")


def _size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "n>1M"
