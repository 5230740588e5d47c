"""exact_dup and near_dup: drop a record that repeats one already kept, or one of the evaluation split.

Both keep state across the filter's batches: the texts they passed so far are the kept set, and a
later record is compared with all of them (and with the records before it in its own batch). A
record that a later critic drops stays in the kept set, so put these critics last in the filter. When a
killed filter resumes, the filter hands them (`remember`) what they passed before the kill.
With `against_test`, every record is also compared with the test split, so that no test item
leaks into training.

near_dup compares by embedding cosine (unit vectors, matrix products in blocks against the kept
set) or by ROUGE-L F1 (Self-Instruct dropped an instruction above 0.7 against any kept one; see
`critics/rouge.py` for how that stays fast).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.critics.rouge import RougeIndex, tokenize
from synthdistill.embeddings import DEFAULT_EMBEDDER
from synthdistill.records import Record, Verdict

if TYPE_CHECKING:
    import numpy as np

# Defaults where the option is None: Self-Instruct's ROUGE-L cut, and a cosine that in all-MiniLM-L6-v2
# space joins rephrasings of one sentence but not two problems that share a template.
DEFAULT_THRESHOLDS = {"embedding": 0.9, "rouge_l": 0.7}


class _DupOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        "text",
        description="Field compared: answer, rationale, text, input.<key> (input.question for prompts) "
        "or a jinja expression.",
    )
    against_test: bool = Field(
        False, description="Whether a record that repeats an item of the test split is dropped too."
    )
    test_field: str | None = Field(
        None, description="Field of the test items compared with `field`; None means the same field."
    )


class ExactDup(BaseCritic):
    """Passes the first record with a given text (case and whitespace ignored); drops the repeats."""

    name = "exact_dup"
    Options = _DupOptions
    options: _DupOptions

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._kept: dict[str, str] = {}
        self._test: dict[str, str] | None = None

    def score(self, records: list[Record]) -> list[Verdict]:
        """Hash each record's normalised text; a hash seen before is a duplicate."""
        test = self._test_hashes()
        verdicts = []
        for record in records:
            digest = _digest(field_text(record, self.options.field))
            if digest in test:
                verdicts.append(Verdict(score=1.0, passed=False, reason=f"repeats test item {test[digest]}"))
            elif digest in self._kept:
                verdicts.append(
                    Verdict(score=1.0, passed=False, reason=f"repeats record {self._kept[digest]}")
                )
            else:
                self._kept[digest] = record.id
                verdicts.append(Verdict(score=0.0, passed=True, reason="first of its text"))
        return verdicts

    def remember(self, records: list[Record]) -> None:
        """Add records passed before a resume to the kept set, without scoring them."""
        for record in records:
            self._kept.setdefault(_digest(field_text(record, self.options.field)), record.id)

    def _test_hashes(self) -> dict[str, str]:
        if self._test is None:
            field = self.options.test_field or self.options.field
            self._test = {_digest(field_text(r, field)): r.id for r in _test_records(self)}
        return self._test


class NearDup(BaseCritic):
    """Drops a record whose similarity to a kept record (or a test item) exceeds the threshold."""

    name = "near_dup"

    class Options(_DupOptions):
        method: Literal["embedding", "rouge_l"] = Field(
            "embedding", description="Similarity: embedding cosine, or ROUGE-L F1 of the words."
        )
        threshold: float | None = Field(
            None,
            gt=0.0,
            le=1.0,
            description="Drop above this similarity; None means 0.9 for embedding, 0.7 for rouge_l.",
        )
        embedder: str = Field(
            DEFAULT_EMBEDDER, description="Sentence-transformers model: embedded alias, folder or cached id."
        )
        block_size: int = Field(
            8192, ge=1, description="Kept vectors per matrix product (bounds memory at batch x block)."
        )

    options: Options

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.threshold = self.options.threshold or DEFAULT_THRESHOLDS[self.options.method]
        self._ids: list[str] = []
        self._vectors: _Rows | None = None
        self._test_vectors: np.ndarray | None = None
        self._index = RougeIndex()
        self._test_index: RougeIndex | None = None
        self._test_ids: list[str] = []

    def score(self, records: list[Record]) -> list[Verdict]:
        """Compare each record with the kept set, the test split when asked, and its batch."""
        texts = [field_text(record, self.options.field) for record in records]
        if self.options.method == "rouge_l":
            return self._score_rouge(records, texts)
        return self._score_embeddings(records, texts)

    def remember(self, records: list[Record]) -> None:
        """Add records passed before a resume to the kept set, without scoring them."""
        texts = [field_text(record, self.options.field) for record in records]
        if self.options.method == "rouge_l":
            for text in texts:
                self._index.add(tokenize(text))
        else:
            from synthdistill.embeddings import embed

            vectors = embed(texts, self.options.embedder)
            if self._vectors is None:
                self._vectors = _Rows(vectors.shape[1])
            self._vectors.extend(vectors)
        self._ids.extend(record.id for record in records)

    def _score_embeddings(self, records: list[Record], texts: list[str]) -> list[Verdict]:
        import numpy as np

        from synthdistill.embeddings import embed

        vectors = embed(texts, self.options.embedder)
        if self._vectors is None:
            self._vectors = _Rows(vectors.shape[1])
        kept_best, kept_at = _best_match(vectors, self._vectors.view(), self.options.block_size)
        test_best, test_at = _best_match(
            vectors, self._test_matrix(vectors.shape[1]), self.options.block_size
        )
        within = vectors @ vectors.T
        accepted = np.zeros(len(records), dtype=bool)
        verdicts = []
        for i in range(len(records)):
            earlier = np.flatnonzero(accepted[:i])
            batch_at = int(earlier[np.argmax(within[i, earlier])]) if len(earlier) else -1
            candidates = [
                (float(test_best[i]), f"test item {self._test_ids[test_at[i]]}" if test_at[i] >= 0 else ""),
                (float(kept_best[i]), f"record {self._ids[kept_at[i]]}" if kept_at[i] >= 0 else ""),
                (float(within[i, batch_at]), f"record {records[batch_at].id}")
                if batch_at >= 0
                else (-1.0, ""),
            ]
            similarity, other = max(candidates, key=lambda pair: pair[0])
            verdicts.append(self._verdict(similarity, other, "cosine"))
            if verdicts[-1].passed:
                accepted[i] = True
        self._vectors.extend(vectors[accepted])
        self._ids.extend(record.id for record, ok in zip(records, accepted, strict=True) if ok)
        return verdicts

    def _score_rouge(self, records: list[Record], texts: list[str]) -> list[Verdict]:
        test_index = self._test_rouge_index()
        verdicts = []
        for record, text in zip(records, texts, strict=True):
            tokens = tokenize(text)
            in_test = test_index.best_above(tokens, self.threshold)
            in_kept = self._index.best_above(tokens, self.threshold) if in_test is None else None
            if in_test is not None:
                verdict = self._verdict(in_test[1], f"test item {self._test_ids[in_test[0]]}", "ROUGE-L")
            elif in_kept is not None:
                verdict = self._verdict(in_kept[1], f"record {self._ids[in_kept[0]]}", "ROUGE-L")
            else:
                verdict = Verdict(score=None, passed=True, reason=f"no ROUGE-L above {self.threshold}")
                self._index.add(tokens)
                self._ids.append(record.id)
            verdicts.append(verdict)
        return verdicts

    def _verdict(self, similarity: float, other: str, measure: str) -> Verdict:
        if similarity > self.threshold:
            return Verdict(
                score=round(similarity, 4),
                passed=False,
                reason=f"near-duplicate of {other} ({measure} {similarity:.3f} > {self.threshold})",
            )
        if not other:
            return Verdict(score=0.0, passed=True, reason="nothing kept yet to compare with")
        return Verdict(
            score=round(max(similarity, 0.0), 4),
            passed=True,
            reason=f"max {measure} {similarity:.3f}, with {other}",
        )

    def _test_texts(self) -> list[str]:
        records = _test_records(self) if self.options.against_test else []
        self._test_ids = [r.id for r in records]
        field = self.options.test_field or self.options.field
        return [field_text(r, field) for r in records]

    def _test_matrix(self, dim: int) -> np.ndarray:
        if self._test_vectors is None:
            import numpy as np

            from synthdistill.embeddings import embed

            texts = self._test_texts()
            self._test_vectors = (
                embed(texts, self.options.embedder) if texts else np.zeros((0, dim), np.float32)
            )
        return self._test_vectors

    def _test_rouge_index(self) -> RougeIndex:
        if self._test_index is None:
            self._test_index = RougeIndex()
            for text in self._test_texts():
                self._test_index.add(tokenize(text))
        return self._test_index


def _test_records(critic: BaseCritic) -> list[Record]:
    if not critic.options.against_test:
        return []
    if critic.ctx is None:
        return []
    return list(critic.ctx.test_records)


def _digest(text: str) -> str:
    normal = re.sub(r"\s+", " ", text).strip().lower()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def _best_match(vectors: np.ndarray, kept: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `vectors`: the highest cosine against `kept` and its row (-1 where `kept` is empty)."""
    import numpy as np

    best = np.full(len(vectors), -1.0, dtype=np.float32)
    at = np.full(len(vectors), -1, dtype=np.int64)
    for start in range(0, len(kept), block_size):
        sims = vectors @ kept[start : start + block_size].T
        block_at = sims.argmax(axis=1)
        block_best = sims[np.arange(len(vectors)), block_at]
        better = block_best > best
        best[better] = block_best[better]
        at[better] = block_at[better] + start
    return best, at


class _Rows:
    """A float32 matrix that grows by whole rows, doubling its buffer, read as a zero-copy view."""

    def __init__(self, dim: int) -> None:
        import numpy as np

        self._data = np.zeros((1024, dim), dtype=np.float32)
        self._size = 0

    def extend(self, rows: np.ndarray) -> None:
        import numpy as np

        while self._size + len(rows) > len(self._data):
            self._data = np.concatenate([self._data, np.zeros_like(self._data)])
        self._data[self._size : self._size + len(rows)] = rows
        self._size += len(rows)

    def view(self) -> np.ndarray:
        return self._data[: self._size]
