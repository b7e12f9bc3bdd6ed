"""pass@k and maj@k curves of a vote, from the n draws its answers already made (no new
call): for k = 1..n, how often one of k draws is right, and how often a majority vote over
k draws is right, each with a bootstrap interval over items.

pass@k is Chen et al. (2021, "Evaluating Large Language Models Trained on Code", eq. 1)'s
unbiased estimator: with c right draws of n, 1 - C(n-c, k) / C(n, k), the chance that k
draws taken from the n without replacement hold a right one.

maj@k is the same expectation for self-consistency (Wang et al., ICLR 2023, who report
accuracy against the number of sampled paths averaged over random draws): the mean, over
the k-subsets of the n draws, of whether the subset's majority answer (by the task's
extractors; draws without an answer do not vote) is right, a tie of t answers counting
the share of right ones among them (a tie broken at random). Every subset is counted when
there are at most ``EXACT_SUBSETS``, else that many are drawn at random (seeded). At k = n
it is the vote's own accuracy except on ties, which the vote breaks by its ``tie`` rule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmbench.report.rescore import binary, headline_values, unscorable
from llmbench.report.strategies import agreement
from llmbench.schema import BenchConfig, StrategySpec, TaskSpec
from llmbench.scoring import stats
from llmbench.strategies.base import TaskView
from llmbench.tables import trace_of
from llmbench.types import Call, Completion

DRAW_COLUMNS = [
    "model",
    "task",
    "k",
    "n",
    "items",
    "pass_at_k",
    "pass_low",
    "pass_high",
    "maj_at_k",
    "maj_low",
    "maj_high",
    "agreement",
]
EXACT_SUBSETS = 500


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k for ``c`` right draws of ``n``, in their numerically
    stable product form."""
    if not 0 < k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _subsets(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """The k-subsets of range(n) to average over: all of them, or EXACT_SUBSETS at random."""
    if math.comb(n, k) <= EXACT_SUBSETS:
        return np.array(list(itertools.combinations(range(n), k)), dtype=np.int64)
    return np.argsort(rng.random((EXACT_SUBSETS, n)), axis=1)[:, :k]


def maj_at_k(
    answers: Sequence[str | None],
    right: dict[str, float],
    k: int,
    rng: np.random.Generator | None = None,
) -> float:
    """The expected correctness of the majority answer of k of ``answers`` (see the module
    docstring); ``right``: each answer's score (1 right, 0 wrong)."""
    n = len(answers)
    if not 0 < k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    groups = sorted({a for a in answers if a is not None})
    if not groups:
        return 0.0
    index = {a: g for g, a in enumerate(groups)}
    none = len(groups)  # draws without an answer fall in a group that does not vote
    ids = np.array([none if a is None else index[a] for a in answers], dtype=np.int64)
    worth = np.array([right.get(a, 0.0) for a in groups])
    chosen = ids[_subsets(n, k, rng or np.random.default_rng(0))]
    rows = chosen.shape[0]
    offsets = chosen + (none + 1) * np.arange(rows)[:, None]
    counts = np.bincount(offsets.ravel(), minlength=rows * (none + 1)).reshape(rows, none + 1)
    counts = counts[:, :none]
    top = counts.max(axis=1)
    tied = (counts == top[:, None]) & (top[:, None] > 0)
    credit = np.where(top > 0, (tied @ worth) / np.maximum(tied.sum(axis=1), 1), 0.0)
    return float(credit.mean())


def voters(trace: list[Call]) -> list[Call]:
    """A vote's own draws: its calls at its own level (a strategy member's answer as one)."""
    return [c for c in trace if c.parent is None and c.kind in ("model", "strategy", "agent")]


def draw_curves(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """Per vote strategy and task whose answers can be rescored as right or wrong, a row per
    k: pass@k and maj@k with bootstrap intervals over items (items with fewer than k
    draws left out), and the vote's agreement on the k = n row."""
    rows: list[dict[str, object]] = []
    votes = [s for s in config.strategies if s.kind == "vote"]
    for task in config.tasks:
        if unscorable(task) is not None:
            continue
        view = TaskView.of(task)
        for vote in votes:
            if config.runs_on(vote.name, task.name):
                rows += _curve(config, vote, task, view, results)
    return pd.DataFrame(rows, columns=DRAW_COLUMNS)


def _curve(
    config: BenchConfig, vote: StrategySpec, task: TaskSpec, view: TaskView, results: pd.DataFrame
) -> list[dict[str, object]]:
    mine = results[(results["model"] == vote.name) & (results["task"] == task.name)]
    traces = [trace_of(t) for t in mine["trace"]]
    draws = [voters(t) for t in traces]
    texts = [[c.output if c.error is None else None for c in d] for d in draws]
    values = headline_values(task, mine, texts)
    if not binary(values) or not any(len(d) for d in draws):
        return []
    answers = [
        [view.answer_of(Completion(text=t)) if t is not None else None for t in item]
        for item in texts
    ]
    spec = config.stats
    rng = np.random.default_rng(spec.seed)
    longest = max(len(d) for d in draws)
    shared = agreement([[c for c in t if c.parent is None] for t in traces])
    rows: list[dict[str, object]] = []
    for k in range(1, longest + 1):
        passes, majorities = [], []
        for item_answers, item_values in zip(answers, values, strict=True):
            n = len(item_answers)
            if n < k:
                continue
            right = np.nan_to_num(item_values, nan=0.0)
            passes.append(pass_at_k(n, int(right.sum()), k))
            worth: dict[str, float] = {}
            for answer, value in zip(item_answers, right, strict=True):
                if answer is not None:
                    worth[answer] = max(worth.get(answer, 0.0), float(value))
            majorities.append(maj_at_k(item_answers, worth, k, rng))
        pass_ci, maj_ci = (
            stats.bootstrap_ci(
                shares, resamples=spec.resamples, confidence=spec.confidence, seed=spec.seed
            )
            for shares in (passes, majorities)
        )
        rows.append(
            {
                "model": vote.name,
                "task": task.name,
                "k": k,
                "n": longest,
                "items": len(passes),
                "pass_at_k": pass_ci.estimate,
                "pass_low": pass_ci.low,
                "pass_high": pass_ci.high,
                "maj_at_k": maj_ci.estimate,
                "maj_low": maj_ci.low,
                "maj_high": maj_ci.high,
                "agreement": shared if k == longest else math.nan,
            }
        )
    return rows
