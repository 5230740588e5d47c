"""Prompt templates: jinja2 files rendered into chat messages.

A template is looked up in the pipeline file's folder, then the project's prompts/ folder (beside
the pipelines/ folder, or in the working directory), then the defaults shipped inside the package.
Lines `<|system|>`, `<|user|>` and `<|assistant|>` start messages, so a template can hold few-shot
turns; a template without them is one user message.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import jinja2

from synthdistill.errors import TemplateError

_ROLE_LINE = re.compile(r"^<\|(system|user|assistant)\|>[ \t]*$", re.MULTILINE)


class Templates:
    """Finds, hashes and renders prompt templates."""

    def __init__(self, search_path: list[Path]) -> None:
        self.search_path = [path for path in search_path if path.is_dir()]
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(path) for path in self.search_path]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            autoescape=False,  # prompts are plain text, never HTML
        )

    @classmethod
    def for_pipeline(cls, pipeline_dir: Path) -> Templates:
        """The search path for a pipeline file in `pipeline_dir`."""
        return cls(
            [
                pipeline_dir,
                pipeline_dir.parent / "prompts",
                Path.cwd() / "prompts",
                _packaged_prompts(),
            ]
        )

    def source(self, name: str) -> str:
        """The template's source text."""
        try:
            source, _filename, _uptodate = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            where = ", ".join(str(path) for path in self.search_path) or "no existing folder"
            raise TemplateError(
                f"template {name!r} not found in {where}; create it or fix the template name"
            ) from None
        return source

    def variables(self, name: str) -> set[str]:
        """The variables the template uses (and does not set itself); a syntax error names its line."""
        import jinja2.meta

        try:
            parsed = self._env.parse(self.source(name))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {name!r} line {exc.lineno}: {exc.message}; fix its syntax"
            ) from None
        return set(jinja2.meta.find_undeclared_variables(parsed))

    def hash(self, name: str) -> str:
        """A hash of the template's source, and of the templates it includes."""
        return hashlib.sha256(self.source(name).encode("utf-8")).hexdigest()[:16]

    def render_messages(self, name: str, variables: dict[str, Any]) -> list[dict[str, str]]:
        """Render `name` with `variables` into chat messages."""
        text = self.render(name, variables)
        parts = _ROLE_LINE.split(text)
        if len(parts) == 1:
            return [{"role": "user", "content": text.strip()}]
        if parts[0].strip():
            raise TemplateError(
                f"template {name!r} has text before its first <|role|> line; move it into a message"
            )
        return [
            {"role": role, "content": content.strip()}
            for role, content in zip(parts[1::2], parts[2::2], strict=True)
        ]

    def render(self, name: str, variables: dict[str, Any]) -> str:
        """Render `name` to text; a missing variable names the template and the variable."""
        self.source(name)
        try:
            return self._env.get_template(name).render(**variables)
        except jinja2.UndefinedError as exc:
            given = ", ".join(sorted(variables)) or "none"
            raise TemplateError(
                f"template {name!r}: {exc.message}; the record gives {given}: "
                "map the field in data.fields or fix the template"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {name!r} line {exc.lineno}: {exc.message}; fix its syntax"
            ) from None
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
            # An expression that fails on this record's values ("{{ count + 1 }}" on a string, say).
            raise TemplateError(
                f"template {name!r} failed on a record: {type(exc).__name__}: {exc}; check the expressions "
                "against the record's fields (data fields arrive as text: convert with | int or | float)"
            ) from None


def _packaged_prompts() -> Path:
    """The default templates: inside the installed wheel, or the source checkout's prompts/ (editable)."""
    package = Path(__file__).parent
    inside = package / "prompts"
    if inside.is_dir():
        return inside
    # An editable install runs from the checkout, where the templates are the top-level prompts/.
    return package.parent / "prompts"
