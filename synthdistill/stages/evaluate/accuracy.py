"""Accuracy: a model's completions on the test split, read and judged by the task's scorer.

The scorer (scoring/scorer.py) is the one the answer_match critic and self_consistency use, so an
answer the filter kept is an answer evaluate scores right. Free-text items also get ROUGE-L F1 and
embedding similarity (cosine) of the answer to the reference, since exact match undersells a close
paraphrase.
"""

from __future__ import annotations

from typing import Any

from synthdistill.records import Record, Sample
from synthdistill.scoring.scorer import Scorer


def grade(record: Record, samples: list[Sample], scorer: Scorer) -> Record:
    """The record with the model's completion, its answer as the scorer reads it and the verdict `correct`."""
    answer = scorer.read(samples[0].text, record) if samples else None
    verdict = scorer.judge(answer, record)
    return record.model_copy(update={"samples": samples, "answer": answer, "verdicts": {"correct": verdict}})


def accuracy_metrics(
    rows: list[Record], scorer: Scorer, *, resamples: int, seed: int, embedder: str | None
) -> tuple[dict[str, Any], list[float]]:
    """Accuracy with its 95% bootstrap interval and the scoring used, over graded rows; the 1/0 scores."""
    from synthdistill.stages.evaluate.stats import bootstrap_ci

    scores = [float(row.verdicts["correct"].passed) for row in rows]
    correct = int(sum(scores))
    low, high = bootstrap_ci(scores, resamples=resamples, seed=seed)
    metrics: dict[str, Any] = {
        "accuracy": round(correct / len(rows), 4) if rows else 0.0,
        "ci": [low, high],
        "correct": correct,
        "n": len(rows),
        "scoring": scorer.describe(rows) if rows else "",
    }
    texts = [row for row in rows if scorer.type_of(row) == "text"]
    if texts:
        metrics.update(
            text_similarity([row.answer or "" for row in texts], [row.gold or "" for row in texts], embedder)
        )
    return metrics, scores


def text_similarity(answers: list[str], references: list[str], embedder: str | None) -> dict[str, Any]:
    """Mean ROUGE-L F1 and (with an `embedder`) mean embedding cosine of answers to their references."""
    from synthdistill.critics.rouge import rouge_l, tokenize

    rouge = [rouge_l(tokenize(a), tokenize(r)) for a, r in zip(answers, references, strict=True)]
    result: dict[str, Any] = {"text_items": len(answers), "rouge_l": round(sum(rouge) / len(rouge), 4)}
    if embedder is not None:
        from synthdistill.embeddings import embed

        cosines = (embed(answers, embedder) * embed(references, embedder)).sum(axis=1)
        result["embedding_similarity"] = round(float(cosines.mean()), 4)
    return result
