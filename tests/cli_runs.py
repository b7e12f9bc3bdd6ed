"""Running run.py as a user would: a subprocess with its own ZenML store and no MLflow env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A run.py subprocess is out of reach of the `backoff` fixture (tests/conftest.py): configs it
# runs against the fake say so themselves, so a retried request is sent again at once.
NO_WAIT_RETRIES = {"backoff_base_s": 0.0, "backoff_max_s": 0.0, "max_retry_after_s": 0.0}


def isolated_env(folder: Path, **extra: str) -> dict[str, str]:
    """The current environment with a private ZenML store and response cache under ``folder``."""
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(folder / "zenml"),
        "LLMBENCH_CACHE_DIR": str(folder / "cache"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """run.py with ``args``; fails the test with its output unless it exits 0."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result
