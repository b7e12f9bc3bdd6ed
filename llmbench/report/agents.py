"""What a tool-using task cost per solved item: for each entrant on each task with
``tools:``, the items it solved, the steps (model calls) and tool calls an item took, the
tool calls that failed, the items cut at the step limit, and tokens and dollars per item
and per solved item (statistics/agents.csv)."""

from __future__ import annotations

import math

import pandas as pd

from llmbench.report.strategies import correct_per_row
from llmbench.schema import BenchConfig
from llmbench.tables import trace_of

AGENT_COLUMNS = [
    "model",
    "task",
    "items",
    "solved",
    "solve_rate",
    "steps_per_item",
    "tool_calls_per_item",
    "tool_errors",
    "step_limit_hits",
    "failed",
    "tokens_per_item",
    "tokens_per_solved",
    "cost_usd",
    "cost_per_solved_usd",
]


def _per(total: float, count: int) -> float:
    return total / count if count else math.nan


def agent_table(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """A row per (entrant, tool task); empty when no task has tools."""
    tool_tasks = {t.name for t in config.tasks if t.tools is not None}
    mine = results[results["task"].isin(tool_tasks)]
    if mine.empty:
        return pd.DataFrame(columns=AGENT_COLUMNS)
    correct = correct_per_row(config, results).loc[mine.index]
    rows = []
    for (model, task), group in mine.groupby(["model", "task"], sort=False):
        traces = [trace_of(t) for t in group["trace"]]
        steps = sum(c.kind == "model" for trace in traces for c in trace)
        tools = [c for trace in traces for c in trace if c.kind == "tool"]
        limited = sum(
            any(c.kind == "model" and (c.note or "").startswith("step limit") for c in trace)
            for trace in traces
        )
        items = len(group)
        solved = int((correct.loc[group.index] >= 1.0).sum())
        tokens = float((group["input_tokens"] + group["output_tokens"]).sum())
        cost = float(group["cost_usd"].sum())
        rows.append(
            {
                "model": model,
                "task": task,
                "items": items,
                "solved": solved,
                "solve_rate": _per(solved, items),
                "steps_per_item": _per(steps, items),
                "tool_calls_per_item": _per(len(tools), items),
                "tool_errors": sum(c.error is not None for c in tools),
                "step_limit_hits": limited,
                "failed": int(group["error"].notna().sum()),
                "tokens_per_item": _per(tokens, items),
                "tokens_per_solved": _per(tokens, solved),
                "cost_usd": cost,
                "cost_per_solved_usd": _per(cost, solved),
            }
        )
    return pd.DataFrame(rows, columns=AGENT_COLUMNS)
