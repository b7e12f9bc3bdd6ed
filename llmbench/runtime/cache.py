"""Persistent response cache below ZenML's step cache: never pay twice for the same answer.

Content-addressed on what determines an answer — provider, model, endpoint, model file,
messages, generation parameters and seed — never on the API key. Sampling without a seed
(temperature > 0) is keyed with the sample's position and draw too, so n samples stay n
samples.
One sqlite file in WAL mode, written once per completed request: a killed run loses at most
the requests in flight, and concurrent writers (threads or processes) are safe. Failed
requests are not stored, so a rerun tries them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from llmbench.types import Completion, Request

DEFAULT_DIR = Path(os.environ.get("LLMBENCH_CACHE_DIR", Path.home() / ".cache" / "llmbench"))


def cache_key(identity: dict[str, Any], request: Request, index: int) -> str:
    """``index`` (the sample's position) and the request's ``draw`` (which sample of that
    prompt) key only unseeded sampling: a greedy or seeded request is the same answer whoever
    asks for it. A plain text request keys as it did before requests carried tools."""
    params, draw = request.params, request.draw
    sampled = params.temperature > 0 and params.seed is None
    position: int | str | None = None
    if sampled:
        position = index if draw == 0 else f"{index}/{draw}"
    payload = {"model": identity, **request.identity(), "draw": position}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def reused(completion: Completion) -> Completion:
    """An answer given again (a response-cache hit, or shared with an identical request in
    flight) as this call's own: nothing was sent for it, so no attempts and no retry waits;
    those of the call that paid for it stay on that call's row."""
    return completion.model_copy(
        update={"cached": True, "attempts": 0, "retry_wait_s": 0.0, "trace": []}
    )


class ResponseCache:
    """A thread-safe sqlite key -> completion store."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path = (directory or DEFAULT_DIR / "responses") / "responses.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses"
                " (key TEXT PRIMARY KEY, completion TEXT NOT NULL)"
            )
            self._db.commit()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT completion FROM responses WHERE key = ?", (key,)
            ).fetchone()
        return Completion.model_validate_json(row[0]) if row else None

    def put(self, key: str, completion: Completion) -> None:
        if completion.error is not None:
            return
        stored = completion.model_copy(update={"cached": False}).model_dump_json()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, completion) VALUES (?, ?)", (key, stored)
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
