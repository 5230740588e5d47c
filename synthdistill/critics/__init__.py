"""Critics: judge records in batches. The interface, discovery and field access; one built-in a module.

A critic is any object with a `name` and `score(records) -> list[Verdict]`, one verdict per record.
`BaseCritic` adds options validated by a pydantic model and the stage context through `bind`. A
critic is found, in this order:

- by dotted path, `package.module:Class`;
- among the registered critics (built-ins and the entry-point group `synthdistill.critics`);
- in `critics/*.py` beside the pipeline file, then in the project's `critics/` folder (the working
  directory), registered by their `name`.

Writing one is a ten-line job: see `critics/no_hedging.py` at the root of the project.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from synthdistill.errors import CriticError
from synthdistill.records import Record, Verdict

if TYPE_CHECKING:
    from synthdistill.runs.context import StageContext

__all__ = [
    "BaseCritic",
    "Critic",
    "NoOptions",
    "build_critic",
    "critic_folders",
    "field_text",
    "find_critic",
    "known_critics",
]


class Critic(Protocol):
    """What the filter stage needs of a critic."""

    name: str

    def score(self, records: list[Record]) -> list[Verdict]:
        """One verdict per record, in order."""
        ...


class NoOptions(BaseModel):
    """The options of a critic that takes none."""

    model_config = ConfigDict(extra="forbid")


class BaseCritic:
    """A convenient base: options as a pydantic model in `Options`, validated at construction."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    options: Any
    ctx: StageContext | None = None
    """The filter stage's context (engines, templates, test split), set by `bind` before scoring."""

    def __init__(self, **options: Any) -> None:
        try:
            self.options = self.Options(**options)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"])
            raise CriticError(
                f"critic {self.name!r} option {key!r}: {error['msg']}; fix the option"
            ) from None

    def bind(self, ctx: StageContext) -> None:
        """Hand the critic the stage's context; critics that call a teacher or read the test split use it."""
        self.ctx = ctx

    def score(self, records: list[Record]) -> list[Verdict]:
        raise NotImplementedError


def build_critic(entry: str | dict[str, Any], ctx: StageContext | None = None) -> Critic:
    """A critic from a pipeline entry (a name, or {name: options}), bound to `ctx` when given."""
    if isinstance(entry, str):
        name, options = entry, dict[str, Any]()
    else:
        ((name, options),) = entry.items()
    base_dir = ctx.pipeline.base_dir if ctx is not None else None
    critic_class = find_critic(name, critic_folders(base_dir))
    try:
        critic: Critic = critic_class(**(options or {}))
    except CriticError:
        raise
    except TypeError as exc:
        raise CriticError(f"critic {name!r} cannot take the options {options!r} ({exc}); fix them") from None
    if not getattr(critic, "name", ""):
        raise CriticError(f"critic {name!r} has no `name`; give its class a `name = ...` attribute")
    if ctx is not None and hasattr(critic, "bind"):
        critic.bind(ctx)
    return critic


def critic_folders(base_dir: Path | None = None) -> list[Path]:
    """Where user critics are looked for: critics/ beside the pipeline file, then the project's critics/."""
    folders = [] if base_dir is None else [base_dir / "critics"]
    folders.append(Path.cwd() / "critics")
    unique: list[Path] = []
    for folder in folders:
        if folder.is_dir() and folder.resolve() not in unique:
            unique.append(folder.resolve())
    return unique


def find_critic(name: str, folders: Iterable[Path] = ()) -> Any:
    """The critic class (or factory) for a name, a dotted path `module:Class`, or a critic in `folders`."""
    from synthdistill.registry import registry

    if ":" in name:
        return _from_dotted_path(name)
    critics = registry("critic")
    if name in critics:
        return critics.get(name)
    folders = list(folders)
    for folder in folders:
        found = _folder_critics(folder)
        if name in found:
            return found[name]
    raise CriticError(
        f"unknown critic {name!r}; valid critics: {', '.join(known_critics(folders))} "
        "(or a dotted path package.module:Class)"
    )


def known_critics(folders: Iterable[Path] = ()) -> list[str]:
    """Every critic name that `find_critic` answers without a dotted path."""
    from synthdistill.registry import registry

    names = set(registry("critic").names())
    for folder in folders:
        names.update(_folder_critics(folder))
    return sorted(names)


def field_text(record: Record, field: str) -> str:
    """A record's `field` as text: answer, rationale, text, input.<key>, a dotted path or a jinja expression.

    `text` is what the record says: its rationale and answer when it has them, else its first sample's
    text, else its input's values. A field that the record lacks is an error naming it.
    """
    if "{{" in field or "{%" in field:
        return _render_expression(record, field)
    if field == "text":
        return _record_text(record)
    value: Any = record
    for part in field.split("."):
        if isinstance(value, BaseModel) and part in type(value).model_fields:
            value = getattr(value, part)
        elif isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise CriticError(
                f"record {record.id} has no field {field!r}; use answer, rationale, text, "
                f"input.<key> (its input has {', '.join(sorted(record.input)) or 'no keys'}) "
                "or a jinja expression such as '{{ question }} {{ answer }}'"
            )
    return "" if value is None else str(value)


def _record_text(record: Record) -> str:
    if record.rationale or record.answer:
        return "\n".join(part for part in (record.rationale, record.answer) if part)
    if record.samples:
        return record.samples[0].text
    return "\n".join(str(value) for value in record.input.values())


def _render_expression(record: Record, expression: str) -> str:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    variables = {
        **record.input,
        "input": record.input,
        "rationale": record.rationale,
        "answer": record.answer,
        "record": record,
    }
    try:
        return env.from_string(expression).render(**variables).strip()
    except jinja2.TemplateError as exc:
        raise CriticError(
            f"field expression {expression!r} failed on record {record.id}: {exc}; "
            f"the record gives {', '.join(sorted(variables))}"
        ) from None


def _from_dotted_path(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CriticError(
            f"critic {path!r}: cannot import module {module_name!r} ({exc}); check the dotted path "
            "package.module:Class and that the package is installed"
        ) from None
    if not hasattr(module, attribute):
        raise CriticError(f"critic {path!r}: module {module_name!r} has no attribute {attribute!r}")
    return getattr(module, attribute)


# Folder -> (fingerprint of its files, {name: critic class}); a file edited in a notebook is reloaded.
_FOLDERS: dict[Path, tuple[str, dict[str, Any]]] = {}


def _folder_critics(folder: Path) -> dict[str, Any]:
    """The critics defined in folder/*.py, by their `name`."""
    files = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    fingerprint = hashlib.sha256(
        "".join(f"{p}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in files).encode()
    ).hexdigest()
    cached = _FOLDERS.get(folder)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    found: dict[str, Any] = {}
    for path in files:
        module = _import_file(path)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and obj.__module__ == module.__name__  # defined here, not imported
                and isinstance(getattr(obj, "name", None), str)
                and getattr(obj, "name", "")
                and callable(getattr(obj, "score", None))
            ):
                found.setdefault(getattr(obj, "name", ""), obj)
    _FOLDERS[folder] = (fingerprint, found)
    return found


def _import_file(path: Path) -> Any:
    """Import a critic file as a module of its own (its name hashes the path, so two folders never clash)."""
    module_name = (
        f"synthdistill_user_critics.{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    )
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CriticError(f"cannot load critic file {path}; is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise CriticError(
            f"critic file {path} failed to import: {type(exc).__name__}: {exc}; fix the file or move it "
            "out of critics/"
        ) from None
    return module
