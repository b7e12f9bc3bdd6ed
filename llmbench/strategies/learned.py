"""A learned routing score (RouteLLM's shape): the probability that the strong member is
needed, from a scikit-learn pipeline over the prompt's text, trained on an earlier run's
per-item results by ``python -m llmbench.route train``.

The file is a joblib pickle, so it is only ever read from a path the config names. It
records the ids it was trained on: a training item is never answered (it would flatter the
router); score the router on the split's ``test`` part.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench.errors import ConfigError

FORMAT = "llmbench-router/1"


@dataclass(frozen=True)
class LearnedRouter:
    pipeline: Any  # sklearn Pipeline with predict_proba
    train_ids: frozenset[str]
    meta: dict[str, Any]

    def score(self, prompt: str) -> float:
        return float(self.pipeline.predict_proba([prompt])[0][1])


_LOADED: dict[tuple[str, str], LearnedRouter] = {}
_LOCK = threading.Lock()


def file_digest(path: str) -> str:
    """Part of the strategy's identity: a retrained router re-runs the strategy."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"


def load(path: str) -> LearnedRouter:
    """The router in ``path`` (loaded once per process and file content)."""
    import joblib

    key = (path, file_digest(path))
    with _LOCK:
        if key not in _LOADED:
            if not Path(path).is_file():
                raise ConfigError(
                    "trained router file not found",
                    source=path,
                    hint="train one: python -m llmbench.route train <run dir> --task T "
                    "--weak W --strong S -o <file>",
                )
            data = joblib.load(path)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ConfigError(
                    "not a router trained by llmbench",
                    source=path,
                    hint="train one with python -m llmbench.route train",
                )
            meta = {k: v for k, v in data.items() if k not in ("pipeline", "train_ids")}
            _LOADED[key] = LearnedRouter(data["pipeline"], frozenset(data["train_ids"]), meta)
        return _LOADED[key]
