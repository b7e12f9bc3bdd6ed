"""API keys: read from the environment, checked before any call, never shown.

A key is only ever held in memory by the SDK client. Error messages name the variable,
never the value, and :func:`redact` scrubs key values from any text that leaves a provider.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from llmbench.errors import MissingKeyError


def read_key(variables: Sequence[str], *, model: str) -> str:
    """The first non-empty variable's value; a MissingKeyError naming them all otherwise."""
    for name in variables:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    wanted = " or ".join(variables)
    raise MissingKeyError(
        f"no API key for model {model!r}: {wanted} is not set",
        hint=f"export {variables[0]}=... (or set 'api_key_env' on the model to another variable)",
    )


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
