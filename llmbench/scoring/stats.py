"""Uncertainty and agreement statistics for the leaderboard.

Every number in the leaderboard comes with how much to trust it: a confidence interval, a
p-value for "is model A really better than B", ranks that only differ when the intervals do,
and how well an LLM judge agrees with humans.

Conventions: NaN (or None) in an input means "unscored" and is dropped, never read as 0; in
paired inputs the whole pair goes. All randomness comes from ``numpy.random.default_rng(seed)``,
so a result is reproducible for a given seed. Bootstraps draw all resamples at once.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from scipy import stats as sps
from scipy.sparse.csgraph import connected_components

FloatArray = npt.NDArray[np.float64]
Values = Sequence[float | None] | npt.NDArray[Any]
Labels = Sequence[Hashable] | npt.NDArray[Any]

# Largest index matrix (resamples x n) drawn in one go; bigger bootstraps run in chunks.
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A mean with its percentile-bootstrap confidence interval."""

    estimate: float  # the statistic on the full data (mean)
    low: float
    high: float
    n: int  # values used (NaNs dropped)


@dataclass(frozen=True)
class PairedTest:
    """The difference between two models on the same items, and whether it is real."""

    difference: float  # mean(a - b) over paired items
    low: float  # bootstrap CI of the difference
    high: float
    p_value: float  # two-sided
    n: int  # pairs used
    method: str  # "mcnemar" or "permutation"


@dataclass(frozen=True)
class Agreement:
    """How often and how closely a judge's labels match human labels."""

    n: int
    accuracy: float  # share of items with identical labels
    kappa: float  # Cohen's kappa (quadratic-weighted when scale=True)
    spearman: float | None  # Spearman rho when scale=True, else None; NaN if undefined


@dataclass(frozen=True)
class Rating:
    """A model's Bradley-Terry rating from pairwise comparisons, on the Elo scale."""

    rating: float  # 1000 + 400*log10(strength), strengths normalised to geometric mean 1
    low: float  # percentile bootstrap CI (resampling comparisons)
    high: float
    win_rate: float  # (wins + 0.5 * ties) / comparisons
    comparisons: int


# --- helpers -------------------------------------------------------------------------------


def _check_resampling(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _as_vector(values: Values, name: str = "values") -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    return x


def _bounds(samples: FloatArray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap statistics."""
    alpha = 1.0 - confidence
    low, high = np.quantile(samples, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _chunks(total: int, width: int) -> Iterable[int]:
    """Sizes of row blocks so that a block of ``width`` columns stays under _CHUNK_ELEMENTS."""
    step = max(1, _CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, total, step):
        yield min(step, total - start)


def _bootstrap_means(x: FloatArray, resamples: int, rng: np.random.Generator) -> FloatArray:
    """Means of ``resamples`` resamples (with replacement) of ``x``, drawn as index matrices."""
    n = x.size
    parts = [x[rng.integers(0, n, size=(rows, n))].mean(axis=1) for rows in _chunks(resamples, n)]
    return np.concatenate(parts)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _present_pairs(a: Labels, b: Labels) -> tuple[list[Hashable], list[Hashable]]:
    """The label pairs where neither side is missing (None/NaN)."""
    left, right = list(a), list(b)
    if len(left) != len(right):
        raise ValueError(f"length mismatch: {len(left)} vs {len(right)}")
    kept = [(x, y) for x, y in zip(left, right, strict=True) if not _is_missing(x)]
    kept = [(x, y) for x, y in kept if not _is_missing(y)]
    return [x for x, _ in kept], [y for _, y in kept]


# --- intervals -----------------------------------------------------------------------------


def bootstrap_ci(
    values: Values, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap CI of the mean: how far the score could move on another sample."""
    _check_resampling(resamples, confidence)
    x = _as_vector(values)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    estimate = float(x.mean())
    if x.size == 1:  # one value says nothing about spread: no interval, not a zero-width one
        return Interval(estimate, math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    low, high = _bounds(_bootstrap_means(x, resamples, rng), confidence)
    return Interval(estimate, low, high, int(x.size))


def stratified_bootstrap_ci(
    groups: Sequence[Values],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """CI of the mean of group means, e.g. an overall score that averages per-task scores.

    Each group is resampled within itself, so every task keeps its weight and its size. Groups
    with no scored values are left out; ``n`` is the number of values used over all groups.
    """
    _check_resampling(resamples, confidence)
    kept = []
    for i, group in enumerate(groups):
        x = _as_vector(group, f"groups[{i}]")
        x = x[~np.isnan(x)]
        if x.size:
            kept.append(x)
    n = sum(x.size for x in kept)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    estimate = float(np.mean([x.mean() for x in kept]))
    if n == 1:
        return Interval(estimate, math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    means = np.mean([_bootstrap_means(x, resamples, rng) for x in kept], axis=0)
    low, high = _bounds(means, confidence)
    return Interval(estimate, low, high, n)


# --- paired comparison ---------------------------------------------------------------------


def paired_test(
    a: Values,
    b: Values,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Is model A's score on the same items really different from model B's?

    ``a`` and ``b`` are aligned per-item scores; a pair is dropped if either side is NaN. When
    every value is 0 or 1 the p-value is exact McNemar (a binomial test on the discordant
    pairs; 1.0 when there are none). Otherwise it is a paired sign-flip permutation test with
    ``resamples`` random flips, p = (extreme + 1) / (resamples + 1). The interval is a paired
    bootstrap of the mean difference. With no pairs left every number is NaN.
    """
    _check_resampling(resamples, confidence)
    x, y = _as_vector(a, "a"), _as_vector(b, "b")
    if x.size != y.size:
        raise ValueError(f"a and b must be aligned: {x.size} vs {y.size} items")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.size)
    binary = bool(np.all((x == 0) | (x == 1)) and np.all((y == 0) | (y == 1)))
    method = "mcnemar" if binary else "permutation"
    if n == 0:
        return PairedTest(math.nan, math.nan, math.nan, math.nan, 0, method)

    d = x - y
    difference = float(d.mean())
    rng = np.random.default_rng(seed)
    if n == 1:
        low = high = math.nan
    else:
        low, high = _bounds(_bootstrap_means(d, resamples, rng), confidence)

    if binary:
        a_only = int(np.sum((x == 1) & (y == 0)))
        discordant = a_only + int(np.sum((x == 0) & (y == 1)))
        p_value = 1.0 if discordant == 0 else float(sps.binomtest(a_only, discordant).pvalue)
    else:
        observed = abs(float(d.sum()))
        # Sums of the same magnitudes in another order differ by rounding only: count those.
        tolerance = 1e-9 * float(np.abs(d).sum())
        extreme = 0
        for rows in _chunks(resamples, n):
            signs = rng.integers(0, 2, size=(rows, n), dtype=np.int8) * 2 - 1
            extreme += int(np.count_nonzero(np.abs(signs @ d) >= observed - tolerance))
        p_value = (extreme + 1) / (resamples + 1)
    return PairedTest(difference, low, high, p_value, n, method)


def rank_with_ties(
    intervals: Mapping[str, Interval], higher_is_better: bool = True
) -> dict[str, int]:
    """Ranks that only separate models whose intervals do not overlap (the LMSYS arena rule).

    Rank = 1 + the number of models whose interval lies entirely on the better side of this
    one's (for higher_is_better: other.low > this.high). Models with a NaN estimate rank last,
    at len(intervals), and do not push anyone else down.
    """
    scored = {k: v for k, v in intervals.items() if not math.isnan(v.estimate)}
    ranks: dict[str, int] = {}
    for name, this in intervals.items():
        if name not in scored:
            ranks[name] = len(intervals)
            continue
        if higher_is_better:
            better = sum(o.low > this.high for k, o in scored.items() if k != name)
        else:
            better = sum(o.high < this.low for k, o in scored.items() if k != name)
        ranks[name] = 1 + better
    return ranks


# --- agreement -----------------------------------------------------------------------------


def cohen_kappa(
    a: Labels,
    b: Labels,
    *,
    weights: str | None = None,
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Cohen's kappa: agreement between two raters beyond what chance would give.

    Labels are any hashables. ``weights`` "linear" or "quadratic" is for ordinal scales: the
    labels must be numbers, and the distance between two labels is the distance between their
    positions in ``categories`` (default: the sorted union of labels seen), as in
    ``sklearn.metrics.cohen_kappa_score``. Pass the full scale as ``categories`` so that an
    unused scale point still counts as a step. Items where either label is None/NaN are
    dropped. NaN when fewer than 2 items remain. When both raters give one and the same label
    throughout, agreement and chance agreement are both 1 (0/0); this returns 1.0, since the
    raters never disagree (sklearn returns NaN there). Otherwise it matches sklearn.
    """
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    x, y = _present_pairs(a, b)
    if len(x) < 2:
        return math.nan
    if weights is not None:
        bad = [v for v in (*x, *y) if not isinstance(v, numbers.Real)]
        if bad:
            raise ValueError(f"weighted kappa needs numeric labels, got {bad[0]!r}")
    if categories is None:
        seen = list(dict.fromkeys((*x, *y)))
        categories = sorted(cast(list[float], seen)) if weights is not None else seen
    index = {c: i for i, c in enumerate(categories)}
    missing = [v for v in (*x, *y) if v not in index]
    if missing:
        raise ValueError(f"label {missing[0]!r} is not in categories")

    k = len(index)
    observed = np.zeros((k, k))
    np.add.at(observed, ([index[v] for v in x], [index[v] for v in y]), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    steps = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(np.float64)
    if weights is None:
        cost = (steps > 0).astype(np.float64)
    elif weights == "linear":
        cost = steps
    else:
        cost = steps**2
    chance = float(np.sum(cost * expected))
    if chance == 0.0:  # both raters constant and identical
        return 1.0
    return 1.0 - float(np.sum(cost * observed)) / chance


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa: agreement among several raters beyond chance.

    ``ratings[i]`` holds the labels the raters gave item i. None/NaN labels are dropped, then
    items with fewer than 2 labels; the rest must all have the same number of labels. NaN when
    undefined: no items left, or every label the same category (chance agreement 1).
    """
    items = [[v for v in item if not _is_missing(v)] for item in ratings]
    items = [item for item in items if len(item) >= 2]
    if not items:
        return math.nan
    raters = {len(item) for item in items}
    if len(raters) > 1:
        raise ValueError(f"every item needs the same number of ratings, got {sorted(raters)}")
    r = raters.pop()
    index = {c: i for i, c in enumerate(dict.fromkeys(v for item in items for v in item))}
    counts = np.zeros((len(items), len(index)))
    for i, item in enumerate(items):
        for v in item:
            counts[i, index[v]] += 1.0
    shares = counts.sum(axis=0) / counts.sum()
    chance = float(np.sum(shares**2))
    if chance >= 1.0 - 1e-12:
        return math.nan
    per_item = (np.sum(counts**2, axis=1) - r) / (r * (r - 1))
    return (float(per_item.mean()) - chance) / (1.0 - chance)


def _spearman(x: Sequence[Hashable], y: Sequence[Hashable]) -> float:
    if len(x) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
        rho = sps.spearmanr(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return float(rho.statistic)


def agreement(judge: Labels, human: Labels, *, scale: bool) -> Agreement:
    """How well an LLM judge agrees with human labels, to calibrate the judge.

    Items where either label is missing are dropped. ``scale=True`` treats labels as points on
    a numeric scale: kappa is quadratic-weighted and Spearman's rho is reported too.
    """
    x, y = _present_pairs(judge, human)
    n = len(x)
    if n == 0:
        return Agreement(0, math.nan, math.nan, math.nan if scale else None)
    accuracy = sum(bool(u == v) for u, v in zip(x, y, strict=True)) / n
    kappa = cohen_kappa(x, y, weights="quadratic" if scale else None)
    return Agreement(n, accuracy, kappa, _spearman(x, y) if scale else None)


# --- Bradley-Terry -------------------------------------------------------------------------


def _fit_strengths(
    wins: FloatArray, games: FloatArray, component: FloatArray, *, tol: float = 1e-10
) -> FloatArray:
    """Natural-log Bradley-Terry strengths by Hunter's (2004) MM algorithm, batched.

    ``wins[..., i, j]`` is i's score against j, ``games[..., i, j]`` their number of games
    (symmetric); ``component`` maps players to their connected component (one-hot, columns
    scaled by 1/size) so each component is normalised to geometric mean 1 on its own.
    """
    total = wins.sum(axis=-1)
    log_p = np.zeros(total.shape)
    for _ in range(100_000):
        p = np.exp(log_p)
        denominator = np.sum(games / (p[..., :, None] + p[..., None, :]), axis=-1)
        new = np.log(total / denominator)
        new -= (new @ component) @ (component > 0).T
        change = float(np.max(np.abs(new - log_p)))
        log_p = new
        if change < tol:
            break
    return log_p


def bradley_terry(
    comparisons: Sequence[tuple[str, str, float]],
    *,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Rating]:
    """Ratings from pairwise comparisons (e.g. judge verdicts), as on the LMSYS arena.

    Each comparison is (model_a, model_b, outcome): 1.0 means a won, 0.0 b won, 0.5 a tie
    (values in between are partial wins). A tie counts as half a win to each side. The fit is
    the Bradley-Terry maximum likelihood by Hunter's MM algorithm with a small symmetric
    prior: one virtual tie between every pair that met, so an undefeated or winless model
    still gets a finite rating. It is negligible once a pair has met dozens of times.

    Ratings are 1000 + 400*log10(strength), strengths at geometric mean 1 (so the average
    rating is 1000); if the comparisons fall into separate groups that never meet, each group
    is normalised on its own. The interval is a percentile bootstrap over comparisons (the
    prior stays on the pairs that met in the full data). Comparisons with a NaN outcome are
    dropped; a model seen only in those is listed with NaN rating and 0 comparisons.
    Models are returned in order of first appearance.
    """
    _check_resampling(resamples, confidence)
    names: dict[str, int] = {}
    for a, b, _ in comparisons:
        names.setdefault(a, len(names))
        names.setdefault(b, len(names))
    scored = [(a, b, float(o)) for a, b, o in comparisons if not math.isnan(float(o))]
    for a, b, o in scored:
        if a == b:
            raise ValueError(f"a model cannot be compared with itself: {a!r}")
        if not 0.0 <= o <= 1.0:
            raise ValueError(f"outcome must be in [0, 1], got {o} for {a!r} vs {b!r}")

    # Rated players are those with at least one scored comparison.
    players = list(dict.fromkeys(name for a, b, _ in scored for name in (a, b)))
    idx = {name: i for i, name in enumerate(players)}
    m = len(players)
    unrated = Rating(math.nan, math.nan, math.nan, math.nan, 0)
    if m == 0:
        return dict.fromkeys(names, unrated)

    # Identical comparisons collapse into one row with a count; a resample is a multinomial
    # draw of those counts, which equals resampling comparisons with replacement.
    rows: dict[tuple[int, int, float], int] = {}
    for a, b, o in scored:
        i, j = idx[a], idx[b]
        key = (i, j, o) if i < j else (j, i, 1.0 - o)
        rows[key] = rows.get(key, 0) + 1
    first = np.array([k[0] for k in rows], dtype=np.intp)
    second = np.array([k[1] for k in rows], dtype=np.intp)
    outcome = np.array([k[2] for k in rows])
    count = np.array(list(rows.values()), dtype=np.float64)
    total = len(scored)

    def tables(weights: FloatArray) -> tuple[FloatArray, FloatArray]:
        """wins and games tables (batch, m, m) from per-row counts (batch, rows)."""
        batch = weights.shape[0]
        cells = batch * m * m
        base = (np.arange(batch) * m * m)[:, None]
        forward = (base + first * m + second).ravel()
        backward = (base + second * m + first).ravel()

        def total_per_cell(cell: npt.NDArray[np.intp], amount: FloatArray) -> FloatArray:
            return np.bincount(cell, amount.ravel(), cells).astype(np.float64)

        w = total_per_cell(forward, weights * outcome)
        w += total_per_cell(backward, weights * (1.0 - outcome))
        g = total_per_cell(forward, weights) + total_per_cell(backward, weights)
        return w.reshape(batch, m, m), g.reshape(batch, m, m)

    wins, games = tables(count[None, :])
    met = (games[0] > 0).astype(np.float64)
    n_groups, labels = connected_components(met, directed=False)
    component = np.zeros((m, n_groups))
    component[np.arange(m), labels] = 1.0
    component /= component.sum(axis=0)
    to_elo = 400.0 / math.log(10.0)

    rating = 1000.0 + to_elo * _fit_strengths(wins + 0.5 * met, games + met, component)[0]
    rng = np.random.default_rng(seed)
    boot = []
    for size in _chunks(resamples, max(m * m, first.size)):
        draws = rng.multinomial(total, count / total, size=size).astype(np.float64)
        w, g = tables(draws)
        boot.append(_fit_strengths(w + 0.5 * met, g + met, component))
    ratings = 1000.0 + to_elo * np.concatenate(boot)
    low, high = np.quantile(ratings, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)

    played = games[0].sum(axis=1)
    score = wins[0].sum(axis=1)
    result: dict[str, Rating] = {}
    for name in names:
        if name not in idx:
            result[name] = unrated
            continue
        i = idx[name]
        result[name] = Rating(
            rating=float(rating[i]),
            low=float(low[i]),
            high=float(high[i]),
            win_rate=float(score[i] / played[i]),
            comparisons=int(played[i]),
        )
    return result
