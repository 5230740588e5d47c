"""The one error family of synthdistill.

    SynthdistillError
    ├── ConfigError      a pipeline file, a key in it, or a command-line override is wrong
    ├── DataError        a data source cannot be read or mapped
    ├── TemplateError    a prompt template is missing or needs a variable it was not given
    ├── TeacherError     a teacher backend cannot be built or reached
    ├── CriticError      a critic cannot be found, or broke on a record
    ├── StageError       a stage failed on a record
    └── RunError         a run folder is in a state that forbids the request

Every message says what was attempted, the value that came in, and the fix. The CLI prints one line
and exits with code 2; `--debug` shows the traceback.
"""

from __future__ import annotations


class SynthdistillError(Exception):
    """Base class of every error synthdistill raises on purpose."""


class ConfigError(SynthdistillError):
    """A pipeline file, one of its keys, or an override is wrong."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(SynthdistillError):
    """A data source cannot be read, or its field mapping does not fit it."""


class TemplateError(SynthdistillError):
    """A prompt template is missing, malformed, or needs a variable it was not given."""


class TeacherError(SynthdistillError):
    """A teacher backend cannot be built, or a request to it cannot be made."""


class CriticError(SynthdistillError):
    """A critic cannot be found, or raised or misbehaved on a batch of records."""


class StageError(SynthdistillError):
    """A stage failed on a record."""

    def __init__(self, message: str, *, stage: str, record_id: str | None = None) -> None:
        self.stage = stage
        self.record_id = record_id
        where = f"stage {stage!r}" + (f", record {record_id}" if record_id else "")
        super().__init__(f"{where}: {message}")


class RunError(SynthdistillError):
    """A run folder is in a state that forbids what was asked (for example, another pipeline's run)."""
