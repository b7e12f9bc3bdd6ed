"""The leaderboard: one row per model with quality per task, cost, tokens, latency, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmbench.config import BenchConfig
from llmbench.scoring.metrics import METRICS

RESULT_COLUMNS = [
    "model",
    "task",
    "sample_id",
    "prompt",
    "system",
    "references",
    "output",
    "reasoning",
    "answer",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_s",
    "ttft_s",
    "finish_reason",
    "model_version",
    "error",
    "cached",
    "attempts",
    "retry_wait_s",
]


def primary_metric(config: BenchConfig, task_name: str) -> tuple[str, float]:
    """A task's headline value (its first metric's first key) and that metric's scale."""
    task = next(t for t in config.tasks if t.name == task_name)
    metric = task.metrics[0]
    definition = METRICS[metric.name]
    return definition.output_keys(metric.options)[0], definition.scale


def _percentile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(np.percentile(values, q)) if len(values) else math.nan


def build_leaderboard(
    config: BenchConfig, results: pd.DataFrame, aggregates: pd.DataFrame
) -> pd.DataFrame:
    """``results``: a row per (model, task, sample); ``aggregates``: model, task, metric, value."""
    rows = []
    for model in config.models:
        mine = results[results["model"] == model.name]
        live = mine[mine["error"].isna()]
        row: dict[str, object] = {
            "model": model.name,
            "provider": model.provider,
            "model_id": model.model,
        }
        headline = []
        for task in config.tasks:
            found = aggregates[
                (aggregates["model"] == model.name) & (aggregates["task"] == task.name)
            ]
            for record in found.to_dict("records"):
                row[f"{task.name}/{record['metric']}"] = record["value"]
            key, scale = primary_metric(config, task.name)
            value = found.loc[found["metric"] == key, "value"]
            headline.append(float(value.iloc[0]) / scale if len(value) else math.nan)
        row["score"] = (
            float(np.nanmean(headline)) if not all(map(math.isnan, headline)) else math.nan
        )
        row.update(
            {
                "samples": len(mine),
                "errors": int(mine["error"].notna().sum()),
                "error_rate": float(mine["error"].notna().mean()) if len(mine) else 0.0,
                "input_tokens": int(mine["input_tokens"].sum()),
                "output_tokens": int(mine["output_tokens"].sum()),
                "cost_usd": float(mine["cost_usd"].sum()),
                # What this run paid: answers from the response cache cost nothing again.
                "spend_usd": float(mine.loc[~mine["cached"].astype(bool), "cost_usd"].sum()),
                "cache_hits": int(mine["cached"].astype(bool).sum()),
                "retries": int((mine["attempts"] - 1).clip(lower=0).sum()),
                "latency_p50_s": _percentile(live["latency_s"], 50),
                "latency_p95_s": _percentile(live["latency_s"], 95),
            }
        )
        rows.append(row)
    board = pd.DataFrame(rows)
    first = ["model", "provider", "model_id", "score"]
    tail = [
        "samples",
        "errors",
        "error_rate",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "spend_usd",
        "cache_hits",
        "retries",
        "latency_p50_s",
        "latency_p95_s",
    ]
    middle = [c for c in board.columns if c not in first and c not in tail]
    board = board[first + middle + tail]
    return board.sort_values("score", ascending=False, na_position="last").reset_index(drop=True)
