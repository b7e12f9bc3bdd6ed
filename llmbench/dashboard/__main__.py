"""``make dashboard`` / ``make stop``: both dashboards on the stores a config's runs use.

python -m llmbench.dashboard start [--config bench.yaml] [--zenml-port 8237] [--mlflow-port 5000]
python -m llmbench.dashboard stop
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llmbench import config as cfg
from llmbench.dashboard import mlflow_ui, zenml_server
from llmbench.errors import BenchError

DEFAULT_STATE_DIR = Path(".llmbench") / "dashboard"
DEFAULT_MLFLOW_PORT = 5000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llmbench.dashboard", description=__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument(
        "--config", type=Path, default=Path("bench.yaml"), help="whose MLflow store"
    )
    parser.add_argument("--zenml-port", type=int, default=zenml_server.DEFAULT_PORT)
    parser.add_argument("--mlflow-port", type=int, default=DEFAULT_MLFLOW_PORT)
    parser.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where the MLflow UI's pid goes"
    )
    return parser


def start(config_path: Path, zenml_port: int, mlflow_port: int, state_dir: Path) -> None:
    tracking_uri = cfg.load(config_path).tracking.uri or ""
    if tracking_uri.startswith(("http://", "https://")):
        print(f"MLflow UI:        {tracking_uri} (the config's tracking server)")
    else:
        ui = mlflow_ui.start(tracking_uri, mlflow_port, state_dir)
        print(f"MLflow UI:        {ui.url}  (store: {tracking_uri})")
    print(f"ZenML dashboard:  {zenml_server.start(zenml_port)}", flush=True)
    print("Stop both with:   make stop")


def stop(state_dir: Path) -> None:
    print("MLflow UI:       ", "stopped" if mlflow_ui.stop(state_dir) else "was not running")
    print("ZenML dashboard: ", "stopped" if zenml_server.stop() else "was not running")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "start":
            start(args.config, args.zenml_port, args.mlflow_port, args.state_dir)
        else:
            stop(args.state_dir)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
