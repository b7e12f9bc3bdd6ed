"""RouteLLM's figures for a strategy that one score and one threshold decide between two
members (a threshold router; a two-stage cascade on stated confidence or a verifier's
grade), computed over the whole threshold sweep from the members' own rows (no new calls):
quality and cost at every share of calls to the strong model, PGR, APGR, CPT(50%),
CPT(80%), beside the oracle, with bootstrap intervals over items.

Definitions (Ong et al., 2024, "RouteLLM"): with weak quality q_w and strong quality q_s,
PGR(router) = (q(router) - q_w) / (q_s - q_w); APGR is the area under PGR against the share
of calls routed to the strong model (0 to 1), which is 0.5 in expectation for a router that
routes at random; CPT(x%) is the least share of strong calls at which PGR reaches x%.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from llmbench.schema import BenchConfig, StrategySpec
from llmbench.tables import trace_of

if TYPE_CHECKING:
    from llmbench.strategies.base import Sweep

ROUTING_COLUMNS = [
    "model",
    "task",
    "weak",
    "strong",
    "items",
    "weak_score",
    "strong_score",
    "oracle_score",
    "oracle_strong_share",
    "router_score",
    "router_strong_share",
    "router_pgr",  # PGR of the strategy as it ran (its own threshold)
    "apgr",
    "apgr_ci_low",
    "apgr_ci_high",
    "cpt_50",
    "cpt_50_ci_low",
    "cpt_50_ci_high",
    "cpt_80",
    "cpt_80_ci_low",
    "cpt_80_ci_high",
    "aiq",
]


def sweep(weak: np.ndarray, strong: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Quality when the k highest-scored prompts go to the strong model, k = 0..n."""
    order = np.argsort(-score, kind="stable")
    gains = np.concatenate([[0.0], np.cumsum((strong - weak)[order])])
    quality: np.ndarray = (weak.sum() + gains) / len(weak)
    return quality


def apgr(quality: np.ndarray, q_weak: float, q_strong: float) -> float:
    if q_strong == q_weak:
        return math.nan
    pgr = (quality - q_weak) / (q_strong - q_weak)
    shares = np.linspace(0.0, 1.0, len(quality))
    return float(np.trapezoid(pgr, shares))


def cpt(quality: np.ndarray, q_weak: float, q_strong: float, target: float) -> float:
    """The least share of strong calls whose quality recovers ``target`` of the gap."""
    if q_strong == q_weak:
        return math.nan
    pgr = (quality - q_weak) / (q_strong - q_weak)
    reached = np.flatnonzero(pgr >= target - 1e-12)
    return float(reached[0] / (len(quality) - 1)) if len(reached) else math.nan


def non_decreasing_hull(cost: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RouterBench's non-decreasing convex hull of (cost, quality) points: the upper hull,
    where spending more never lowers quality (a dearer point below a cheaper one is dropped:
    one would pay the cheaper one's price instead)."""
    order = np.lexsort((-quality, cost))
    hull: list[tuple[float, float]] = []
    for c, q in zip(cost[order], quality[order], strict=True):
        if hull and q <= hull[-1][1]:
            continue  # dominated: as dear or dearer, no better
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            if (q2 - q1) * (c - c1) <= (q - q1) * (c2 - c1):  # hull[-1] under the chord
                hull.pop()
            else:
                break
        hull.append((float(c), float(q)))
    points = np.array(hull)
    return points[:, 0], points[:, 1]


def aiq(cost: np.ndarray, quality: np.ndarray) -> float:
    """RouterBench's Average Improvement in Quality: the area under the non-decreasing
    convex hull over the cost range, divided by that range (Hu et al., 2024)."""
    c, q = non_decreasing_hull(cost, quality)
    low, high = float(cost.min()), float(cost.max())
    if high <= low:
        return float(q.max())
    # Beyond the hull's last point quality stays at its best (one can always pay less).
    c, q = np.append(c, high), np.append(q, q[-1])
    return float(np.trapezoid(q, c) / (high - low))


def _figures(weak: np.ndarray, strong: np.ndarray, score: np.ndarray) -> tuple[float, ...]:
    quality = sweep(weak, strong, score)
    q_w, q_s = float(weak.mean()), float(strong.mean())
    return apgr(quality, q_w, q_s), cpt(quality, q_w, q_s, 0.5), cpt(quality, q_w, q_s, 0.8)


def _headline(config: BenchConfig, results: pd.DataFrame, model: str, task: str) -> pd.Series:
    from llmbench.report.statistics import headline

    spec = next(t for t in config.tasks if t.name == task)
    line = headline(spec)
    mine = results[(results["model"] == model) & (results["task"] == task)]
    column = f"score.{line.key}"
    values = mine[column].to_numpy(float) if column in mine else np.full(len(mine), np.nan)
    return pd.Series(line.normalise(values), index=mine["sample_id"].astype(str).to_numpy())


def _route_scores(results: pd.DataFrame, model: str, task: str) -> tuple[pd.Series, pd.Series]:
    """Per item, the strategy's last recorded score and what its judging calls (a router's
    classifier, a cascade's verifier) cost: every threshold pays those, whoever answers."""
    from llmbench.strategies.base import JUDGING

    mine = results[(results["model"] == model) & (results["task"] == task)]
    scores, judging = [], []
    for trace in mine["trace"]:
        calls = trace_of(trace)
        found = [c.score for c in calls if c.score is not None and c.parent is None]
        scores.append(found[-1] if found else math.nan)
        judging.append(math.fsum(c.cost_usd for c in calls if c.purpose in JUDGING))
    index = mine["sample_id"].astype(str).to_numpy()
    return pd.Series(scores, index=index, dtype=float), pd.Series(judging, index=index)


def _sweeps(config: BenchConfig) -> list[tuple[StrategySpec, str, str, Sweep]]:
    """(strategy, weak model, strong model, how it sweeps) for every sweepable strategy."""
    from llmbench.strategies.registry import strategy_class

    models = {m.name for m in config.models}
    found = []
    for strategy in config.strategies:
        sweep_spec = strategy_class(strategy.kind).sweep(strategy)
        if sweep_spec is None:
            continue
        weak, strong = strategy.members[sweep_spec.weak], strategy.members[sweep_spec.strong]
        if weak in models and strong in models:
            found.append((strategy, weak, strong, sweep_spec))
    return found


def routing_table(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """A row per (sweepable strategy, task): the sweep's figures with intervals."""
    alpha = (1.0 - config.stats.confidence) / 2.0
    rows = [
        _row(config, results, strategy, task.name, weak, strong, how, alpha)
        for strategy, weak, strong, how in _sweeps(config)
        for task in config.tasks
        if config.runs_on(strategy.name, task.name)
    ]
    return pd.DataFrame(rows, columns=ROUTING_COLUMNS)


CURVE_COLUMNS = ["model", "task", "strong_calls", "strong_share", "score", "cost_usd"]


def sweep_curves(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """Every point of every sweep: quality and the strategy's cost when the k prompts its
    score ranks first go to the strong member, k = 0..n (from cache hits: each member's own
    row answered every item)."""
    parts = []
    for strategy, weak, strong, how in _sweeps(config):
        for task in config.tasks:
            frame = _frame(config, results, strategy, task.name, weak, strong, how.direction)
            if frame.empty:
                continue
            quality, cost = _curve(frame, escalates=how.escalates)
            n = len(frame)
            parts.append(
                pd.DataFrame(
                    {
                        "model": strategy.name,
                        "task": task.name,
                        "strong_calls": np.arange(n + 1),
                        "strong_share": np.arange(n + 1) / n,
                        "score": quality,
                        "cost_usd": cost,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=CURVE_COLUMNS)


def _curve(frame: pd.DataFrame, *, escalates: bool) -> tuple[np.ndarray, np.ndarray]:
    """(quality, cost) when the k highest-scored items go to the strong member, k = 0..n.

    Every item pays its judging calls. A router pays the one member it chose, so sending an
    item to strong trades the weak call for the strong one; a cascade (``escalates``) has
    already paid the weak call when it escalates, so the strong call comes on top of it."""
    score = frame["score"].to_numpy()
    order = np.argsort(-score, kind="stable")
    quality = sweep(frame["weak"].to_numpy(), frame["strong"].to_numpy(), score)
    extra = frame["strong_cost"] if escalates else frame["strong_cost"] - frame["weak_cost"]
    base = frame["weak_cost"].sum() + frame["judging_cost"].sum()
    cost: np.ndarray = base + np.concatenate([[0.0], np.cumsum(extra.to_numpy()[order])])
    return quality, cost


def _costs(results: pd.DataFrame, model: str, task: str) -> pd.Series:
    mine = results[(results["model"] == model) & (results["task"] == task)]
    return pd.Series(
        mine["cost_usd"].to_numpy(float), index=mine["sample_id"].astype(str).to_numpy()
    )


def _frame(
    config: BenchConfig,
    results: pd.DataFrame,
    strategy: StrategySpec,
    task: str,
    weak: str,
    strong: str,
    direction: int,
) -> pd.DataFrame:
    """Per item: both members' headline scores and costs, the strategy's own score, its
    judging calls' cost and the sweep score (higher: to the strong member first). An item
    the strategy recorded no score for goes to the strong member first when a missing score
    means escalation."""
    scores, judging = _route_scores(results, strategy.name, task)
    if direction < 0:
        scores = (-scores).fillna(math.inf)
    frame = pd.DataFrame(
        {
            "weak": _headline(config, results, weak, task),
            "strong": _headline(config, results, strong, task),
            "router": _headline(config, results, strategy.name, task),
            "score": scores,
            "weak_cost": _costs(results, weak, task),
            "strong_cost": _costs(results, strong, task),
            "judging_cost": judging,
        }
    )
    return frame.dropna()


def _row(
    config: BenchConfig,
    results: pd.DataFrame,
    strategy: StrategySpec,
    task: str,
    weak_name: str,
    strong_name: str,
    how: Sweep,
    alpha: float,
) -> dict[str, object]:
    frame = _frame(config, results, strategy, task, weak_name, strong_name, how.direction)
    weak, strong = frame["weak"].to_numpy(), frame["strong"].to_numpy()
    score = frame["score"].to_numpy()
    row: dict[str, object] = dict.fromkeys(ROUTING_COLUMNS, math.nan)
    row.update(
        {
            "model": strategy.name,
            "task": task,
            "weak": weak_name,
            "strong": strong_name,
            "items": len(frame),
        }
    )
    if frame.empty:
        return row
    figures = _figures(weak, strong, score)
    rng = np.random.default_rng(config.stats.seed)
    draws = []
    for _ in range(config.stats.resamples):
        pick = rng.integers(0, len(frame), len(frame))
        draws.append(_figures(weak[pick], strong[pick], score[pick]))
    table = np.array(draws, dtype=float)
    low, high = np.nanquantile(table, [alpha, 1.0 - alpha], axis=0)
    row.update(
        {
            "weak_score": float(weak.mean()),
            "strong_score": float(strong.mean()),
            "oracle_score": float(np.maximum(weak, strong).mean()),
            "oracle_strong_share": float((strong > weak).mean()),
            "router_score": float(frame["router"].mean()),
            "router_strong_share": _strong_share(results, strategy.name, task, strong_name),
        }
    )
    gap = float(strong.mean()) - float(weak.mean())
    if gap != 0:
        row["router_pgr"] = (float(frame["router"].mean()) - float(weak.mean())) / gap
    quality, cost = _curve(frame, escalates=how.escalates)
    row["aiq"] = aiq(cost, quality)
    for n, key in enumerate(("apgr", "cpt_50", "cpt_80")):
        row[key] = figures[n]
        row[f"{key}_ci_low"] = float(low[n])
        row[f"{key}_ci_high"] = float(high[n])
    return row


def _strong_share(results: pd.DataFrame, strategy: str, task: str, strong: str) -> float:
    """The share of the strategy's answers the strong member gave in this run."""
    mine = results[(results["model"] == strategy) & (results["task"] == task)]
    return float((mine["answered_by"] == strong).mean()) if len(mine) else math.nan
