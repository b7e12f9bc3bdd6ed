"""A same-spend baseline for every multi-step strategy, with no extra config: its best
member (the model member with the highest headline on this run's rows of the task) given
the same money per item, as self-consistency over n draws of it, n chosen so its mean cost
per item is the closest to the strategy's. Much of what orchestration gains is spend (on
BrowseComp, token usage alone explained about 80% of the variance between agent systems),
so a strategy is read against both: its best member as it is, and that member paid as much.

The choice is a pure function of the strategy's and its members' scored rows, so the
pipeline's ``same_spend`` step (which sends the draws) and the report (which names them)
make the same one. On a task scored by metrics the draws are a ``vote`` of that member; on
a task graded by a judge, where a majority over free text is undefined, they are a
``universal_self_consistency`` of it (Chen et al. 2023: the member itself picks the most
consistent draw, one more call) and the picked answers are graded by the task's judge
panel as the leaderboard's rows are. A pairwise-judged task gets none: its score is a win
rate within the tournament of its entrants, which a baseline outside it does not have.
Draw 0 at the member's own temperature is its leaderboard row's request (a response-cache
hit); a greedy member's draws are sampled at ``DRAW_TEMPERATURE``. With n = 1 the baseline
is the member itself.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from llmbench.report.statistics import headline, item_scores
from llmbench.runtime.runner import request_params
from llmbench.schema import BenchConfig, ModelSpec, StrategySpec, TaskSpec
from llmbench.scoring import stats
from llmbench.strategies.registry import strategy_class
from llmbench.tables import trace_of

SAME_SPEND_COLUMNS = [
    "model",
    "task",
    "best_member",
    "member_score",
    "score",
    "vs_member",
    "vs_member_low",
    "vs_member_high",
    "vs_member_p",
    "cost_ratio",
    "baseline",
    "draws",
    "temperature",
    "baseline_score",
    "cost_per_item_usd",
    "baseline_cost_per_item_usd",
    "vs_baseline",
    "vs_baseline_low",
    "vs_baseline_high",
    "vs_baseline_p",
    "method",
    "n",
    "summary",
]
MAX_DRAWS = 64  # a vote's most draws
# Self-consistency sampled GPT-3 and PaLM at T = 0.7 (Wang et al., ICLR 2023, section 3.1).
DRAW_TEMPERATURE = 0.7
SUFFIX = ".same-spend"
Method = Literal["vote", "usc"]
PAIRWISE_REASON = (
    "no same-spend baseline: a pairwise-judged task's score is a win rate among its "
    "entrants, which a baseline outside that tournament does not have"
)


@dataclass(frozen=True)
class Baseline:
    """A strategy's same-spend baseline on one task: ``draws`` draws of ``member`` (at
    ``temperature``, None: the member's own), majority-voted (``vote``) or the one the
    member picks as the most consistent (``usc``, a judged task)."""

    strategy: str
    task: str
    member: str
    draws: int
    temperature: float | None
    method: Method = "vote"

    @property
    def name(self) -> str:
        """Its rows' entrant name; they travel apart from the leaderboard's rows."""
        return self.strategy + SUFFIX

    @property
    def label(self) -> str:
        if self.draws == 1:
            return f"{self.member} x1"
        return f"{self.member} x{self.draws} " + ("USC" if self.method == "usc" else "votes")

    def spec(self) -> StrategySpec:
        """The vote, or the universal self-consistency, that draws it (n >= 2)."""
        options: dict[str, Any] = {"samples": self.draws}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        kind = "universal_self_consistency" if self.method == "usc" else "vote"
        return StrategySpec(
            name=self.name, kind=kind, members={"draws": self.member}, options=options
        )


def method_of(task: TaskSpec) -> Method | None:
    """How a task's baseline combines its draws: a vote where metrics score it, universal
    self-consistency where a rubric or reference judge grades it; None (no baseline) on a
    pairwise-judged task or one with nothing to score."""
    if task.judge is not None:
        return None if task.judge.mode == "pairwise" else "usc"
    return "vote" if task.metrics else None


def needs_baseline(spec: StrategySpec) -> bool:
    """Every strategy that may make more than one call per item, except a vote or a
    universal self-consistency of one member's draws, which is self-consistency already."""
    if spec.kind == "universal_self_consistency":
        return False
    if spec.kind == "vote" and len(set(spec.members.values())) == 1:
        return False
    return sum(strategy_class(spec.kind).max_calls(spec).values()) > 1


def calls_for(draws: int, method: Method = "vote") -> int:
    """The member calls ``draws`` draws take per item: a universal self-consistency of two
    or more adds the selection call; one draw is the member itself."""
    return draws + 1 if method == "usc" and draws > 1 else draws


def draws_for(
    strategy_cost: float, member_cost: float, strategy_calls: float, method: Method = "vote"
) -> int:
    """The n in 1..MAX_DRAWS whose calls (:func:`calls_for`) x ``member_cost`` are the
    closest to ``strategy_cost`` (the smaller n on a tie); unpriced members (cost 0) are
    matched by model calls. USC's selection call is priced as one more member call: its
    prompt holds the n answers but its reply is one line, so a member call is about its
    size for short answers (an estimate; the baseline's row reports what it did cost)."""
    ns = range(1, MAX_DRAWS + 1)
    if not member_cost > 0:
        gaps = [abs(calls_for(n, method) - strategy_calls) for n in ns]
    else:
        gaps = [abs(calls_for(n, method) * member_cost - strategy_cost) for n in ns]
    return int(np.argmin(gaps)) + 1


def _headline_mean(task: TaskSpec, rows: pd.DataFrame) -> float:
    line = headline(task)
    column = f"score.{line.key}"
    if column not in rows or rows.empty:
        return math.nan
    values = line.normalise(rows[column].astype(float).to_numpy())
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def _model_calls(rows: pd.DataFrame) -> float:
    calls = [sum(c.kind == "model" for c in trace_of(t)) for t in rows["trace"]]
    return float(np.mean(calls)) if calls else 0.0


def choose(
    strategy: str,
    task: TaskSpec,
    strategy_rows: pd.DataFrame,
    member_rows: Mapping[str, pd.DataFrame],
    temperatures: Mapping[str, float],
    replayed: Collection[str] = (),
) -> Baseline | None:
    """The baseline, from the scored rows of the strategy and of each model member (in
    member order; a tie goes to the first); None when no member was scored. On a task that
    takes no baseline (:func:`method_of`) it only names the best member: nothing draws
    it. A ``replayed`` member (recorded outputs: every draw is its one answer) is drawn
    once: more money buys no other answer of it."""
    method = method_of(task) or "vote"  # none drawn: the best member is still named
    quality = {name: _headline_mean(task, rows) for name, rows in member_rows.items()}
    scored = [name for name, q in quality.items() if not math.isnan(q)]
    if not scored or strategy_rows.empty:
        return None
    best = max(scored, key=lambda name: quality[name])  # max keeps the first of equals
    mine = member_rows[best]
    draws = draws_for(
        float(strategy_rows["cost_usd"].mean()),
        float(mine["cost_usd"].mean()) if len(mine) else 0.0,
        _model_calls(strategy_rows),
        method,
    )
    if best in replayed:
        draws = 1
    greedy = temperatures.get(best, 0.0) == 0
    temperature = DRAW_TEMPERATURE if draws > 1 and greedy else None
    return Baseline(strategy, task.name, best, draws, temperature, method)


def replayed(models: Iterable[ModelSpec]) -> set[str]:
    """The members whose every draw is one answer: recorded outputs."""
    return {m.name for m in models if m.provider == "recorded"}


def member_temperatures(models: Sequence[ModelSpec], task: TaskSpec, seed: int) -> dict[str, float]:
    """Each member's temperature on ``task``, as its row's requests use it."""
    return {m.name: request_params(m, task, seed).temperature for m in models}


def baseline_of(
    config: BenchConfig, strategy: StrategySpec, task: TaskSpec, results: pd.DataFrame
) -> Baseline | None:
    """:func:`choose` over a run's results (the report's side of the choice)."""
    here = results[results["task"] == task.name]
    members = config.members_of(strategy)
    return choose(
        strategy.name,
        task,
        here[here["model"] == strategy.name],
        {m.name: here[here["model"] == m.name] for m in members},
        member_temperatures(members, task, config.execution.seed),
        replayed(members),
    )


def _test(
    config: BenchConfig, task: TaskSpec, a: pd.DataFrame, b: pd.DataFrame
) -> stats.PairedTest:
    """The leaderboard's paired test of the headline (McNemar for right/wrong scores), on
    the 0-1 scale, over the items both scored."""
    line = headline(task)
    x, y = item_scores(task, line.key, a), item_scores(task, line.key, b)
    shared = set(y.ids)
    ids = [i for i in x.ids if i in shared]
    spec = config.stats
    return stats.paired_test(
        x.group(ids, line),
        y.group(ids, line),
        resamples=spec.resamples,
        confidence=spec.confidence,
        seed=spec.seed,
    )


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2g}"


def summary(row: Mapping[str, Any]) -> str:
    """The line that says what a strategy buys against its best member and against that
    member paid as much."""
    ratio = row["cost_ratio"]
    cost = "at no cost" if math.isnan(ratio) else f"for {ratio:.1f}x the cost"
    line = (
        f"{row['model']} on {row['task']}: {100 * row['vs_member']:+.1f} points over "
        f"{row['best_member']} {cost} (p = {_p(row['vs_member_p'])})"
    )
    if isinstance(row["baseline"], str):
        line += (
            f"; {100 * row['vs_baseline']:+.1f} against {row['baseline']} at the same "
            f"spend (p = {_p(row['vs_baseline_p'])})"
        )
    elif row.get("reason"):
        line += f"; {row['reason']}"
    return line


def same_spend_table(
    config: BenchConfig, results: pd.DataFrame, baselines: pd.DataFrame
) -> pd.DataFrame:
    """Per multi-step strategy and task: the paired test against its best member and
    against its same-spend baseline (``baselines``: the baselines' scored rows, entrant
    ``<strategy>.same-spend``; a baseline not run is left blank)."""
    rows: list[dict[str, Any]] = []
    for task in config.tasks:
        here = results[results["task"] == task.name]
        runs = baselines[baselines["task"] == task.name] if len(baselines) else baselines.iloc[:0]
        for strategy in config.strategies:
            if not needs_baseline(strategy) or not config.runs_on(strategy.name, task.name):
                continue
            chosen = baseline_of(config, strategy, task, results)
            mine = here[here["model"] == strategy.name]
            if chosen is None or mine.empty:
                continue
            member = here[here["model"] == chosen.member]
            versus = _test(config, task, mine, member)
            own_cost = float(mine["cost_usd"].mean())
            member_cost = float(member["cost_usd"].mean())
            row: dict[str, Any] = {
                "model": strategy.name,
                "task": task.name,
                "best_member": chosen.member,
                "member_score": _headline_mean(task, member),
                "score": _headline_mean(task, mine),
                "vs_member": versus.difference,
                "vs_member_low": versus.low,
                "vs_member_high": versus.high,
                "vs_member_p": versus.p_value,
                "cost_ratio": own_cost / member_cost if member_cost > 0 else math.nan,
                "baseline": None,
                "draws": chosen.draws if method_of(task) is not None else math.nan,
                "temperature": math.nan if chosen.temperature is None else chosen.temperature,
                "baseline_score": math.nan,
                "cost_per_item_usd": own_cost,
                "baseline_cost_per_item_usd": math.nan,
                "vs_baseline": math.nan,
                "vs_baseline_low": math.nan,
                "vs_baseline_high": math.nan,
                "vs_baseline_p": math.nan,
                "method": versus.method,
                "n": versus.n,
            }
            ran = runs[runs["model"] == chosen.name] if len(runs) else runs
            if len(ran):
                same = _test(config, task, mine, ran)
                row.update(
                    baseline=chosen.label,
                    baseline_score=_headline_mean(task, ran),
                    baseline_cost_per_item_usd=float(ran["cost_usd"].mean()),
                    vs_baseline=same.difference,
                    vs_baseline_low=same.low,
                    vs_baseline_high=same.high,
                    vs_baseline_p=same.p_value,
                )
            if task.judge is not None and task.judge.mode == "pairwise":
                row["reason"] = PAIRWISE_REASON
            row["summary"] = summary(row)
            rows.append(row)
    return pd.DataFrame(rows, columns=SAME_SPEND_COLUMNS)
