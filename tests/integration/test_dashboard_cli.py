"""`python -m llmbench.dashboard` (make dashboard / make stop) on bad input: each refusal says
what is wrong and how to fix it, and starts nothing. (tests/browser/ runs the servers.)"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.cli_runs import ROOT, isolated_env

CONFIG = ROOT / "configs" / "gsm8k_replay.yaml"


def dashboard(folder: Path, *args: str, tracking_uri: str) -> subprocess.CompletedProcess[str]:
    env = {**isolated_env(folder), "MLFLOW_TRACKING_URI": tracking_uri}
    return subprocess.run(
        [sys.executable, "-m", "llmbench.dashboard", *args, "--state-dir", str(folder / "state")],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_store_with_no_runs_yet_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "mlruns" / "mlflow.db"
    result = dashboard(
        tmp_path, "start", "--config", str(CONFIG), tracking_uri=f"sqlite:///{missing}"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no MLflow store at {missing} yet" in result.stderr
    assert "run a benchmark first (make run)" in result.stderr
    assert not (tmp_path / "state").exists()


def test_a_taken_port_is_refused_with_another_to_use(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    store.touch()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = dashboard(
            tmp_path, "start", "--config", str(CONFIG), "--mlflow-port", str(port),
            tracking_uri=f"sqlite:///{store}",
        )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {port} is already in use" in result.stderr
    assert f"MLFLOW_PORT={port + 1}" in result.stderr


def test_stop_with_nothing_running_says_so(tmp_path: Path) -> None:
    result = dashboard(tmp_path, "stop", tracking_uri="sqlite:///unused.db")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MLflow UI:        was not running" in result.stdout
    assert "ZenML dashboard:  was not running" in result.stdout
