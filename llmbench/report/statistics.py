"""How much to trust each number: intervals, paired tests, ratings and judge reliability.

Everything here is computed from the per-sample results (and the pairwise verdicts), so a
report can be rebuilt from a run's artifacts without calling a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmbench.schema import BenchConfig, TaskSpec
from llmbench.scoring import stats
from llmbench.scoring.corpus import corpus_statistics
from llmbench.scoring.judge import (
    OUTCOME,
    PAIR_COLUMNS,
    combine_verdicts,
    reprice,
    score_failures,
)
from llmbench.scoring.judged import JUDGE_KEY, WIN_RATE_KEY, judged_keys
from llmbench.scoring.metrics import METRICS
from llmbench.scoring.relevance import RELEVANCE_KEY

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
    "p_holm",
    "method",
    "n",
    "same_items",
    "significant",
    "better",
]
# The comparisons of overall scores (the leaderboard's rank) sit under this task name, which no
# task can have (task names start with a letter or digit).
OVERALL = "_overall"
RATING_COLUMNS = ["task", "model", "rating", "low", "high", "win_rate", "comparisons"]
INTEGER_COLUMNS = {
    "n",
    "comparisons",
    "judged",
    "unscored",
    "errors",
    "human_n",
    "k",
    "items",
    "round",
    "reached",
    "draws",
}
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
    """A task's headline metric, its range and direction, to put tasks on one 0-1 scale on
    which higher is better."""

    key: str
    low: float
    high: float
    higher_is_better: bool = True

    def normalise(self, value: Any) -> Any:
        """A value or an array of values on the 0-1 scale, 1 the best end: a lower-is-better
        metric enters as 1 - (value - low) / (high - low)."""
        share = (value - self.low) / (self.high - self.low)
        return share if self.higher_is_better else 1.0 - share


def headline(task: TaskSpec) -> Headline:
    """The first metric's first key; for a task scored only by a judge, the judge's grade
    (in its scale) or the pairwise win rate."""
    if task.metrics:
        metric = task.metrics[0]
        definition = METRICS[metric.name]
        return Headline(
            definition.output_keys(metric.options)[0],
            0.0,
            definition.scale,
            definition.higher_is_better,
        )
    assert task.judge is not None
    if task.judge.mode == "pairwise":
        return Headline(WIN_RATE_KEY, 0.0, 1.0)
    low, high = task.judge.bounds
    return Headline(JUDGE_KEY, low, high)


def score_keys(task: TaskSpec) -> list[str]:
    """Every per-sample score a task reports: metric keys, then the judge's."""
    keys = [key for m in task.metrics for key in METRICS[m.name].output_keys(m.options)]
    return [*keys, *judged_keys(task)]


def _rows(results: pd.DataFrame, model: str, task: str) -> pd.DataFrame:
    return results[(results["model"] == model) & (results["task"] == task)]


def _corpus_metric(task: TaskSpec, key: str) -> str | None:
    """The corpus metric (BLEU, chrF, TER) that reports ``key`` on this task, if any."""
    for metric in task.metrics:
        definition = METRICS[metric.name]
        if definition.corpus and key in definition.output_keys(metric.options):
            return metric.name
    return None


@dataclass(frozen=True)
class ItemScores:
    """One model's scored items on one task for one score, by sample id: the per-item values
    of a mean, or the per-item sufficient statistics of a corpus score."""

    frame: pd.DataFrame  # index: sample_id of scored items; "value", or statistics columns
    score: Callable[[np.ndarray], float] | None  # corpus score of summed statistics

    @property
    def ids(self) -> pd.Index:
        return self.frame.index

    def group(
        self, ids: Sequence[Any] | None = None, transform: Headline | None = None
    ) -> np.ndarray | stats.Corpus:
        """What :mod:`stats` resamples, on ``ids`` only when given, optionally normalised."""
        frame = self.frame if ids is None else self.frame.loc[list(ids)]
        if self.score is None:
            values = frame["value"].to_numpy(np.float64)
            return values if transform is None else np.asarray(transform.normalise(values))
        corpus = stats.Corpus(frame.to_numpy(np.float64), self.score)
        return corpus if transform is None else corpus.mapped(transform.normalise)


def item_scores(task: TaskSpec, key: str, rows: pd.DataFrame) -> ItemScores:
    """The scored items (score not NaN) of one model's ``rows`` for score ``key``.

    For a corpus metric the statistics are recomputed with sacrebleu from the extracted
    answers and references, scored as ``score`` scored them (a missing answer is "")."""
    column = f"score.{key}"
    scored = rows[rows[column].astype(float).notna()] if column in rows else rows.iloc[:0]
    ids = pd.Index(scored["sample_id"], name="sample_id")
    metric = _corpus_metric(task, key)
    if metric is None:
        frame = pd.DataFrame({"value": scored[column].astype(float).to_numpy()}, index=ids)
        return ItemScores(frame, None)
    if scored.empty:  # nothing to score: no statistics, and a score that is never asked for
        return ItemScores(pd.DataFrame(index=ids), lambda summed: math.nan)
    predictions = [a if isinstance(a, str) else "" for a in scored["answer"]]
    references = [[str(r) for r in refs] for refs in scored["references"]]
    corpus = corpus_statistics(metric, predictions, references)
    return ItemScores(pd.DataFrame(corpus.table, index=ids), corpus.score)


def intervals(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """A bootstrap CI of every score as reported, per (model, task, metric): of the mean of
    per-sample scores, or of the corpus score for BLEU, chrF and TER."""
    spec = config.stats
    rows = []
    for task in config.tasks:
        for model in config.entrants_on(task.name):
            mine = _rows(results, model.name, task.name)
            for key in score_keys(task):
                ci = stats.bootstrap_ci(
                    item_scores(task, key, mine).group(),
                    resamples=spec.resamples,
                    confidence=spec.confidence,
                    seed=spec.seed,
                )
                rows.append([model.name, task.name, key, ci.estimate, ci.low, ci.high, ci.n])
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


def headline_scores(config: BenchConfig, results: pd.DataFrame) -> dict[str, list[ItemScores]]:
    """Per model, per task (in config order), the scored items of the task's headline."""
    return {
        model.name: [
            item_scores(task, headline(task).key, _rows(results, model.name, task.name))
            for task in config.tasks
        ]
        for model in config.entrants
    }


def overall_intervals(config: BenchConfig, results: pd.DataFrame) -> dict[str, stats.Interval]:
    """Each model's overall score (mean over tasks of the normalised headline) with a CI that
    resamples each task's items independently."""
    spec = config.stats
    lines = [headline(task) for task in config.tasks]
    intervals = {}
    for model, tasks in headline_scores(config, results).items():
        if any(not len(scores.ids) for scores in tasks):  # a task with nothing scored
            intervals[model] = stats.Interval(math.nan, math.nan, math.nan, 0)
            continue
        intervals[model] = stats.stratified_bootstrap_ci(
            [scores.group(transform=line) for scores, line in zip(tasks, lines, strict=True)],
            resamples=spec.resamples,
            confidence=spec.confidence,
            seed=spec.seed,
        )
    return intervals


def _common(a: ItemScores, b: ItemScores) -> tuple[list[Any], bool]:
    """The items both models scored (in a's order), and whether each scored exactly those."""
    shared = a.ids.intersection(b.ids, sort=False)
    ids = [i for i in a.ids if i in shared]
    return ids, len(ids) == len(a.ids) == len(b.ids)


def _test_row(
    task: str, metric: str, a: str, b: str, test: stats.PairedTest, same: bool
) -> dict[str, Any]:
    return {
        "task": task,
        "metric": metric,
        "model_a": a,
        "model_b": b,
        "difference": test.difference,
        "low": test.low,
        "high": test.high,
        "p_value": test.p_value,
        "method": test.method,
        "n": test.n,
        "same_items": same,
    }


def _with_holm(
    family: list[dict[str, Any]], alpha: float, higher_is_better: bool
) -> list[dict[str, Any]]:
    """One family of tests (one task's pairs, or the overall score's) completed with the
    Holm-adjusted p-value, its significance and the better model (in the metric's direction)."""
    adjusted = stats.holm([row["p_value"] for row in family])
    for row, p_holm in zip(family, adjusted, strict=True):
        significant = bool(p_holm < alpha)
        ahead = row["model_a"] if (row["difference"] > 0) == higher_is_better else row["model_b"]
        row.update(p_holm=p_holm, significant=significant, better=ahead if significant else "")
    return family


def comparisons(config: BenchConfig, results: pd.DataFrame) -> pd.DataFrame:
    """Every pair of models on every task's headline, over the items both scored: the
    difference (of means, or of corpus scores) with its CI and a paired test (McNemar for 0/1
    scores), Holm-adjusted over the task's pairs. With several tasks, the same for the
    overall score (task ``_overall``): the tests the leaderboard's rank reads."""
    spec = config.stats
    alpha = 1.0 - spec.confidence
    options: dict[str, Any] = {
        "resamples": spec.resamples,
        "confidence": spec.confidence,
        "seed": spec.seed,
    }
    names = [m.name for m in config.entrants]
    scores = headline_scores(config, results)
    lines = [headline(task) for task in config.tasks]
    pairs = [(a, b) for n, a in enumerate(names) for b in names[n + 1 :]]
    table: list[dict[str, Any]] = []
    for t, (task, line) in enumerate(zip(config.tasks, lines, strict=True)):
        family = []
        for a, b in pairs:
            ids, same = _common(scores[a][t], scores[b][t])
            if ids:
                test = stats.paired_test(
                    scores[a][t].group(ids), scores[b][t].group(ids), **options
                )
                family.append(_test_row(task.name, line.key, a, b, test, same))
        table += _with_holm(family, alpha, line.higher_is_better)
    if len(config.tasks) > 1:
        family = []
        for a, b in pairs:
            common = [_common(x, y) for x, y in zip(scores[a], scores[b], strict=True)]
            if any(not ids for ids, _ in common):  # an overall score on a subset of tasks
                continue
            groups = [
                (scores[a][t].group(ids, line), scores[b][t].group(ids, line))
                for t, ((ids, _), line) in enumerate(zip(common, lines, strict=True))
            ]
            test = stats.stratified_paired_test(groups, **options)
            same = all(same for _, same in common)
            family.append(_test_row(OVERALL, "score", a, b, test, same))
        table += _with_holm(family, alpha, higher_is_better=True)
    return pd.DataFrame(table, columns=COMPARISON_COLUMNS)


def ranks(
    intervals: Mapping[str, stats.Interval], family: pd.DataFrame, higher_is_better: bool
) -> dict[str, int]:
    """Rank = 1 + the number of models significantly better: by the family's Holm-adjusted
    paired tests for pairs scored on the same items, by non-overlapping intervals otherwise."""
    paired: dict[tuple[str, str], bool] = {}
    for row in family.to_dict("records"):
        if row["same_items"]:
            a, b = str(row["model_a"]), str(row["model_b"])
            paired[(a, b)] = row["better"] == a
            paired[(b, a)] = row["better"] == b
    return stats.rank_with_ties(intervals, higher_is_better, paired=paired)


def overall_ranks(
    config: BenchConfig, overall: Mapping[str, stats.Interval], table: pd.DataFrame
) -> dict[str, int]:
    """The leaderboard's rank, from the overall score's tests (with one task, the task's).
    An entrant that runs on some tasks only has no overall score: it is not ranked."""
    task = OVERALL if len(config.tasks) > 1 else config.tasks[0].name
    full = {name: ci for name, ci in overall.items() if not config.partial(name)}
    return ranks(full, table[table["task"] == task], higher_is_better=True)


def task_ranks(
    config: BenchConfig, interval_table: pd.DataFrame, table: pd.DataFrame
) -> dict[str, dict[str, int]]:
    """Per task, the rank on the headline of each entrant that runs on it, by the same rule
    as the overall rank."""
    result = {}
    for task in config.tasks:
        line = headline(task)
        mine = interval_table[
            (interval_table["task"] == task.name) & (interval_table["metric"] == line.key)
        ]
        cis = {
            str(r["model"]): stats.Interval(r["estimate"], r["low"], r["high"], int(r["n"]))
            for r in mine.to_dict("records")
        }
        result[task.name] = ranks(cis, table[table["task"] == task.name], line.higher_is_better)
    return result


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
            grade = math.nan if entry.get("grade") is None else float(entry["grade"])
            # A conversation's turns are graded one reply each: count replies, not answers.
            turns = entry.get("turn_grades")
            turns = list(turns) if isinstance(turns, (list, np.ndarray)) else [grade]
            if RELEVANCE_KEY in entry:  # the answer relevance request: one more reply
                relevant = entry[RELEVANCE_KEY]
                turns.append(math.nan if relevant is None else float(relevant))
            rows.append(
                {
                    "model": record["model"],
                    "sample_id": record["sample_id"],
                    "judge": entry["judge"],
                    "grade": grade,
                    "replies": len(turns),
                    "unscored": sum(t is None or math.isnan(float(t)) for t in turns),
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
            seconds = pd.to_numeric(own["latency_s"], errors="coerce")
            latencies = (seconds / own["replies"]).dropna()  # per call
            rows.append(
                {
                    "task": task.name,
                    "judge": name,
                    "mode": judge.mode,
                    "judged": int(own["replies"].sum()),
                    "unscored": int(own["unscored"].sum()),
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


def _orchestration_columns() -> dict[str, list[str]]:
    """The strategy tables' columns (their modules read this one's helpers)."""
    from llmbench.report.draws import DRAW_COLUMNS
    from llmbench.report.rounds import ROUND_COLUMNS
    from llmbench.report.same_spend import SAME_SPEND_COLUMNS

    return {"draws": DRAW_COLUMNS, "rounds": ROUND_COLUMNS, "same_spend": SAME_SPEND_COLUMNS}


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=_orchestration_columns()[name])


@dataclass(frozen=True)
class Report:
    """Every statistics table of a run; for strategies, a vote's pass@k / maj@k curves
    (``draws``), quality and cost by round (``rounds``) and the same-spend comparisons
    (``same_spend``)."""

    intervals: pd.DataFrame
    comparisons: pd.DataFrame
    ratings: pd.DataFrame
    judges: pd.DataFrame
    verdicts: pd.DataFrame
    draws: pd.DataFrame = field(default_factory=lambda: _empty("draws"))
    rounds: pd.DataFrame = field(default_factory=lambda: _empty("rounds"))
    same_spend: pd.DataFrame = field(default_factory=lambda: _empty("same_spend"))

    TABLES = (
        "intervals",
        "comparisons",
        "ratings",
        "judges",
        "verdicts",
        "draws",
        "rounds",
        "same_spend",
    )

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
            **_orchestration_columns(),
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


def build_report(
    config: BenchConfig,
    results: pd.DataFrame,
    verdicts: pd.DataFrame,
    baselines: pd.DataFrame | None = None,
) -> Report:
    """Every statistics table; pairwise verdicts at the judges' current prices, with failed
    answers scored as each task says. ``baselines``: the same-spend baselines' scored rows
    (:mod:`llmbench.report.same_spend`), where the pipeline ran them."""
    from llmbench.report.draws import draw_curves
    from llmbench.report.rounds import round_table
    from llmbench.report.same_spend import same_spend_table

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
        draws=draw_curves(config, results),
        rounds=round_table(config, results),
        same_spend=same_spend_table(
            config, results, baselines if baselines is not None else results.iloc[:0]
        ),
    )
