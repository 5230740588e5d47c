"""format and regex: required fields present, a pattern matched, a pattern forbidden.

`regex` looks at one field; `format` checks that the fields a record must have are there and not
empty, then applies the same optional patterns.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthdistill.critics import BaseCritic, field_text
from synthdistill.errors import CriticError
from synthdistill.records import Record, Verdict


class _PatternOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        "text",
        description="Field the patterns look at: answer, rationale, text, input.<key> or a jinja expression.",
    )
    pattern: str | None = Field(None, description="A regex the field must contain; None requires nothing.")
    forbid: str | None = Field(None, description="A regex the field must not contain; None forbids nothing.")
    ignore_case: bool = Field(False, description="Whether the patterns ignore case.")

    @field_validator("pattern", "forbid")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from None
        return value


class Regex(BaseCritic):
    """Passes a record whose field contains `pattern` and does not contain `forbid`."""

    name = "regex"
    Options = _PatternOptions
    options: _PatternOptions

    def score(self, records: list[Record]) -> list[Verdict]:
        """Search each record's field for the patterns."""
        return [self._patterns(record) for record in records]

    def _patterns(self, record: Record) -> Verdict:
        options = self.options
        flags = re.IGNORECASE if options.ignore_case else 0
        text = field_text(record, options.field)
        if options.pattern is not None and not re.search(options.pattern, text, flags):
            return Verdict(passed=False, reason=f"{options.field} lacks the pattern {options.pattern!r}")
        if options.forbid is not None:
            found = re.search(options.forbid, text, flags)
            if found:
                return Verdict(passed=False, reason=f"{options.field} holds forbidden {found.group()!r}")
        return Verdict(passed=True, reason="patterns ok")


class _FormatOptions(_PatternOptions):
    required: list[str] = Field(
        default_factory=lambda: ["rationale", "answer"],
        description="Fields that must be present and non-empty (answer, rationale, input.<key>, ...).",
    )


class Format(Regex):
    """Passes a record whose required fields are present and not empty, and whose patterns hold."""

    name = "format"
    Options = _FormatOptions
    options: _FormatOptions

    def score(self, records: list[Record]) -> list[Verdict]:
        """Check each record's required fields, then its patterns."""
        verdicts = []
        for record in records:
            missing = [field for field in self.options.required if not _present(record, field)]
            if missing:
                verdicts.append(Verdict(passed=False, reason=f"missing or empty: {', '.join(missing)}"))
            else:
                verdicts.append(self._patterns(record))
        return verdicts


def _present(record: Record, field: str) -> bool:
    try:
        return bool(field_text(record, field).strip())
    except CriticError:
        return False
