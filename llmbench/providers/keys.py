"""API keys: read from the environment, checked before any call, never shown.

A key is only ever held in memory by the SDK client. Error messages name the variable,
never the value, and :func:`redact` scrubs key values from any text that leaves a provider.

A model's ZenML secret is given to that model alone (:func:`provide_keys`), never to the
process environment: a pipeline's steps are threads of one process, and a secret's
``OPENAI_API_KEY`` set in ``os.environ`` for one step was read by a step running beside it
for another model on the same variable (ZenML's step ``secrets`` do exactly that).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence

from llmbench.errors import MissingKeyError

_MODEL_KEYS: dict[str, dict[str, str]] = {}  # model name -> its secret's variables
_LOCK = threading.Lock()


def provide_keys(model: str, values: Mapping[str, str]) -> None:
    """``model`` (a config's model name) reads these variables before the environment's."""
    with _LOCK:
        _MODEL_KEYS[model] = dict(values)


def keys_for(model: str) -> dict[str, str]:
    """The variables provided for ``model`` (for a worker process's environment)."""
    with _LOCK:
        return dict(_MODEL_KEYS.get(model, {}))


def forget_keys() -> None:
    """Drop every provided variable (a run's end: the next run provides its own)."""
    with _LOCK:
        _MODEL_KEYS.clear()


def variable(name: str, *, model: str) -> str:
    """``name``'s value for ``model``: its provided one, else the environment's ("" if
    neither), stripped."""
    with _LOCK:
        provided = _MODEL_KEYS.get(model, {}).get(name)
    return (provided if provided is not None else os.environ.get(name, "")).strip()


def read_key(variables: Sequence[str], *, model: str) -> str:
    """The first non-empty variable's value; a MissingKeyError naming them all otherwise."""
    for name in variables:
        value = variable(name, model=model)
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
