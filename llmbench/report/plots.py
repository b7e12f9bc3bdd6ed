"""The report's plots, drawn with matplotlib: cost against quality with the Pareto frontier,
and the latency and speed distributions. Figures are built without pyplot (no global state,
safe in a worker thread) and come out as PNG bytes, inlined in report.html and logged to
MLflow."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from llmbench.report.leaderboard import answer_speeds
from llmbench.report.strategies import pareto
from llmbench.schema import BenchConfig, StrategySpec

PARETO_COLUMNS = ["model", "kind", "cost_usd", "score", "low", "high", "pareto"]
# A log cost axis once the cheapest and dearest entrant differ by more than this factor.
LOG_COST_RATIO = 20.0


def pareto_points(config: BenchConfig, leaderboard: pd.DataFrame) -> pd.DataFrame:
    """One row per entrant: its cost and score with the score's CI, whether it is a strategy,
    and whether it is on the Pareto frontier (no entrant both cheaper and better)."""
    if leaderboard.empty:
        return pd.DataFrame(columns=PARETO_COLUMNS)
    board = leaderboard.set_index("model")
    points = {str(m): (float(r["cost_usd"]), float(r["score"])) for m, r in board.iterrows()}
    frontier = pareto(points)
    rows = []
    for entrant in config.entrants:
        row = board.loc[entrant.name]
        rows.append(
            {
                "model": entrant.name,
                "kind": "strategy" if isinstance(entrant, StrategySpec) else "model",
                "cost_usd": float(row["cost_usd"]),
                "score": float(row["score"]),
                "low": float(row["score_ci_low"]),
                "high": float(row["score_ci_high"]),
                "pareto": entrant.name in frontier,
            }
        )
    return pd.DataFrame(rows, columns=PARETO_COLUMNS)


def frontier_line(points: pd.DataFrame) -> pd.DataFrame:
    """The frontier's points in order of cost: the line drawn through them."""
    return points[points["pareto"]].sort_values(["cost_usd", "score"]).reset_index(drop=True)


def _log_cost_axis(costs: pd.Series) -> bool:
    live = costs[costs.notna()]
    return bool(len(live) > 1 and (live > 0).all() and live.max() / live.min() > LOG_COST_RATIO)


def pareto_figure(points: pd.DataFrame, confidence: float) -> Figure:
    """Cost (x) against overall score (y), each entrant with its CI as an error bar; models
    as circles, strategies as diamonds, the frontier joined by a line."""
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    axes = figure.subplots()
    live = points[points["score"].notna() & points["cost_usd"].notna()]
    for kind, marker, label in (("model", "o", "models"), ("strategy", "D", "strategies")):
        mine = live[live["kind"] == kind]
        if mine.empty:
            continue
        below = (mine["score"] - mine["low"]).clip(lower=0).fillna(0)
        above = (mine["high"] - mine["score"]).clip(lower=0).fillna(0)
        axes.errorbar(
            mine["cost_usd"],
            mine["score"],
            yerr=np.vstack([below.to_numpy(), above.to_numpy()]),
            fmt=marker,
            capsize=4,
            label=label,
        )
    line = frontier_line(live)
    if len(line):
        axes.plot(
            line["cost_usd"],
            line["score"],
            linestyle="--",
            color="tab:green",
            marker="*",
            markersize=14,
            label="Pareto frontier",
        )
    for record in live.to_dict("records"):
        axes.annotate(
            str(record["model"]),
            (record["cost_usd"], record["score"]),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
        )
    if _log_cost_axis(live["cost_usd"]):
        axes.set_xscale("log")
    axes.set_xlabel("cost of the run (USD)")
    axes.set_ylabel(f"overall score (0-1), {confidence:.0%} CI")
    axes.set_title("cost vs quality")
    axes.grid(True, alpha=0.3)
    if len(live):
        axes.legend(loc="best", fontsize=8)
    return figure


def latency_figure(config: BenchConfig, results: pd.DataFrame) -> Figure:
    """Per entrant, the distribution of answer latency (box: quartiles, whiskers: p5-p95,
    a cross at p95), of time to first token where any answer streamed, and of output tokens
    per second."""
    names = [e.name for e in config.entrants]
    live = results[results["error"].isna()]
    mine = [live[live["model"] == n] for n in names]
    panels = [
        ("latency per answer (s)", [m["latency_s"].dropna().astype(float) for m in mine]),
    ]
    if "ttft_s" in live and live["ttft_s"].notna().any():
        panels.append(
            ("time to first token (s)", [m["ttft_s"].dropna().astype(float) for m in mine])
        )
    panels.append(("output tokens / s", [answer_speeds(m) for m in mine]))
    height = max(2.8, 0.45 * len(names) + 1.6)
    figure = Figure(figsize=(5 * len(panels), height), layout="constrained")
    grid = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for axes, (label, series) in zip(grid, panels, strict=True):
        data = [s.to_numpy() if len(s) else np.array([math.nan]) for s in series]
        axes.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=False)
        for position, values in enumerate(series, start=1):
            if len(values):
                axes.plot(np.percentile(values, 95), position, "x", color="tab:red")
        axes.set_xlabel(label)
        axes.grid(True, axis="x", alpha=0.3)
    first = grid[0]
    first.set_yticks(range(1, len(names) + 1), names)
    first.invert_yaxis()  # the first entrant on top, as in the tables
    figure.suptitle("median, quartiles, whiskers p5-p95, x = p95", fontsize=9)
    return figure


def png_bytes(figure: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as a data: URI, so the report needs no file or server beside it."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _colours(names: list[str]) -> dict[str, str]:
    """One colour per strategy, the same in every panel, so a shared legend can name it."""
    cycle = [f"C{i}" for i in range(10)]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(dict.fromkeys(names))}


def _legend_below(figure: Figure, named: dict[str, Artist], columns: int) -> None:
    """One legend for every panel, below them: inside an axes it covered the lines."""
    if named:
        figure.legend(
            list(named.values()),
            list(named),
            loc="outside lower center",
            ncols=min(columns, len(named)),
            fontsize=8,
        )


def rounds_figure(rounds: pd.DataFrame, confidence: float) -> Figure:
    """Per task (a row of panels each), by round: the quality of the answer each strategy
    would give had it stopped there, with its CI (left), and what the rounds so far cost per
    item (right). One colour per strategy across tasks, named once below."""
    tasks = list(dict.fromkeys(rounds["task"]))
    colours = _colours(list(rounds["model"]))
    figure = Figure(figsize=(11, 0.6 + 3.2 * max(1, len(tasks))), layout="constrained")
    grid = figure.subplots(max(1, len(tasks)), 2, squeeze=False)
    # Strategies side by side within a round, so their intervals do not hide each other.
    dodge = {name: 0.05 * (i - (len(colours) - 1) / 2) for i, name in enumerate(colours)}
    for (quality, cost), task in zip(grid, tasks, strict=False):
        for model, line in rounds[rounds["task"] == task].groupby("model", sort=False):
            below = (line["quality"] - line["low"]).clip(lower=0).fillna(0)
            above = (line["high"] - line["quality"]).clip(lower=0).fillna(0)
            quality.errorbar(
                line["round"] + dodge[str(model)],
                line["quality"],
                yerr=np.vstack([below.to_numpy(), above.to_numpy()]),
                marker="o",
                capsize=3,
                color=colours[str(model)],
                label=str(model),
            )
            cost.plot(line["round"], line["mean_cost_usd"], marker="o", color=colours[str(model)])
        quality.set_ylabel(f"headline (0-1), {confidence:.0%} CI")
        quality.set_title(f"{task}: quality by round (stopped after it)", fontsize=10)
        cost.set_ylabel("mean cost per item so far (USD)")
        cost.set_title(f"{task}: cost by round", fontsize=10)
        for axes in (quality, cost):
            axes.set_xlabel("round")
            axes.grid(True, alpha=0.3)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Every strategy, once: collected from the panels, whichever task it ran on.
    named: dict[str, Artist] = {}
    for quality, _ in grid:
        for handle, label in zip(*quality.get_legend_handles_labels(), strict=True):
            named.setdefault(label, handle)
    _legend_below(figure, named, columns=6)
    return figure


def draws_figure(draws: pd.DataFrame, confidence: float) -> Figure:
    """Per task (a panel each), per vote: pass@k (dashed) and maj@k (solid) against k with
    their CIs, from the same draws. One colour per vote across tasks, named once below."""
    tasks = list(dict.fromkeys(draws["task"]))
    colours = _colours(list(draws["model"]))
    columns = min(2, max(1, len(tasks)))
    rows = math.ceil(max(1, len(tasks)) / columns)
    figure = Figure(figsize=(5.5 * columns, 0.8 + 3.4 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    named: dict[str, Artist] = {}
    for axes, task in zip(grid, tasks, strict=False):
        for model, line in draws[draws["task"] == task].groupby("model", sort=False):
            colour = colours[str(model)]
            for column, low, high, style in (
                ("pass_at_k", "pass_low", "pass_high", "--"),
                ("maj_at_k", "maj_low", "maj_high", "-"),
            ):
                name = f"{model} {column.replace('_at_', '@')}"
                [drawn] = axes.plot(
                    line["k"], line[column], style, marker="o", color=colour, label=name
                )
                named.setdefault(name, drawn)
                axes.fill_between(
                    line["k"].to_numpy(float),
                    line[low].to_numpy(float),
                    line[high].to_numpy(float),
                    alpha=0.12,
                    color=colour,
                )
        axes.set_title(task, fontsize=10)
        axes.set_xlabel("k draws")
        axes.set_ylabel(f"share of items (0-1), {confidence:.0%} CI")
        axes.grid(True, alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for unused in grid[len(tasks) :]:
        unused.set_visible(False)
    figure.suptitle("pass@k (dashed: one of k right) and maj@k (solid: majority of k right)")
    _legend_below(figure, named, columns=4)
    return figure
