"""The leaderboard: one row per model with quality per task, cost, tokens, latency, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmbench.report.statistics import (
    comparisons,
    headline,
    overall_intervals,
    overall_ranks,
    task_ranks,
)
from llmbench.report.strategies import correct_per_row
from llmbench.schema import BenchConfig, Entrant, ModelSpec

RESULT_COLUMNS = [
    "model",
    "task",
    "sample_id",
    "prompt",
    "system",
    "references",
    "follow_ups",  # JSON: a conversation's user turns after the prompt
    "output",
    "turn_answers",  # JSON: a conversation's answer to each user turn (output is the last)
    "tool_calls",  # JSON: the functions the answer calls
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
    "spend_usd",  # what this run paid for the answer: its calls not served from the cache
    "answered_by",  # the model whose answer it is (a strategy's chosen member)
    "trace",  # JSON: every model call behind the answer
]
# Present only for judged tasks (and human_label only when the task has labels).
JUDGE_RESULT_COLUMNS = ["judgments", "judge_cost_usd", "judge_latency_s", "human_label"]


def spend_of(rows: pd.DataFrame) -> float:
    """What a run paid for these rows; results stored before ``spend_usd`` existed count
    every answer not from the response cache."""
    if "spend_usd" in rows:
        return float(rows["spend_usd"].sum())
    return float(rows.loc[~rows["cached"].astype(bool), "cost_usd"].sum())


def _percentile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(np.percentile(values, q)) if len(values) else math.nan


# How a row's cost was computed, said beside it (a local model's cost is a time, and a time is
# only honest when nothing else ran on those cores: local requests never overlap, one at a
# time across the run, in-process or on llama.cpp's server).
COST_BASIS = {
    "tokens": "tokens x the price per 1M",
    "compute": "each request's wall time x $/hour; local requests run one at a time",
    "strategy": "the sum of its member calls",
    "none": "no price",
}


def cost_basis(entrant: Entrant) -> str:
    """Which of :data:`COST_BASIS` prices ``entrant``."""
    if not isinstance(entrant, ModelSpec):
        return COST_BASIS["strategy"]
    price = entrant.price
    if price is None:
        return COST_BASIS["none"]
    return COST_BASIS["compute" if price.per_hour is not None else "tokens"]


def _price_columns(entrant: Entrant) -> dict[str, object]:
    """The price snapshot's figures a buyer compares models by (a strategy has none)."""
    price = entrant.price if isinstance(entrant, ModelSpec) else None
    if price is None:
        return {
            "price_input_per_1m_usd": math.nan,
            "price_output_per_1m_usd": math.nan,
            "price_per_hour_usd": math.nan,
            "context_window": math.nan,
            "cost_basis": cost_basis(entrant),
        }
    return {
        "cost_basis": cost_basis(entrant),
        "price_input_per_1m_usd": math.nan if price.input_per_1m is None else price.input_per_1m,
        "price_output_per_1m_usd": math.nan if price.output_per_1m is None else price.output_per_1m,
        "price_per_hour_usd": math.nan if price.per_hour is None else price.per_hour,
        "context_window": math.nan if price.context_window is None else price.context_window,
    }


def answer_speeds(rows: pd.DataFrame) -> pd.Series:
    """Output tokens per second of each answer: over the time after the first token where it
    was recorded (streaming), else over the whole request."""
    if rows.empty:
        return pd.Series(dtype=float)
    ttft = rows["ttft_s"].astype(float).fillna(0.0) if "ttft_s" in rows else 0.0
    seconds = rows["latency_s"].astype(float) - ttft
    tokens = rows["output_tokens"].astype(float)
    return (tokens / seconds)[(seconds > 0) & (tokens > 0)]


def output_tokens_per_s(live: pd.DataFrame) -> float:
    """The median of :func:`answer_speeds`."""
    speeds = answer_speeds(live)
    return float(speeds.median()) if len(speeds) else math.nan


def build_leaderboard(
    config: BenchConfig,
    results: pd.DataFrame,
    aggregates: pd.DataFrame,
    intervals: pd.DataFrame,
) -> pd.DataFrame:
    """``results``: a row per (model, task, sample); ``aggregates``: model, task, metric,
    value; ``intervals``: the CI of every score (:func:`statistics.intervals`).

    rank = 1 + the number of models significantly better on the overall score: by the
    Holm-adjusted paired tests of :func:`statistics.comparisons` (the same seed, so the same
    tests as the printed table) where two models were scored on the same items, by
    non-overlapping CIs where they were not. ``<task>/rank`` is the same rule on the task's
    headline. Rank 1 is every model no other model beats beyond doubt."""
    cis = {
        (r["model"], r["task"], r["metric"]): (r["low"], r["high"])
        for r in intervals.to_dict("records")
    }
    overall = overall_intervals(config, results)
    tests = comparisons(config, results)
    per_task = task_ranks(config, intervals, tests)
    correct = correct_per_row(config, results)
    rows = []
    for model in config.entrants:
        mine = results[results["model"] == model.name]
        live = mine[mine["error"].isna()]
        row: dict[str, object] = {
            "model": model.name,
            "provider": model.provider,
            "model_id": model.model,
        }
        headlines = []
        for task in config.tasks:
            if not config.runs_on(model.name, task.name):  # no rows there: blank, not zero
                headlines.append(math.nan)
                continue
            found = aggregates[
                (aggregates["model"] == model.name) & (aggregates["task"] == task.name)
            ]
            for record in found.to_dict("records"):
                row[f"{task.name}/{record['metric']}"] = record["value"]
            line = headline(task)
            value = found.loc[found["metric"] == line.key, "value"]
            headlines.append(line.normalise(float(value.iloc[0])) if len(value) else math.nan)
            ci = cis[(model.name, task.name, line.key)]
            row[f"{task.name}/{line.key}_ci_low"] = ci[0]
            row[f"{task.name}/{line.key}_ci_high"] = ci[1]
            row[f"{task.name}/rank"] = per_task[task.name][model.name]
        # A task with nothing scored (or not run) makes the overall score undefined:
        # averaging the other tasks would rank this model on an easier subset than the rest.
        row["score"] = math.nan if any(map(math.isnan, headlines)) else float(np.mean(headlines))
        row["tasks_run"] = len(config.tasks_of(model.name))
        row["score_ci_low"] = overall[model.name].low
        row["score_ci_high"] = overall[model.name].high
        judged = live[live["judge_latency_s"] > 0] if "judge_latency_s" in live else live.iloc[:0]
        cost = float(mine["cost_usd"].sum())
        right = float(correct[mine.index].sum(skipna=True))
        row.update(
            {
                "samples": len(mine),
                "errors": int(mine["error"].notna().sum()),
                "error_rate": float(mine["error"].notna().mean()) if len(mine) else 0.0,
                "input_tokens": int(mine["input_tokens"].sum()),
                "output_tokens": int(mine["output_tokens"].sum()),
                "cost_usd": cost,
                # Dollars per right answer (headline score on 0-1, summed over the items).
                "cost_per_correct_usd": cost / right if right > 0 else math.nan,
                # What this run paid: answers from the response cache cost nothing again.
                "spend_usd": spend_of(mine),
                "cache_hits": int(mine["cached"].astype(bool).sum()),
                "retries": int((mine["attempts"] - 1).clip(lower=0).sum()),
                "latency_p50_s": _percentile(live["latency_s"], 50),
                "latency_p95_s": _percentile(live["latency_s"], 95),
                "ttft_p50_s": _percentile(live["ttft_s"].astype(float), 50)
                if "ttft_s" in live
                else math.nan,
                "output_tokens_per_s": output_tokens_per_s(live),
                **_price_columns(model),
                # What judging this model's answers cost; never part of cost_usd.
                "judge_cost_usd": float(mine["judge_cost_usd"].sum())
                if "judge_cost_usd" in mine
                else 0.0,
                "judge_latency_p50_s": _percentile(judged["judge_latency_s"], 50)
                if len(judged)
                else math.nan,
            }
        )
        rows.append(row)
    board = pd.DataFrame(rows)
    # Ranks are whole numbers or blank (an entrant not ranked: one that runs on some tasks
    # only, overall, or on a task it does not run): nullable, so a blank is not a float NaN.
    for task in config.tasks:
        board[f"{task.name}/rank"] = board[f"{task.name}/rank"].astype("Int64")
    board.insert(
        0, "rank", board["model"].map(overall_ranks(config, overall, tests)).astype("Int64")
    )
    first = ["rank", "model", "provider", "model_id", "score", "score_ci_low", "score_ci_high"]
    tail = [
        "tasks_run",
        "samples",
        "errors",
        "error_rate",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "cost_per_correct_usd",
        "spend_usd",
        "cache_hits",
        "retries",
        "latency_p50_s",
        "latency_p95_s",
        "ttft_p50_s",
        "output_tokens_per_s",
        "price_input_per_1m_usd",
        "price_output_per_1m_usd",
        "price_per_hour_usd",
        "context_window",
        "cost_basis",
        "judge_cost_usd",
        "judge_latency_p50_s",
    ]
    middle = [c for c in board.columns if c not in first and c not in tail]
    board = board[first + middle + tail]
    # Unranked entrants (some tasks only) after the ranked ones, in config order.
    return board.sort_values(
        ["rank", "score"], ascending=[True, False], na_position="last", kind="stable"
    ).reset_index(drop=True)


def rank_text(value: object) -> str:
    """A rank as printed: the number, or "-" where the entrant is not ranked."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(int(value))  # type: ignore[call-overload]


def partial_note(config: BenchConfig, entrant: str) -> str | None:
    """Why an entrant has no overall score or rank, or None when it runs on every task."""
    if not config.partial(entrant):
        return None
    mine = config.tasks_of(entrant)
    return (
        f"{entrant} ran on {len(mine)} of {len(config.tasks)} tasks ({', '.join(mine)}): "
        "no overall score or rank; its cost and latency are over those tasks only"
    )
