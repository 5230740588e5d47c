"""length: bounds on a field's length, in words or in tokens of the student's tokenizer."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthdistill.critics import BaseCritic, field_text
from synthdistill.errors import CriticError
from synthdistill.records import Record, Verdict


class Length(BaseCritic):
    """Passes a record whose field has between the bounds' words and tokens (each bound optional)."""

    name = "length"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        field: str = Field("rationale", description="Field measured: rationale, answer, text, input.<key>.")
        min_words: int = Field(0, ge=0, description="Fewest words the field may have.")
        max_words: int | None = Field(400, ge=1, description="Most words; None sets no bound.")
        min_tokens: int | None = Field(
            None, ge=0, description="Fewest tokens of the tokenizer; None sets no bound."
        )
        max_tokens: int | None = Field(
            None, ge=1, description="Most tokens of the tokenizer (what training sees); None sets no bound."
        )
        tokenizer: str | None = Field(
            None,
            description="Model whose tokenizer counts tokens (alias, folder or cached hub id); None "
            "means the pipeline's student.",
        )

    options: Options

    def score(self, records: list[Record]) -> list[Verdict]:
        """Count the words (and tokens, when a token bound is set) of each record's field."""
        options = self.options
        texts = [field_text(record, options.field) for record in records]
        counts: list[int | None] = [None] * len(texts)
        if options.min_tokens is not None or options.max_tokens is not None:
            tokenizer = load_tokenizer(self._tokenizer_name())
            counts = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        verdicts = []
        for text, tokens in zip(texts, counts, strict=True):
            words = len(text.split())
            problems = _outside("words", words, options.min_words, options.max_words)
            if tokens is not None:
                problems += _outside("tokens", tokens, options.min_tokens, options.max_tokens)
            size = f"{words} words" + ("" if tokens is None else f", {tokens} tokens")
            verdicts.append(
                Verdict(
                    score=float(words if tokens is None else tokens),
                    passed=not problems,
                    reason=size if not problems else f"{size}: {'; '.join(problems)}",
                )
            )
        return verdicts

    def _tokenizer_name(self) -> str:
        if self.options.tokenizer is not None:
            return self.options.tokenizer
        if self.ctx is None:
            raise CriticError(
                "critic 'length' counts tokens of the student's tokenizer but has no pipeline; "
                "set its tokenizer option"
            )
        return str(self.ctx.pipeline.config.student.model)


@lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Any:
    """The fast tokenizer of a model (alias, folder, adapter or cached hub id), loaded once; no weights are
    read, and an embedded model is not converted for it."""
    from transformers import AutoTokenizer

    from synthdistill import models

    if (Path(name) / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(name, use_fast=True)
    return models.load_tokenizer(name)


def _outside(unit: str, value: int, low: int | None, high: int | None) -> list[str]:
    problems = []
    if low is not None and value < low:
        problems.append(f"fewer than {low} {unit}")
    if high is not None and value > high:
        problems.append(f"more than {high} {unit}")
    return problems
