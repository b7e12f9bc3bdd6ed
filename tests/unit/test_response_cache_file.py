"""The response cache shared by a run's steps: one sqlite file, many connections."""

from __future__ import annotations

from pathlib import Path

from llmbench.types import Completion


def test_a_lookup_leaves_no_read_open_under_the_next_write(tmp_path: Path) -> None:
    """Two steps' caches on one file: a hit read by one, a write by the other, then a write
    by the first. A lookup's statement left open kept the first's read snapshot, and its
    write then failed at once with "database is locked" (a step lost in CI)."""
    from llmbench.runtime.cache import ResponseCache

    first, second = ResponseCache(tmp_path), ResponseCache(tmp_path)
    answer = Completion(text="4", input_tokens=1, output_tokens=1, latency_s=0.1)
    first.put("a", answer)
    assert first.get("a") is not None  # a hit: its row read, the statement not exhausted
    second.put("b", answer)
    first.put("c", answer)  # raised sqlite3.OperationalError: database is locked
    assert {k: first.get(k) is not None for k in "abc"} == {"a": True, "b": True, "c": True}
    first.close()
    second.close()


def test_a_locked_file_costs_a_request_not_the_step(tmp_path: Path) -> None:
    """While another connection holds the write lock past the timeout, a write is skipped
    after its attempts instead of failing the step; reads go on (write-ahead log)."""
    import sqlite3

    from llmbench.runtime import cache

    store = cache.ResponseCache(tmp_path)
    store._db.execute("PRAGMA busy_timeout = 0")  # no waiting: the attempts are what is counted
    answer = Completion(text="4", input_tokens=1, output_tokens=1, latency_s=0.1)
    store.put("a", answer)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock
    try:
        store.put("b", answer)  # skipped, not raised
        assert store.get("a") is not None  # a reader is never blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.get("a") is not None and store.get("b") is None
    store.close()
