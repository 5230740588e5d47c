"""Critics: judge records in batches. The interface and its loading live here; one built-in a module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from synthdistill.errors import CriticError
from synthdistill.records import Record, Verdict

if TYPE_CHECKING:
    from synthdistill.context import StageContext


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
    from synthdistill.registry import registry

    if isinstance(entry, str):
        name, options = entry, dict[str, Any]()
    else:
        ((name, options),) = entry.items()
    critic_class = registry("critic").get(name)
    critic: Critic = critic_class(**(options or {}))
    if ctx is not None and hasattr(critic, "bind"):
        critic.bind(ctx)
    return critic
