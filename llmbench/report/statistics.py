"""How much to trust each number: intervals, paired tests, ratings and judge reliability.

Everything here is computed from the per-sample results (and the pairwise verdicts), so a
report can be rebuilt from a run's artifacts without calling a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmbench.config import BenchConfig, TaskSpec
from llmbench.scoring import stats
from llmbench.scoring.judge import (
    OUTCOME,
    PAIR_COLUMNS,
    combine_verdicts,
    reprice,
    score_failures,
)
from llmbench.scoring.judged import JUDGE_KEY, WIN_RATE_KEY, judged_key
from llmbench.scoring.metrics import METRICS

INTERVAL_COLUMNS = ["model", "task", "metric", "estimate", "low", "high", "n"]
COMPARISON_COLUMNS = [
    "task",
    "metric",
    "model_a",
    "model_b",
    "difference",
    "low",
    "high",
    "p_value",
    "method",
    "n",
    "significant",
]
RATING_COLUMNS = ["task", "model", "rating", "low", "high", "win_rate", "comparisons"]
INTEGER_COLUMNS = {"n", "comparisons", "judged", "unscored", "errors", "human_n"}
JUDGE_COLUMNS = [
    "task",
    "judge",
    "mode",
    "judged",
    "unscored",
    "errors",
    "cost_usd",
    "latency_p50_s",
    "position_consistency",
    "panel_agreement",
    "panel_agreement_method",
    "human_n",
    "human_accuracy",
    "human_kappa",
    "human_spearman",
]


@dataclass(frozen=True)
class Headline:
    """A task's headline metric and its range, to put tasks on one 0-1 scale."""

    key: str
    low: float
    high: float

    def normalise(self, value: Any) -> Any:
        """A value or an array of values on the 0-1 scale."""
        return (value - self.low) / (self.high - self.low)


def headline(task: TaskSpec) -> Headline:
    """The first metric's first key; for a task scored only by a judge, the judge's grade
    (in its scale) or the pairwise win rate."""
    if task.metrics:
        metric = task.metrics[0]
        definition = METRICS[metric.name]
        return Headline(definition.output_keys(metric.options)[0], 0.0, definition.scale)
    assert task.judge is not None
    if task.judge.mode == "pairwise":
        return Headline(WIN_RATE_KEY, 0.0, 1.0)
    low, high = task.judge.bounds
    return Headline(JUDGE_KEY, low, high)


def score_keys(task: TaskSpec) -> list[str]:
    """Every per-sample score a task reports: metric keys, then the judge's."""
    keys = [key for m in task.metrics for key in METRICS[m.name].output_keys(m.options)]
    extra = judged_key(task)
    return [*keys, extra] if extra else keys


def _rows(results: pd.DataFrame, model: str, task: str) -> pd.DataFrame:
    return results[(results["model"] == model) & (results["task"] == task)]


def intervals(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """A bootstrap CI of the mean of every per-sample score, per (model, task, metric)."""
    spec = config.stats
    rows = []
    for task in config.tasks:
        for model in config.entrants:
            mine = _rows(results, model.name, task.name)
            for key in score_keys(task):
                column = f"score.{key}"
                values = mine[column].to_numpy(float) if column in mine else np.array([])
                ci = stats.bootstrap_ci(
                    values, resamples=spec.resamples, confidence=spec.confidence, seed=spec.seed
                )
                rows.append([model.name, task.name, key, ci.estimate, ci.low, ci.high, ci.n])
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


def normalised_scores(config: BenchConfig, results: pd.DataFrame, model: str) -> list[np.ndarray]:
    """Per task, the model's headline per-sample scores on the common 0-1 scale."""
    groups = []
    for task in config.tasks:
        line = headline(task)
        column = f"score.{line.key}"
        mine = _rows(results, model, task.name)
        values = mine[column].to_numpy(float) if column in mine else np.array([])
        groups.append(line.normalise(values))
    return groups


def overall_intervals(config: BenchConfig, results: pd.DataFrame) -> dict[str, stats.Interval]:
    """Each model's overall score (mean over tasks of the headline) with a CI that resamples
    each task's items independently."""
    spec = config.stats
    intervals = {}
    for model in config.entrants:
        groups = normalised_scores(config, results, model.name)
        if any(np.isnan(g).all() for g in groups):  # a task with nothing scored: undefined
            intervals[model.name] = stats.Interval(math.nan, math.nan, math.nan, 0)
            continue
        intervals[model.name] = stats.stratified_bootstrap_ci(
            groups, resamples=spec.resamples, confidence=spec.confidence, seed=spec.seed
        )
    return intervals


def comparisons(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """Every pair of models on every task's headline metric, over the items both scored:
    the mean difference with its CI and a paired test (McNemar for 0/1 scores)."""
    spec = config.stats
    alpha = 1.0 - spec.confidence
    rows = []
    names = [m.name for m in config.entrants]
    for task in config.tasks:
        line = headline(task)
        column = f"score.{line.key}"
        frames = {}
        for name in names:
            mine = _rows(results, name, task.name)
            frames[name] = (
                mine.set_index("sample_id")[column].astype(float)
                if column in mine
                else pd.Series(dtype=float)
            )
        for n, a in enumerate(names):
            for b in names[n + 1 :]:
                joined = pd.concat([frames[a], frames[b]], axis=1, join="inner")
                if joined.empty:
                    continue
                test = stats.paired_test(
                    joined.iloc[:, 0].to_numpy(),
                    joined.iloc[:, 1].to_numpy(),
                    resamples=spec.resamples,
                    confidence=spec.confidence,
                    seed=spec.seed,
                )
                rows.append(
                    [
                        task.name,
                        line.key,
                        a,
                        b,
                        test.difference,
                        test.low,
                        test.high,
                        test.p_value,
                        test.method,
                        test.n,
                        bool(test.p_value < alpha) if test.n else False,
                    ]
                )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def ratings(config: BenchConfig, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Bradley-Terry ratings (Elo scale) with CIs and win rates, per pairwise task, from the
    panel's combined verdicts."""
    rows: list[list[Any]] = []
    if verdicts.empty:
        return pd.DataFrame(rows, columns=RATING_COLUMNS)
    spec = config.stats
    combined = combine_verdicts(verdicts)
    for task, frame in combined.groupby("task", sort=False):
        games = [
            (str(r["model_a"]), str(r["model_b"]), OUTCOME[r["winner"]])
            for r in frame.to_dict("records")
            if isinstance(r["winner"], str)
        ]
        if not games:
            continue
        fitted = stats.bradley_terry(
            games,
            resamples=spec.resamples,
            confidence=spec.confidence,
            seed=spec.seed,
        )
        for model, rating in fitted.items():
            rows.append(
                [
                    task,
                    model,
                    rating.rating,
                    rating.low,
                    rating.high,
                    rating.win_rate,
                    rating.comparisons,
                ]
            )
    return pd.DataFrame(rows, columns=RATING_COLUMNS).sort_values(
        ["task", "rating"], ascending=[True, False], ignore_index=True
    )


def _judgment_rows(results: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per (model, sample, judge) of a graded task, with the human label."""
    rows = []
    mine = results[results["task"] == task]
    has_labels = "human_label" in mine
    for record in mine.to_dict("records"):
        entries = record.get("judgments")
        if not isinstance(entries, (list, np.ndarray)):
            continue
        for entry in entries:
            rows.append(
                {
                    "model": record["model"],
                    "sample_id": record["sample_id"],
                    "judge": entry["judge"],
                    "grade": math.nan if entry.get("grade") is None else float(entry["grade"]),
                    "error": entry.get("error"),
                    "cost_usd": entry.get("cost_usd") or 0.0,
                    "latency_s": entry.get("latency_s"),
                    "answered": record.get("error") is None
                    or (isinstance(record.get("error"), float) and math.isnan(record["error"])),
                    "human": record.get("human_label") if has_labels else None,
                }
            )
    return pd.DataFrame(rows)


def _agreement_between(labels: pd.DataFrame, ordinal: bool) -> tuple[float, str]:
    """Inter-judge agreement: Cohen's kappa for two judges (quadratic-weighted on a grade
    scale), Fleiss' kappa for more."""
    table = labels.dropna()
    if labels.shape[1] < 2 or len(table) < 2:
        return math.nan, ""
    if labels.shape[1] == 2:
        weights = "quadratic" if ordinal else None
        kappa = stats.cohen_kappa(
            table.iloc[:, 0].tolist(), table.iloc[:, 1].tolist(), weights=weights
        )
        return kappa, "cohen_kappa_quadratic" if ordinal else "cohen_kappa"
    return stats.fleiss_kappa(table.values.tolist()), "fleiss_kappa"


def _is_label(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def judge_report(
    config: BenchConfig, results: pd.DataFrame, verdicts: pd.DataFrame
) -> pd.DataFrame:
    """Per (task, judge): volume, unscored replies, cost and latency, position consistency
    (pairwise), agreement within the panel and with human labels."""
    rows = []
    for task in config.tasks:
        judge = task.judge
        if judge is None:
            continue
        if judge.mode == "pairwise":
            mine = verdicts[verdicts["task"] == task.name] if not verdicts.empty else verdicts
            if mine.empty:
                continue
            panel = mine.pivot_table(
                index=["model_a", "model_b", "sample_id"],
                columns="judge",
                values="winner",
                aggfunc="first",
            )
            agreement, method = _agreement_between(panel, ordinal=False)
            for name in judge.panel:
                own = mine[mine["judge"] == name]
                skipped = own["a_failed"].fillna(False).astype(bool) | own["b_failed"].fillna(
                    False
                ).astype(bool)
                sent = own[~skipped]  # pairs with both answers: sent to the judge
                consistent = sent["consistent"].dropna().astype(bool)
                # Per call: a pair's two orders are two calls.
                latencies = sent.loc[sent["judge_latency_s"] > 0, "judge_latency_s"] / 2
                rows.append(
                    {
                        "task": task.name,
                        "judge": name,
                        "mode": judge.mode,
                        "judged": len(sent),
                        "unscored": int(sent["winner"].isna().sum()),
                        "errors": int(sent["judge_error"].notna().sum()),
                        "cost_usd": float(own["judge_cost_usd"].sum()),
                        "latency_p50_s": float(latencies.median()) if len(latencies) else math.nan,
                        "position_consistency": float(consistent.mean())
                        if len(consistent)
                        else math.nan,
                        "panel_agreement": agreement,
                        "panel_agreement_method": method,
                    }
                )
            continue
        grades = _judgment_rows(results, task.name)
        if grades.empty:
            continue
        grades = grades[grades["answered"]]
        panel = grades.pivot_table(
            index=["model", "sample_id"], columns="judge", values="grade", aggfunc="first"
        )
        agreement, method = _agreement_between(panel, ordinal=not judge.pass_fail)
        for name in judge.panel:
            own = grades[grades["judge"] == name]
            labelled = own[own["human"].map(_is_label)]
            human = (
                stats.agreement(
                    labelled["grade"].tolist(),
                    labelled["human"].tolist(),
                    scale=not judge.pass_fail,
                )
                if len(labelled)
                else None
            )
            latencies = own["latency_s"].dropna()
            rows.append(
                {
                    "task": task.name,
                    "judge": name,
                    "mode": judge.mode,
                    "judged": len(own),
                    "unscored": int(own["grade"].isna().sum()),
                    "errors": int(own["error"].map(_is_label).sum()),
                    "cost_usd": float(own["cost_usd"].sum()),
                    "latency_p50_s": float(latencies.median()) if len(latencies) else math.nan,
                    "position_consistency": math.nan,
                    "panel_agreement": agreement,
                    "panel_agreement_method": method,
                    "human_n": human.n if human else 0,
                    "human_accuracy": human.accuracy if human else math.nan,
                    "human_kappa": human.kappa if human else math.nan,
                    "human_spearman": human.spearman
                    if human and human.spearman is not None
                    else math.nan,
                }
            )
    return pd.DataFrame(rows, columns=JUDGE_COLUMNS)


def concat_verdicts(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIR_COLUMNS)


@dataclass(frozen=True)
class Report:
    """Every statistics table of a run."""

    intervals: pd.DataFrame
    comparisons: pd.DataFrame
    ratings: pd.DataFrame
    judges: pd.DataFrame
    verdicts: pd.DataFrame

    TABLES = ("intervals", "comparisons", "ratings", "judges", "verdicts")

    def to_frame(self) -> pd.DataFrame:
        """One artifact: the tables stacked, each row tagged with its table's name."""
        parts = [getattr(self, name).assign(table=name) for name in self.TABLES]
        return pd.concat([p for p in parts if not p.empty] or [pd.DataFrame({"table": []})])

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Report:
        columns = {
            "intervals": INTERVAL_COLUMNS,
            "comparisons": COMPARISON_COLUMNS,
            "ratings": RATING_COLUMNS,
            "judges": JUDGE_COLUMNS,
            "verdicts": PAIR_COLUMNS,
        }
        tables = {
            name: frame.loc[frame["table"] == name]
            .reindex(columns=columns[name])
            .reset_index(drop=True)
            for name in cls.TABLES
        }
        for name, table in tables.items():  # stacking made counts floats: restore them
            for column in INTEGER_COLUMNS & set(table.columns):
                table[column] = table[column].fillna(0).astype(int)
            tables[name] = table
        return cls(**tables)


def build_report(config: BenchConfig, results: pd.DataFrame, verdicts: pd.DataFrame) -> Report:
    """Every statistics table; pairwise verdicts at the judges' current prices, with failed
    answers scored as each task says."""
    prices = {m.name: m.price for m in (*config.judges, *config.models) if m.price}
    if not verdicts.empty:
        verdicts = reprice(verdicts, prices)
        policy = {t.name: t.failed_requests == "zero" for t in config.tasks}
        verdicts = pd.concat(
            [score_failures(frame, policy[str(task)]) for task, frame in verdicts.groupby("task")],
            ignore_index=True,
        )
    return Report(
        intervals=intervals(config, results),
        comparisons=comparisons(config, results),
        ratings=ratings(config, verdicts),
        judges=judge_report(config, results, verdicts),
        verdicts=verdicts,
    )
