"""Quality gates: fail a run (exit 3) when a score is below a floor or got worse.

Two kinds, both per entrant (model or strategy) and task:

* ``--fail-under TASK/METRIC=VALUE``: the score, as reported, must not be worse than VALUE
  (below it for a higher-is-better metric, above it for TER and other lower-is-better ones).
  ``MODEL:TASK/METRIC=VALUE`` holds one entrant to it; without ``MODEL:`` every entrant is.
* regression: each entrant's headline score on each task against the previous run of the same
  experiment. Where both runs scored the same items, the project's paired test (McNemar for
  0/1 scores, sign-flip permutation otherwise), Holm-adjusted over all the entrant/task pairs
  compared, decides; on different items, non-overlapping bootstrap intervals do. Only a
  significant change in the worse direction fails.

Pure logic over results frames: MLflow is read elsewhere (llmbench.tracking.previous).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from llmbench.errors import ConfigError
from llmbench.report.statistics import Headline, ItemScores, headline, item_scores, score_keys
from llmbench.schema import BenchConfig, TaskSpec
from llmbench.scoring import stats
from llmbench.scoring.metrics import METRICS

GATE_FAILED_EXIT_CODE = 3
THRESHOLD_FLAG = "--fail-under"
_THRESHOLD = re.compile(
    r"^(?:(?P<model>[A-Za-z0-9][A-Za-z0-9_.-]*):)?"
    r"(?P<task>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<metric>[^=\s]+)=(?P<value>\S+)$"
)

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Threshold:
    """One ``--fail-under`` rule, as given on the command line."""

    text: str
    task: str
    metric: str
    value: float
    model: str | None = None  # None: every entrant


@dataclass(frozen=True)
class GateResult:
    """One gate on one entrant and task: what was measured against what."""

    gate: Literal["fail-under", "regression"]
    model: str
    task: str
    metric: str
    status: Status
    value: float  # this run's score (NaN when nothing was scored)
    expected: str  # the bar: ">= 0.5", or the previous run's score
    detail: str  # how it was decided: the test and its p-value, or why it was skipped

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @property
    def name(self) -> str:
        return f"{self.gate} {self.model} {self.task}/{self.metric}"


def parse_threshold(text: str) -> Threshold:
    """``[MODEL:]TASK/METRIC=VALUE`` as a :class:`Threshold`; a malformed one is exit 2."""
    match = _THRESHOLD.match(text.strip())
    hint = (
        f"write {THRESHOLD_FLAG} TASK/METRIC=VALUE (every model) or MODEL:TASK/METRIC=VALUE, "
        "e.g. gsm8k/exact_match=0.5"
    )
    if match is None:
        raise ConfigError(f"{text!r} is not TASK/METRIC=VALUE", field=THRESHOLD_FLAG, hint=hint)
    try:
        value = float(match["value"])
    except ValueError:
        raise ConfigError(
            f"{text!r}: {match['value']!r} is not a number", field=THRESHOLD_FLAG, hint=hint
        ) from None
    if not math.isfinite(value):
        raise ConfigError(f"{text!r}: the value must be finite", field=THRESHOLD_FLAG, hint=hint)
    return Threshold(text, match["task"], match["metric"], value, match["model"])


def check_thresholds(config: BenchConfig, thresholds: list[Threshold]) -> None:
    """Every rule names a task, metric and entrant of this (selected) config; exit 2 if not,
    listing what it could name."""
    tasks = {task.name: task for task in config.tasks}
    entrants = [entrant.name for entrant in config.entrants]
    valid = ", ".join(f"{t}/{k}" for t, task in tasks.items() for k in score_keys(task))
    for rule in thresholds:
        task = tasks.get(rule.task)
        if task is None or rule.metric not in score_keys(task):
            raise ConfigError(
                f"{rule.text!r}: this run has no task/metric {rule.task}/{rule.metric}",
                field=THRESHOLD_FLAG,
                hint=f"use one of: {valid}",
            )
        if rule.model is not None and rule.model not in entrants:
            raise ConfigError(
                f"{rule.text!r}: this run has no model {rule.model!r}",
                field=THRESHOLD_FLAG,
                hint=f"use one of: {', '.join(entrants)} (or leave out MODEL: for all)",
            )
        if rule.model is not None and not config.runs_on(rule.model, rule.task):
            raise ConfigError(
                f"{rule.text!r}: {rule.model!r} does not run on task {rule.task!r} (its "
                f"'tasks:' are {', '.join(config.tasks_of(rule.model))})",
                field=THRESHOLD_FLAG,
                hint="gate it on one of its tasks, or leave out MODEL: for every entrant "
                "that ran on the task",
            )


def higher_is_better(task: TaskSpec, key: str) -> bool:
    """The direction of one of a task's score keys (judge grades and win rates: higher)."""
    for metric in task.metrics:
        definition = METRICS[metric.name]
        if key in definition.output_keys(metric.options):
            return definition.higher_is_better
    return True


def threshold_results(
    config: BenchConfig, intervals: pd.DataFrame, thresholds: list[Threshold]
) -> list[GateResult]:
    """Each rule on each entrant it applies to that ran on the rule's task (a strategy on
    other tasks only has nothing there to gate), read from the report's interval table."""
    tasks = {task.name: task for task in config.tasks}
    table = intervals.set_index(["model", "task", "metric"])
    results = []
    for rule in thresholds:
        better_up = higher_is_better(tasks[rule.task], rule.metric)
        for entrant in config.entrants_on(rule.task):
            if rule.model is not None and entrant.name != rule.model:
                continue
            key = (entrant.name, rule.task, rule.metric)
            value = float(table.loc[key, "estimate"]) if key in table.index else math.nan
            worse = value < rule.value if better_up else value > rule.value
            results.append(
                GateResult(
                    "fail-under",
                    entrant.name,
                    rule.task,
                    rule.metric,
                    "fail" if math.isnan(value) or worse else "pass",
                    value,
                    f"{'>=' if better_up else '<='} {rule.value:g}",
                    "nothing scored" if math.isnan(value) else f"{THRESHOLD_FLAG} {rule.text}",
                )
            )
    return results


def _rows(results: pd.DataFrame, model: str, task: str) -> pd.DataFrame:
    return results[(results["model"] == model) & (results["task"] == task)]


@dataclass(frozen=True)
class _Pending:
    """A regression check waiting for the family's Holm adjustment."""

    model: str
    task: str
    line: Headline
    now: ItemScores
    before: ItemScores


def _interval(scores: ItemScores, config: BenchConfig) -> stats.Interval:
    spec = config.stats
    return stats.bootstrap_ci(
        scores.group(), resamples=spec.resamples, confidence=spec.confidence, seed=spec.seed
    )


def regression_results(
    config: BenchConfig, current: pd.DataFrame, previous: pd.DataFrame, previous_run: str
) -> list[GateResult]:
    """Each entrant's headline on each task, this run (``current``) against ``previous``
    (the per-sample results of the run named ``previous_run``), in config order."""
    spec = config.stats
    alpha = 1.0 - spec.confidence
    if previous.empty:  # a previous run with no entrant tables: nothing to compare
        previous = current.iloc[:0]
    slots: list[GateResult | _Pending] = []
    for task in config.tasks:
        line = headline(task)
        for entrant in config.entrants_on(task.name):
            now = item_scores(task, line.key, _rows(current, entrant.name, task.name))
            before = item_scores(task, line.key, _rows(previous, entrant.name, task.name))
            if not len(before.ids):
                slots.append(_unscored(entrant.name, task.name, line, "skip", previous_run))
            elif not len(now.ids):
                slots.append(_unscored(entrant.name, task.name, line, "fail", previous_run))
            elif set(now.ids) == set(before.ids):
                slots.append(_Pending(entrant.name, task.name, line, now, before))
            else:
                slots.append(
                    _by_intervals(config, entrant.name, task.name, line, now, before, previous_run)
                )
    pending = [slot for slot in slots if isinstance(slot, _Pending)]
    tests = [
        stats.paired_test(
            p.now.group(list(p.now.ids)),
            p.before.group(list(p.now.ids)),
            resamples=spec.resamples,
            confidence=spec.confidence,
            seed=spec.seed,
        )
        for p in pending
    ]
    decided = {
        id(p): _by_paired_test(p, test, p_holm, alpha, previous_run)
        for p, test, p_holm in zip(
            pending, tests, stats.holm([t.p_value for t in tests]), strict=True
        )
    }
    return [decided[id(slot)] if isinstance(slot, _Pending) else slot for slot in slots]


def _unscored(
    model: str, task: str, line: Headline, status: Status, previous_run: str
) -> GateResult:
    why = f"not scored in {previous_run}" if status == "skip" else "nothing scored in this run"
    return GateResult("regression", model, task, line.key, status, math.nan, "-", why)


def _by_paired_test(
    p: _Pending, test: stats.PairedTest, p_holm: float, alpha: float, previous_run: str
) -> GateResult:
    """Same items in both runs: worse only if the paired test says the drop is real."""
    before = _estimate(p.before, p.now.ids)
    worse = test.difference != 0 and (test.difference < 0) == p.line.higher_is_better
    failed = worse and not math.isnan(p_holm) and p_holm < alpha
    return GateResult(
        "regression",
        p.model,
        p.task,
        p.line.key,
        "fail" if failed else "pass",
        before + test.difference,
        f"{before:.4g} in {previous_run}",
        f"{test.method} on {test.n} paired items: change {test.difference:+.4g}, "
        f"p={p_holm:.3g} (Holm)",
    )


def _estimate(scores: ItemScores, ids: pd.Index) -> float:
    group = scores.group(list(ids))
    return group.estimate() if isinstance(group, stats.Corpus) else float(group.mean())


def _by_intervals(
    config: BenchConfig,
    model: str,
    task: str,
    line: Headline,
    now: ItemScores,
    before: ItemScores,
    previous_run: str,
) -> GateResult:
    """Different items in the two runs: worse only if the intervals do not overlap."""
    a, b = _interval(now, config), _interval(before, config)
    worse = a.high < b.low if line.higher_is_better else a.low > b.high
    return GateResult(
        "regression",
        model,
        task,
        line.key,
        "fail" if worse else "pass",
        a.estimate,
        f"{b.estimate:.4g} in {previous_run}",
        f"different items ({a.n} vs {b.n}): intervals {a.low:.4g}-{a.high:.4g} "
        f"vs {b.low:.4g}-{b.high:.4g}",
    )
