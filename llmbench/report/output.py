"""Files a run leaves in its output folder, and the leaderboard as a terminal table."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from llmbench.config import BenchConfig
from llmbench.estimate import Estimate
from llmbench.report.leaderboard import primary_metric
from llmbench.scoring.metrics import METRICS
from llmbench.tracking.mlflow_log import price_snapshot


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def task_score_keys(config: BenchConfig) -> dict[str, list[str]]:
    return {
        task.name: [key for m in task.metrics for key in METRICS[m.name].output_keys(m.options)]
        for task in config.tasks
    }


def write_outputs(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    results: pd.DataFrame,
    output_dir: Path,
    *,
    latest_link: Path | None = None,
) -> None:
    """leaderboard.csv, samples.jsonl, the resolved config and price snapshot.

    ``latest_link``, when given, is pointed at ``output_dir`` (atomically)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    leaderboard.to_csv(output_dir / "leaderboard.csv", index=False)
    keys = task_score_keys(config)
    with (output_dir / "samples.jsonl").open("w", encoding="utf-8") as handle:
        for record in results.to_dict("records"):
            row = {k: _jsonable(v) for k, v in record.items() if not k.startswith("score.")}
            row["scores"] = {k: _jsonable(record[f"score.{k}"]) for k in keys[record["task"]]}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    (output_dir / "config.resolved.yaml").write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    )
    (output_dir / "prices.snapshot.yaml").write_text(yaml.safe_dump(price_snapshot(config)))
    if latest_link is not None and (latest_link.is_symlink() or not latest_link.exists()):
        tmp = latest_link.with_name(f".{latest_link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(output_dir.resolve(), latest_link.parent.resolve()))
        os.replace(tmp, latest_link)


def _fmt(value: Any, column: str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if column == "cost_usd":
            return f"${value:.6f}"
        if column.endswith("_s"):
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def leaderboard_table(config: BenchConfig, leaderboard: pd.DataFrame, title: str) -> Table:
    """The headline view: score, each task's first metric, cost, latency, errors.
    Every column is in leaderboard.csv."""
    headline = []
    for task in config.tasks:
        key, _ = primary_metric(config, task.name)
        headline.append((f"{task.name}/{key}", f"{task.name}\n{key}"))
    columns = [
        ("model", "model"),
        ("score", "score"),
        *headline,
        ("cost_usd", "cost\nUSD"),
        ("latency_p50_s", "p50\ns"),
        ("latency_p95_s", "p95\ns"),
        ("errors", "errors"),
    ]
    table = Table(title=title)
    for name, header in columns:
        table.add_column(header, justify="left" if name == "model" else "right")
    for record in leaderboard.to_dict("records"):
        table.add_row(*(_fmt(record.get(name, math.nan), name) for name, _ in columns))
    return table


def print_leaderboard(
    config: BenchConfig, leaderboard: pd.DataFrame, title: str, console: Console
) -> None:
    console.print(leaderboard_table(config, leaderboard, title))


def print_estimates(estimates: list[Estimate], console: Console) -> None:
    table = Table(title="llmbench dry run — nothing was sent")
    for header in (
        "model",
        "provider",
        "samples",
        "prompt tokens",
        "counted by",
        "max output tokens",
        "max cost USD",
    ):
        table.add_column(
            header, justify="left" if header in ("model", "provider", "counted by") else "right"
        )
    for e in estimates:
        cost = "by compute time" if e.max_cost_usd is None else f"${e.max_cost_usd:.4f}"
        table.add_row(
            e.model,
            e.provider,
            str(e.samples),
            str(e.prompt_tokens),
            e.counted_by,
            str(e.max_output_tokens),
            cost,
        )
    console.print(table)
    if any(e.counted_by == "estimated" for e in estimates):
        console.print("estimated: ~4 characters per token (no offline tokenizer for that API)")
    known = [e.max_cost_usd for e in estimates if e.max_cost_usd is not None]
    if known:
        console.print(
            f"At most ${sum(known):.4f} for the token-priced models (every answer at max_tokens)."
        )
