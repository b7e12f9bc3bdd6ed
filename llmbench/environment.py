"""Process settings that keep a run offline and quiet; applied before ZenML/MLflow import.

Values already set by the user win, except where noted. This changes the process for good
(os.environ, a logger's level, one memoized importlib.metadata function): right for run.py,
which calls it once; tests that call it put the process back (tests/conftest.py).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import sqlite3
from collections.abc import MutableMapping
from typing import Any

DEFAULTS = {
    "ZENML_ANALYTICS_OPT_IN": "false",  # no analytics calls (the global config alone is not enough)
    "ZENML_LOGGING_VERBOSITY": "WARN",  # no per-step banners; our own output says what happens
    "ZENML_ENABLE_RICH_TRACEBACK": "false",
    "ZENML_LOGGING_COLORS_DISABLED": "true",
    "AUTO_OPEN_DASHBOARD": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_EVALUATE_OFFLINE": "1",  # metrics are local modules; never look them up on the Hub
    "TOKENIZERS_PARALLELISM": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    # A dynamic pipeline's step inputs that are plain values (a model spec, a task, a label)
    # become step parameters up to this many bytes of JSON, as in a static pipeline, instead
    # of an artifact uploaded for each input of each step on every run (ZenML's default, 0:
    # ~150 artifacts and ~0.1 s each per run of bench.yaml, cached or not). Parameters are
    # part of the cache key as those artifacts' contents were.
    "ZENML_PARAMETER_SIZE_THRESHOLD": str(1024 * 1024),
}
# ZenML's MLflow tracker warns on every run that it cannot disable autologging for
# frameworks that are not installed (fastai): noise, not a problem.
QUIETED_LOGGERS = ("zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker",)


def configure_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Apply the defaults to ``environ`` (default: os.environ), quiet ZenML's noisy logger and
    memoize the package scan."""
    env = os.environ if environ is None else environ
    for key, value in DEFAULTS.items():
        env.setdefault(key, value)
    # An empty catalog URI stops MLflow from fetching its model catalog over the network.
    env["MLFLOW_MODEL_CATALOG_URI"] = env.get("MLFLOW_MODEL_CATALOG_URI", "")
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    _memoize_package_scan()
    write_ahead_local_stores()


def write_ahead_local_stores() -> None:
    """Every sqlite database this process opens through SQLAlchemy (ZenML's local store,
    MLflow's) in write-ahead-log mode with ``synchronous=NORMAL``: a commit no longer waits
    for the disk (0.7 ms each on this machine; a fully cached run commits several hundred
    times), a crash may lose the last commits but never corrupts the file, and readers (a
    dashboard, a parallel step) no longer block a writer; a write transaction begins
    ``IMMEDIATE`` (below). A server-backed store is untouched."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _write_ahead):
        event.listen(Engine, "connect", _write_ahead)


def _write_ahead(connection: Any, _record: Any) -> None:
    if isinstance(connection, sqlite3.Connection):
        # pysqlite opens a transaction just before a write: IMMEDIATE takes the write lock
        # then, waiting for it (the busy timeout), where its default (DEFERRED) would read
        # first and then fail at once with "database is locked" if another connection had
        # written meanwhile (two steps publishing to ZenML's store). Reads still take none.
        connection.isolation_level = "IMMEDIATE"
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # kept in the file; a no-op in memory
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _memoize_package_scan() -> None:
    """ZenML calls ``packages_distributions()`` (a scan of every installed package) for each
    DataFrame artifact it saves: ~1 s per step here. The answer cannot change during a run."""
    scan = importlib.metadata.packages_distributions
    if not hasattr(scan, "cache_info"):
        importlib.metadata.packages_distributions = functools.lru_cache(maxsize=None)(scan)  # type: ignore[assignment]
