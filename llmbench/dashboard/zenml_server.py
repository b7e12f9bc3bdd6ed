"""The local ZenML server and its dashboard, through ZenML's own CLI: ``zenml login
--local`` starts it as a daemon on the store of the current ZenML config (ZENML_CONFIG_PATH,
the same one run.py uses) and ``zenml logout --local`` stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmbench.dashboard.errors import DashboardError
from llmbench.dashboard.network import LOOPBACK, port_in_use, responds

DEFAULT_PORT = 8237  # ZenML's own default for the local server
CLI_TIMEOUT_S = 300.0


def _zenml_cli() -> str:
    """The ``zenml`` script of this interpreter's environment (not whatever is on PATH)."""
    script = Path(sys.executable).parent / "zenml"
    if not script.is_file():
        raise DashboardError(
            f"no zenml command next to {sys.executable}",
            hint="install llmbench's dependencies (make install)",
        )
    return str(script)


def _run(args: list[str], env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    environment = {**(env if env is not None else os.environ), "ZENML_AUTO_OPEN_DASHBOARD": "false"}
    try:
        return subprocess.run(
            [_zenml_cli(), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise DashboardError(
            f"'zenml {' '.join(args)}' did not finish in {CLI_TIMEOUT_S:.0f} s"
        ) from None


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def start(port: int = DEFAULT_PORT, env: dict[str, str] | None = None) -> str:
    """Start the local ZenML server on ``port`` (or keep the one running there); returns
    the dashboard's URL. ``env`` is the environment ZenML reads (default: this process's)."""
    if port_in_use(port) and not responds(f"{url(port)}/health"):
        raise DashboardError(
            f"port {port} is in use by something other than a ZenML server",
            hint=f"stop it, or pick another port (make dashboard ZENML_PORT={port + 1})",
        )
    result = _run(["login", "--local", "--ip-address", LOOPBACK, "--port", str(port)], env)
    if result.returncode != 0 or not responds(f"{url(port)}/health"):
        output = (result.stdout + result.stderr).strip()[-2000:]
        raise DashboardError(
            f"the local ZenML server did not start on port {port}:\n{output}",
            hint="run 'zenml login --local' yourself to see why; 'zenml logout --local' "
            "clears a half-started one",
        )
    return url(port)


def stop(env: dict[str, str] | None = None) -> bool:
    """Stop the local ZenML server of this ZenML config; False if none was running."""
    result = _run(["logout", "--local"], env)
    output = result.stdout + result.stderr
    if result.returncode != 0 and "not running" not in output.lower():
        raise DashboardError(f"'zenml logout --local' failed:\n{output.strip()[-2000:]}")
    return "shut down" in output.lower()
