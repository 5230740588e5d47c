"""classifier: a critic trained on labelled records, as Symbolic Knowledge Distillation filtered its corpus.

West et al. trained a critic on a few thousand human accept/reject labels and kept what it accepted at
a threshold chosen for high precision. Here the labels come from `synthdistill review` decisions
(outputs/<run>/review.jsonl: accept 1, reject 0) or a labelled JSONL file ({"text": ..., "label": 1}
or record fields with a label); the model is a sentence embedding plus logistic regression (sklearn),
trained by `synthdistill critic train RUN_DIR`; the threshold is chosen on a held-out part for a target
precision (or recall), and the model, its embedder, field, threshold and held-out metrics are saved in
the run folder (critics/classifier.joblib), where the `classifier` critic finds them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.embeddings import DEFAULT_EMBEDDER
from synthdistill.errors import CriticError, DataError
from synthdistill.records import Record, Verdict

MODEL_FILE = Path("critics") / "classifier.joblib"
"""Where a run folder keeps its trained classifier."""
MIN_PER_CLASS = 4


@dataclasses.dataclass
class TrainedClassifier:
    """What `critic train` saves: the sklearn model and how to use it."""

    model: Any
    embedder: str
    field: str
    threshold: float
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


class Classifier(BaseCritic):
    """Passes a record whose predicted probability of acceptance reaches the trained threshold."""

    name = "classifier"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        model: str | None = Field(
            None,
            description="The saved classifier (a path, relative to the pipeline file's folder); None means "
            "critics/classifier.joblib in this run's folder, where `synthdistill critic train` puts it.",
        )
        threshold: float | None = Field(
            None, ge=0.0, le=1.0, description="Acceptance probability to pass; None means the trained one."
        )
        field: str | None = Field(None, description="Field scored; None means the field it was trained on.")

    options: Options

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._trained: TrainedClassifier | None = None

    def score(self, records: list[Record]) -> list[Verdict]:
        """Embed each record's field and ask the model for its probability of acceptance."""
        from synthdistill.embeddings import embed

        trained = self._load()
        threshold = trained.threshold if self.options.threshold is None else self.options.threshold
        field_name = self.options.field or trained.field
        texts = [field_text(record, field_name) for record in records]
        probabilities = trained.model.predict_proba(embed(texts, trained.embedder))[:, 1]
        return [
            Verdict(
                score=round(float(p), 4),
                passed=bool(p >= threshold),
                reason=f"p(accept) {p:.3f} {'>=' if p >= threshold else '<'} {threshold:.3f}",
            )
            for p in probabilities
        ]

    def _load(self) -> TrainedClassifier:
        if self._trained is None:
            if self.options.model is not None:
                base = self.ctx.pipeline.base_dir if self.ctx is not None else Path.cwd()
                path = base / self.options.model
            elif self.ctx is not None:
                path = self.ctx.run.run.root / MODEL_FILE
            else:
                raise CriticError("critic 'classifier' needs a `model` path outside a pipeline run")
            self._trained = load_classifier(path)
        return self._trained


def load_classifier(path: Path) -> TrainedClassifier:
    """A classifier saved by `train_classifier`; a missing file says how to make it."""
    import joblib

    if not path.is_file():
        raise CriticError(
            f"no trained classifier at {path}; train one with `synthdistill critic train RUN_DIR "
            "--labels FILE` (or --from-review) or set the critic's model option"
        )
    trained = joblib.load(path)
    if not isinstance(trained, TrainedClassifier):
        raise CriticError(f"{path} does not hold a classifier saved by `synthdistill critic train`")
    return trained


def train_classifier(
    run_dir: Path,
    *,
    labels: Path | None = None,
    from_review: bool = False,
    field: str = "text",
    embedder: str = DEFAULT_EMBEDDER,
    target_precision: float | None = 0.9,
    target_recall: float | None = None,
    holdout: float = 0.25,
    seed: int = 0,
    output: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train on labelled records, choose the threshold on a held-out part, save into the run folder.

    Labels come from `labels` (a JSONL file), from the run's review.jsonl (`from_review`, or when no
    file is given and the review exists), or both. Returns the saved path and the held-out metrics.
    """
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from synthdistill.embeddings import embed

    examples = load_labels(run_dir, labels=labels, from_review=from_review, field=field)
    texts = [text for text, _ in examples]
    y = np.array([label for _, label in examples], dtype=np.int64)
    accepted, rejected = int(y.sum()), int(len(y) - y.sum())
    if min(accepted, rejected) < MIN_PER_CLASS:
        raise DataError(
            f"training a classifier needs at least {MIN_PER_CLASS} accepted and {MIN_PER_CLASS} rejected "
            f"examples; got {accepted} accepted and {rejected} rejected: label more records"
        )
    x = embed(texts, embedder)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=holdout, random_state=seed, stratify=y
    )
    # Balanced weights: reviewers reject far fewer (or far more) than they accept.
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
    model.fit(x_train, y_train)
    probabilities = model.predict_proba(x_test)[:, 1]
    threshold, reached = choose_threshold(y_test, probabilities, target_precision, target_recall)
    predicted = probabilities >= threshold
    true_positive = int((predicted & (y_test == 1)).sum())
    metrics = {
        "threshold": round(threshold, 4),
        "target": {"precision": target_precision} if target_recall is None else {"recall": target_recall},
        "target_reached": reached,
        "precision": round(true_positive / max(int(predicted.sum()), 1), 4),
        "recall": round(true_positive / max(int((y_test == 1).sum()), 1), 4),
        "heldout": len(y_test),
        "train": len(y_train),
        "accepted": accepted,
        "rejected": rejected,
        "field": field,
        "embedder": embedder,
    }
    path = output or run_dir / MODEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(TrainedClassifier(model, embedder, field, threshold, metrics), path)
    path.with_suffix(".json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return path, metrics


def choose_threshold(
    y: Any, probabilities: Any, target_precision: float | None, target_recall: float | None
) -> tuple[float, bool]:
    """The threshold meeting the target with the most of the other measure; (best effort, False) if none does.

    For a target precision: the lowest threshold whose precision reaches it (keeps the most). For a
    target recall: the highest threshold whose recall reaches it (lets the fewest bad ones through).
    """
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, probabilities)
    # precision_recall_curve gives one more precision/recall than thresholds (the point at recall 0).
    precision, recall = precision[:-1], recall[:-1]
    if target_recall is not None:
        meets = [i for i in range(len(thresholds)) if recall[i] >= target_recall]
        if meets:
            return float(max(thresholds[i] for i in meets)), True
        return float(thresholds[0]), False
    target = 0.9 if target_precision is None else target_precision
    meets = [i for i in range(len(thresholds)) if precision[i] >= target]
    if meets:
        return float(min(thresholds[i] for i in meets)), True
    best = max(range(len(thresholds)), key=lambda i: (precision[i], -thresholds[i]))
    return float(thresholds[best]), False


def load_labels(
    run_dir: Path, *, labels: Path | None = None, from_review: bool = False, field: str = "text"
) -> list[tuple[str, int]]:
    """(text, label) pairs from a labelled JSONL file and/or the run's review decisions."""
    review = run_dir / "review.jsonl"
    use_review = from_review or (labels is None and review.is_file())
    if labels is None and not use_review:
        raise DataError(
            f"no labels: {review} does not exist; review the run (`synthdistill review {run_dir}`) or "
            'pass --labels FILE (JSONL lines such as {"text": ..., "label": 1})'
        )
    examples = []
    if labels is not None:
        examples.extend(_file_labels(labels, field))
    if use_review:
        examples.extend(_review_labels(run_dir, field))
    return examples


def _file_labels(path: Path, field: str) -> list[tuple[str, int]]:
    if not path.is_file():
        raise DataError(f"labels file {path} not found; check the path")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {number}: not JSON ({exc.msg}); fix the line") from None
        label = _label(row.get("label"))
        if label is None:
            raise DataError(
                f"{path} line {number}: field 'label' is {row.get('label')!r}; use 1/0, true/false or "
                "accept/reject"
            )
        if "text" in row and field == "text":
            examples.append((str(row["text"]), label))
            continue
        record = Record(
            id=str(row.get("id", number)),
            input=row.get("input")
            or {k: v for k, v in row.items() if k not in ("label", "rationale", "answer")},
            rationale=row.get("rationale"),
            answer=None if row.get("answer") is None else str(row["answer"]),
        )
        try:
            examples.append((field_text(record, field), label))
        except CriticError as exc:
            raise DataError(f"{path} line {number}: {exc}") from None
    return examples


def _review_labels(run_dir: Path, field: str) -> list[tuple[str, int]]:
    from synthdistill.runs.folder import read_records

    status: dict[str, int] = {}
    for line in (run_dir / "review.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            decision = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        label = _label(decision.get("action"))
        if label is not None:
            status[str(decision.get("record_id"))] = label  # later decisions over earlier
    # A record keeps its id through the stages that only judge it: the latest stage's copy wins.
    records: dict[str, Record] = {}
    for stage_file in sorted(run_dir.glob("[0-9][0-9]-*/records.jsonl")):
        for record in read_records(stage_file):
            if record.id in status:
                records[record.id] = record
    return [(field_text(records[rid], field), label) for rid, label in status.items() if rid in records]


def _label(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        return {"1": 1, "0": 0, "true": 1, "false": 0, "accept": 1, "reject": 0}.get(value.strip().lower())
    return None
