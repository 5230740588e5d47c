"""Credentials in a pipeline: what looks like one, so that none is written into a pipeline (and from it
into a run folder's pipeline.yaml). A key belongs in an environment variable that `api_key_env` names.

Looked for in a teacher's `options` at any depth, and in the teachers that stage options name (an
llm_judge critic's `teacher`, an adversarial stage's `referee`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# A credential sits in a header that carries one (Authorization, api-key, x-api-key) or under a name with
# one of these words (api_key, client_secret, apiKey), or a name ending in token (hf_token); a count or an
# id of tokens (max_tokens, pad_token_id, token_healing) is none.
_CREDENTIAL_WORDS = frozenset(
    {"key", "apikey", "secret", "password", "passwd", "credential", "credentials", "authorization"}
)
_NOT_CREDENTIALS = frozenset({"prompt_cache_key"})  # an OpenAI parameter that names a cache bucket
_CREDENTIAL_VALUE = re.compile(r"(?:(?:bearer|basic) [\w.~+/=-]{8,}|sk-[\w-]{16,})", re.IGNORECASE)


def refusal(where: str) -> str:
    """The fix for a credential found at `where` (a key path)."""
    return (
        f"{where} looks like a credential, and credentials are never written in a pipeline (the run "
        "folder keeps a copy); remove it, put the value in an environment variable (or .env) and name "
        "that variable with api_key_env (for example api_key_env: OPENAI_API_KEY)"
    )


def credential_in(value: Any, path: str) -> str | None:
    """The key path of the first name or value in `value` that looks like a credential, or None."""
    if isinstance(value, str):
        return path if _CREDENTIAL_VALUE.fullmatch(value.strip()) else None
    for where, name, item in _entries(value, path):
        named = (
            name is not None and _credential_name(name) and not isinstance(item, bool | None | dict | list)
        )
        found = where if named else credential_in(item, where)
        if found:
            return found
    return None


def nested_teacher_credential(value: Any, path: str) -> str | None:
    """The key path of a credential in a teacher named inside stage options (a `teacher`, a `referee`)."""
    for where, name, item in _entries(value, path):
        if name in ("teacher", "referee") and isinstance(item, dict):
            options = credential_in(item.get("options"), f"{where}.options")
            found = f"{where}.api_key" if "api_key" in item else options
            if found:
                return found
        found = nested_teacher_credential(item, where)
        if found:
            return found
    return None


def _entries(value: Any, path: str) -> Iterator[tuple[str, str | None, Any]]:
    """(key path, name, item) of each entry of a mapping, or (key path, None, item) of a list's."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", str(key), item
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield f"{path}[{index}]", None, item


def _credential_name(name: str) -> bool:
    if name.lower() in _NOT_CREDENTIALS:
        return False
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if w]
    return bool(words) and (words[-1] == "token" or any(word in _CREDENTIAL_WORDS for word in words))
