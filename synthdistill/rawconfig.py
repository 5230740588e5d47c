"""The pipeline file before validation: its text read as UTF-8 YAML, and `--set` overrides applied to the
raw mapping. Errors name the file (or --set), the key, and the fix: a byte that is not UTF-8 is placed by
line, column and the key whose value holds it; a `--set` value that is not YAML is never echoed (it may be
a secret).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from synthdistill.errors import ConfigError


def read_raw(path: Path) -> dict[str, Any]:
    """The pipeline file's YAML mapping, as written."""
    file = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("pipeline file not found; check the path", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the pipeline file ({exc.strerror})", file=file) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _encoding_error(data, exc, file) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"YAML syntax error at {where}: {problem}; fix the YAML", file=file) from None
    if not isinstance(raw, dict):
        raise ConfigError("a pipeline must be a YAML mapping with name and stages", file=file)
    return raw


def apply_override(
    raw: dict[str, Any], override: str, *, file: str = "--set", keys: Collection[str] = ()
) -> None:
    """Apply one `key.path=value` override (value parsed as YAML) to a raw pipeline mapping.

    Stage options are reached by position or name: `stages.0.generate.n=2` or `generate.n=2`. `keys`
    are the pipeline's own keys; given them, a first part that is neither one of them nor a stage of the
    pipeline is refused here, naming --set and the stages the pipeline has.
    """
    key, sep, value_text = override.partition("=")
    if not sep or not key:
        raise ConfigError(
            f"override {override!r} is not key=value; write for example --set seed=1", file="--set"
        )
    try:
        value = yaml.safe_load(value_text) if value_text else ""
    except yaml.YAMLError as exc:
        # The value is not echoed: it may be a secret.
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"the value after = is not valid YAML ({problem}); close its brackets or braces, or quote a "
            f"string: --set '{key}=\"...\"'",
            file="--set",
            key=key,
        ) from None
    parts = key.split(".")
    stages = raw.get("stages")
    names: list[str | None] = []
    if isinstance(stages, list):
        # A stage written as a bare name (`- generate`) takes options once it is overridden.
        raw["stages"] = stages = [{s: {}} if isinstance(s, str) else s for s in stages]
        names = [next(iter(s)) if isinstance(s, dict) and len(s) == 1 else None for s in stages]
        if parts[0] in names and parts[0] not in raw:
            positions = [str(i) for i, name in enumerate(names) if name == parts[0]]
            if len(positions) > 1:
                rest = ".".join(parts[1:])
                choices = " or ".join(f"stages.{i}.{parts[0]}.{rest}" for i in positions)
                raise ConfigError(
                    f"--set {key}: the pipeline has {len(positions)} {parts[0]} stages; name one by "
                    f"position: {choices}",
                    file=file,
                    key=key,
                )
            parts = ["stages", positions[0], *parts]
    if keys and parts[0] not in raw and parts[0] not in keys:
        raise _absent_key_error(parts[0], key, [name for name in names if name], file, keys)
    target: Any = raw
    for depth, part in enumerate(parts[:-1]):
        if isinstance(target, list):
            if not part.isdigit() or int(part) >= len(target):
                raise ConfigError(
                    f"no list item {part!r} for --set {key}", file=file, key=".".join(parts[:depth])
                )
            target = target[int(part)]
        elif isinstance(target, dict):
            if target.get(part) is None:
                target[part] = {}
            target = target[part]
        else:
            break
    last = parts[-1]
    if isinstance(target, list):
        if not last.isdigit() or int(last) >= len(target):
            raise ConfigError(f"no list item {last!r} for --set {key}", file=file, key=key)
        target[int(last)] = value
    elif isinstance(target, dict):
        target[last] = value
    else:
        raise ConfigError(f"cannot set {key}: {'.'.join(parts[:-1])} is not a mapping", file=file, key=key)


def _absent_key_error(
    first: str, key: str, stages: list[str], file: str, keys: Collection[str]
) -> ConfigError:
    """--set on a key that is neither a pipeline key nor a stage of this pipeline."""
    from synthdistill.registry import registry

    has = f"its stages are {', '.join(dict.fromkeys(stages))}" if stages else "it has no stages"
    if first in registry("stage"):
        message = (
            f"the pipeline {file} has no {first} stage ({has}); --set a stage it has, or add a {first} "
            "stage to the file"
        )
    else:
        message = (
            f"unknown key {first!r}; --set takes a pipeline key ({', '.join(keys)}) or a stage name ({has})"
        )
    return ConfigError(message, file="--set", key=key)


def _encoding_error(data: bytes, exc: UnicodeDecodeError, file: str) -> ConfigError:
    """A pipeline file that is not UTF-8: where the first bad byte is, and the key it is under."""
    before = data[: exc.start].decode("utf-8")
    line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
    key = _key_at(data.decode("utf-8", errors="replace"), len(before))
    return ConfigError(
        f"byte 0x{data[exc.start]:02x} at line {line}, column {column} is not UTF-8 (the file was saved "
        "in another encoding, such as latin-1); save the file as UTF-8",
        file=file,
        key=key,
    )


def _key_at(text: str, index: int) -> str | None:
    """The key path (`stages[0].generate.template`) whose value holds character `index`, if it parses."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    path = ""
    while isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if isinstance(node, yaml.MappingNode):
            children = [(f".{k.value}", v) for k, v in node.value]
        else:
            children = [(f"[{i}]", v) for i, v in enumerate(node.value)]
        # Only values are searched: a byte in a mapping key is reported by its line alone.
        inside = [(step, v) for step, v in children if v.start_mark.index <= index < v.end_mark.index]
        if not inside:
            break
        step, node = inside[0]
        path += step
    return path.lstrip(".") or None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently, so
    two teachers or two options of one name would quietly become one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                problem = f"the key {key!r} is given twice in one mapping; keep one"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
