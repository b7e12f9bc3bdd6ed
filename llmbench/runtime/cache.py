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
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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


WAL_ATTEMPTS = 100  # 5 s of a new cache file's journal switch waiting for another opener
LOCKED_ATTEMPTS = 5  # a read or write the file stays locked for (after the timeout) is skipped
T = TypeVar("T")
logger = logging.getLogger("llmbench")


def _locked(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error)


class ResponseCache:
    """A thread-safe sqlite key -> completion store."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path = (directory or DEFAULT_DIR / "responses") / "responses.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Every step of a run opens the file (steps are threads, workers processes). A write
        # begins IMMEDIATE: it waits for the write lock (the timeout) where a DEFERRED one
        # that had read first would fail at once with "database is locked" once another
        # connection had written; and a lookup's statement is closed as soon as it is read,
        # so no read is left open beneath the next write.
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, timeout=30.0, isolation_level="IMMEDIATE"
        )
        # WAL, kept in the file. Switching a new file needs it to itself, and another step
        # may be opening it that instant: sqlite then refuses at once, so try again.
        self._unlocked(lambda: self._db.execute("PRAGMA journal_mode=WAL").close(), WAL_ATTEMPTS)
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses"
                " (key TEXT PRIMARY KEY, completion TEXT NOT NULL)"
            )
            self._db.commit()

    def get(self, key: str) -> Completion | None:
        """The stored answer; None when there is none, or when the file stayed locked (a
        miss costs a request, never the step)."""

        def lookup() -> Any:
            cursor = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,))
            try:
                return cursor.fetchone()
            finally:
                cursor.close()

        try:
            row = self._unlocked(lookup, LOCKED_ATTEMPTS)
        except sqlite3.OperationalError as error:
            if not _locked(error):
                raise
            logger.warning("response cache %s stayed locked: read skipped", self.path)
            return None
        return Completion.model_validate_json(row[0]) if row else None

    def put(self, key: str, completion: Completion) -> None:
        """Store an answer; one the file stayed locked for is not kept (it is in the step's
        rows either way: a later run asks again)."""
        if completion.error is not None:
            return
        stored = completion.model_copy(update={"cached": False}).model_dump_json()

        def write() -> None:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO responses (key, completion) VALUES (?, ?)",
                    (key, stored),
                )
                self._db.commit()
            except sqlite3.OperationalError:
                self._db.rollback()
                raise

        try:
            self._unlocked(write, LOCKED_ATTEMPTS)
        except sqlite3.OperationalError as error:
            if not _locked(error):
                raise
            logger.warning("response cache %s stayed locked: write skipped", self.path)

    def _unlocked(self, action: Callable[[], T], attempts: int) -> T:
        """``action`` under the lock, tried again while sqlite says the file is locked;
        the last attempt's error is raised."""
        for _ in range(attempts - 1):
            try:
                with self._lock:
                    return action()
            except sqlite3.OperationalError as error:
                if not _locked(error):
                    raise
            time.sleep(0.05)
        with self._lock:
            return action()

    def close(self) -> None:
        with self._lock:
            self._db.close()
