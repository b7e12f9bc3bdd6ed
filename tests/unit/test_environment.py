"""configure_environment(): the offline defaults, applied without touching the test process."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from llmbench.environment import DEFAULTS, configure_environment, write_ahead_local_stores


def test_defaults_fill_a_given_mapping_and_the_users_values_win() -> None:
    before = dict(os.environ)
    environ = {"DO_NOT_TRACK": "0"}
    configure_environment(environ)
    assert dict(os.environ) == before  # the process's environment is not the one configured
    assert environ == {**DEFAULTS, "DO_NOT_TRACK": "0", "MLFLOW_MODEL_CATALOG_URI": ""}

    chosen = {"MLFLOW_MODEL_CATALOG_URI": "https://catalog.example"}
    configure_environment(chosen)
    assert chosen["MLFLOW_MODEL_CATALOG_URI"] == "https://catalog.example"


def test_local_sqlite_stores_write_ahead_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """ZenML's and MLflow's local stores are SQLAlchemy engines on sqlite: each connection
    they open is put in WAL mode with synchronous=NORMAL (1), the file keeps WAL."""
    from sqlalchemy import create_engine, text

    def pragmas(url: str) -> tuple[str, int]:
        engine = create_engine(url)
        with engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            sync = connection.execute(text("PRAGMA synchronous")).scalar_one()
        engine.dispose()
        return mode, sync

    before = pragmas(f"sqlite:///{tmp_path / 'before.db'}")
    assert before == ("delete", 2)  # sqlite's own: a rollback journal, FULL
    write_ahead_local_stores()
    write_ahead_local_stores()  # once is enough; twice changes nothing
    assert pragmas(f"sqlite:///{tmp_path / 'store.db'}") == ("wal", 1)
    engine = create_engine(f"sqlite:///{tmp_path / 'writes.db'}")
    with engine.connect() as connection:  # a write takes the write lock as it begins
        assert connection.connection.dbapi_connection.isolation_level == "IMMEDIATE"  # type: ignore[union-attr]
    engine.dispose()
    raw = sqlite3.connect(tmp_path / "store.db")  # another process's view of the file
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()
