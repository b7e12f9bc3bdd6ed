"""The MLflow UI on a run's tracking store, as a background ``mlflow server``.

Its pid, port and store are kept in a small JSON file in the state folder, so ``stop`` ends
exactly the server ``start`` launched (and a second ``start`` finds it running)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from llmbench.dashboard.errors import DashboardError
from llmbench.dashboard.network import LOOPBACK, port_in_use, wait_until_healthy

STATE_FILE = "mlflow-ui.json"
LOG_FILE = "mlflow-ui.log"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class MlflowUi:
    """A running MLflow UI that ``start`` launched."""

    pid: int
    port: int
    tracking_uri: str

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def _sqlite_file(tracking_uri: str) -> Path | None:
    return (
        Path(tracking_uri.removeprefix("sqlite:///"))
        if tracking_uri.startswith("sqlite:///")
        else None
    )


def check_store(tracking_uri: str) -> None:
    """A sqlite store must exist: an empty UI on a path with a typo helps nobody."""
    database = _sqlite_file(tracking_uri)
    if database is not None and not database.is_file():
        raise DashboardError(
            f"no MLflow store at {database} yet",
            hint="run a benchmark first (make run), or pass the config whose runs you "
            "want to browse (make dashboard CONFIG=path/to/bench.yaml)",
        )


def running(state_dir: Path) -> MlflowUi | None:
    """The UI ``start`` launched from ``state_dir``, if its process is still alive."""
    state = state_dir / STATE_FILE
    if not state.is_file():
        return None
    try:
        ui = MlflowUi(**json.loads(state.read_text()))
        alive = psutil.Process(ui.pid).is_running() and "mlflow" in " ".join(
            psutil.Process(ui.pid).cmdline()
        )
    except (ValueError, TypeError, psutil.Error):
        alive = False
    if not alive:
        state.unlink(missing_ok=True)  # a stale file from a server that already ended
        return None
    return ui


def start(
    tracking_uri: str, port: int, state_dir: Path, env: dict[str, str] | None = None
) -> MlflowUi:
    """Launch ``mlflow server`` on ``tracking_uri`` in the background and wait until it
    answers; returns the running UI (the one already running, when there is one). ``env``
    is the server's environment (default: this process's)."""
    check_store(tracking_uri)
    current = running(state_dir)
    if current is not None:
        if current.tracking_uri != tracking_uri:
            raise DashboardError(
                f"an MLflow UI on another store is already running at {current.url} "
                f"({current.tracking_uri})",
                hint="stop it first: make stop",
            )
        return current
    if port_in_use(port):
        raise DashboardError(
            f"port {port} is already in use, so the MLflow UI cannot listen there",
            hint=f"stop what listens on {port}, or pick another port "
            f"(make dashboard MLFLOW_PORT={port + 1})",
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", tracking_uri,
        "--host", LOOPBACK, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with (state_dir / LOG_FILE).open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    ui = MlflowUi(pid=process.pid, port=port, tracking_uri=tracking_uri)
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(ui)))
    if not wait_until_healthy(f"{ui.url}/health", lambda: process.poll() is None, START_TIMEOUT_S):
        stop(state_dir)
        tail = (state_dir / LOG_FILE).read_text()[-2000:]
        raise DashboardError(
            f"the MLflow UI did not come up on port {port}:\n{tail}",
            hint=f"see {state_dir / LOG_FILE}",
        )
    return ui


def stop(state_dir: Path) -> bool:
    """End the UI ``start`` launched (its whole process group); False if none was running."""
    ui = running(state_dir)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if ui is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(ui.pid, signal.SIGTERM)
    try:
        psutil.Process(ui.pid).wait(timeout=STOP_TIMEOUT_S)
    except psutil.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
    except psutil.NoSuchProcess:
        pass
    return True
