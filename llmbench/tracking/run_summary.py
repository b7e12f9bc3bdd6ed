"""What a pipeline run's page shows at a glance: each task's leader and its score, the
run's cost, and a link to its MLflow run.

Pure functions over the leaderboard and the config; the track step attaches the result
to the ZenML run as metadata (ZenML renders a ``Uri`` value as a link).
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from llmbench.report.statistics import headline
from llmbench.schema import BenchConfig

UI_URL_ENV = "LLMBENCH_MLFLOW_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default


def epoch_ms(moment: datetime) -> int:
    """A ZenML timestamp (naive ones are UTC) as epoch milliseconds."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def leaders(config: BenchConfig, leaderboard: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per task: the entrant with the best headline score, the metric and the score."""
    out: dict[str, dict[str, Any]] = {}
    for task in config.tasks:
        key = f"{task.name}/{headline(task).key}"
        if key not in leaderboard:
            continue
        scored = leaderboard.dropna(subset=[key])
        if scored.empty:
            continue
        best = scored.loc[scored[key].idxmax()]
        out[task.name] = {
            "best": str(best["model"]),
            "metric": headline(task).key,
            "score": round(float(best[key]), 4),
        }
    return out


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page: on the tracking server itself, else on the MLflow UI serving the
    local store (``mlflow ui``; $LLMBENCH_MLFLOW_UI_URL when it listens elsewhere).
    Credentials in the URI (``https://user:token@host``) and its query are left out."""
    if tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri
    else:
        base = os.environ.get(UI_URL_ENV, DEFAULT_UI_URL)
    parts = urlsplit(base)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    clean = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"{clean}/#/experiments/{experiment_id}/runs/{run_id}"


def run_summary(
    config: BenchConfig, leaderboard: pd.DataFrame, results: pd.DataFrame
) -> dict[str, Any]:
    """The headline: every task's leader, the overall leader, the cost in USD."""
    summary: dict[str, Any] = {"leaders": leaders(config, leaderboard)}
    overall = leaderboard.dropna(subset=["score"]) if "score" in leaderboard else leaderboard
    if not overall.empty and "score" in overall:
        best = overall.loc[overall["score"].idxmax()]
        summary["best_overall"] = {"model": str(best["model"]), "score": float(best["score"])}
    judge_cost = float(results["judge_cost_usd"].sum()) if "judge_cost_usd" in results else 0.0
    cost = float(results["cost_usd"].sum())
    summary["cost_usd"] = cost + (0.0 if math.isnan(judge_cost) else judge_cost)
    summary["answers"] = len(results)
    return summary
