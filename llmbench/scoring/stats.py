"""Uncertainty and agreement statistics for the leaderboard.

Every number in the leaderboard comes with how much to trust it: a confidence interval, a
p-value for "is model A really better than B", ranks that only differ when the paired tests
(or, for models scored on different items, the intervals) say so, and how well an LLM judge
agrees with humans.

An interval describes the number it stands beside. Scores that are means (accuracy, exact
match, ROUGE) are resampled as per-item values; corpus scores (BLEU, chrF, TER) as per-item
sufficient statistics (:class:`Corpus`) whose resampled sums are scored again.

Conventions: NaN (or None) in an input means "unscored" and is dropped, never read as 0; in
paired inputs the whole pair goes. All randomness comes from ``numpy.random.default_rng(seed)``,
so a result is reproducible for a given seed. Bootstraps draw all resamples at once.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

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
class Corpus:
    """A corpus-level score: one row of sufficient statistics per item, and the score of
    their column sums (sacrebleu's BLEU, chrF and TER are of this form).

    Resampling items and scoring the summed rows again is the bootstrap of the corpus score
    itself; the mean of sentence scores is a different number."""

    table: FloatArray  # (items, statistics)
    score: Callable[[FloatArray], float]  # summed statistics -> score

    def __post_init__(self) -> None:
        if self.table.ndim != 2:
            raise ValueError(f"table must be (items, statistics), got shape {self.table.shape}")

    @property
    def n(self) -> int:
        return int(self.table.shape[0])

    def estimate(self) -> float:
        return self.score(self.table.sum(axis=0)) if self.n else math.nan

    def mapped(self, transform: Callable[[float], float]) -> Corpus:
        """The same items with ``transform`` applied to the score (e.g. onto a 0-1 scale)."""
        score = self.score
        return Corpus(self.table, lambda summed: transform(score(summed)))


Group = Values | Corpus  # one model's scored items on one task: values to average, or a corpus


@dataclass(frozen=True)
class PairedTest:
    """The difference between two models on the same items, and whether it is real."""

    difference: float  # a - b: of the means, or of the corpus scores, over paired items
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


def _scores_of_sums(corpus: Corpus, summed: FloatArray) -> FloatArray:
    return np.fromiter((corpus.score(row) for row in summed), np.float64, len(summed))


def _bootstrap_corpus(corpus: Corpus, resamples: int, rng: np.random.Generator) -> FloatArray:
    """Corpus scores of ``resamples`` resamples of the items (with replacement)."""
    n, k = corpus.table.shape
    parts = []
    for rows in _chunks(resamples, n * k):
        summed = corpus.table[rng.integers(0, n, size=(rows, n))].sum(axis=1)
        parts.append(_scores_of_sums(corpus, summed))
    return np.concatenate(parts)


def _kept(group: Group, name: str = "values") -> FloatArray | Corpus:
    """A group with its unscored (NaN) values dropped; a corpus is already scored items."""
    if isinstance(group, Corpus):
        return group
    x = _as_vector(group, name)
    return x[~np.isnan(x)]


def _size(group: FloatArray | Corpus) -> int:
    return group.n if isinstance(group, Corpus) else int(group.size)


def _estimate(group: FloatArray | Corpus) -> float:
    return group.estimate() if isinstance(group, Corpus) else float(group.mean())


def _bootstrap(group: FloatArray | Corpus, resamples: int, rng: np.random.Generator) -> FloatArray:
    if isinstance(group, Corpus):
        return _bootstrap_corpus(group, resamples, rng)
    return _bootstrap_means(group, resamples, rng)


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
    values: Group, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap CI of the mean of ``values``, or of a :class:`Corpus` score: how
    far the score could move on another sample of items."""
    _check_resampling(resamples, confidence)
    x = _kept(values)
    n = _size(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    estimate = _estimate(x)
    if n == 1:  # one value says nothing about spread: no interval, not a zero-width one
        return Interval(estimate, math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    low, high = _bounds(_bootstrap(x, resamples, rng), confidence)
    return Interval(estimate, low, high, n)


def stratified_bootstrap_ci(
    groups: Sequence[Group],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """CI of the mean of group scores, e.g. an overall score that averages per-task scores.

    A group's score is the mean of its values, or its :class:`Corpus` score. Each group is
    resampled within itself, so every task keeps its weight and its size. Groups with no
    scored values are left out; ``n`` is the number of values used over all groups.
    """
    _check_resampling(resamples, confidence)
    kept = [x for i, g in enumerate(groups) if _size(x := _kept(g, f"groups[{i}]"))]
    n = sum(_size(x) for x in kept)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    estimate = float(np.mean([_estimate(x) for x in kept]))
    if n == 1:
        return Interval(estimate, math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    means = np.mean([_bootstrap(x, resamples, rng) for x in kept], axis=0)
    low, high = _bounds(means, confidence)
    return Interval(estimate, low, high, n)


# --- paired comparison ---------------------------------------------------------------------


Pair = tuple[FloatArray, FloatArray] | tuple[Corpus, Corpus]


def _aligned(a: Group, b: Group) -> Pair:
    """Two models' scores on the same items, pairs with a NaN side dropped."""
    if isinstance(a, Corpus) or isinstance(b, Corpus):
        if not (isinstance(a, Corpus) and isinstance(b, Corpus)):
            raise TypeError("a corpus score can only be compared with another corpus score")
        if a.n != b.n or a.table.shape[1] != b.table.shape[1]:
            raise ValueError(f"a and b must be aligned: {a.table.shape} vs {b.table.shape}")
        return a, b
    x, y = _as_vector(a, "a"), _as_vector(b, "b")
    if x.size != y.size:
        raise ValueError(f"a and b must be aligned: {x.size} vs {y.size} items")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def _pair_size(pair: Pair) -> int:
    return _size(pair[0])


def _pair_difference(pair: Pair) -> float:
    return _estimate(pair[0]) - _estimate(pair[1])


def _bootstrap_differences(pair: Pair, resamples: int, rng: np.random.Generator) -> FloatArray:
    """a - b on ``resamples`` resamples of the items, the same items for both models."""
    a, b = pair
    if not isinstance(a, Corpus):
        return _bootstrap_means(a - cast(FloatArray, b), resamples, rng)
    assert isinstance(b, Corpus)
    n, k = a.table.shape
    parts = []
    for rows in _chunks(resamples, 2 * n * k):
        index = rng.integers(0, n, size=(rows, n))
        parts.append(
            _scores_of_sums(a, a.table[index].sum(axis=1))
            - _scores_of_sums(b, b.table[index].sum(axis=1))
        )
    return np.concatenate(parts)


def _permuted_differences(pair: Pair, resamples: int, rng: np.random.Generator) -> FloatArray:
    """a - b after swapping the two models' outputs on a random half of the items, as the
    null hypothesis (no difference) allows: sign flips for means, approximate randomization
    (swapped statistics rows, scored again) for corpus scores."""
    a, b = pair
    n = _pair_size(pair)
    parts = []
    if not isinstance(a, Corpus):
        d = a - cast(FloatArray, b)
        for rows in _chunks(resamples, n):
            signs = rng.integers(0, 2, size=(rows, n), dtype=np.int8) * 2 - 1
            parts.append((signs @ d) / n)
        return np.concatenate(parts)
    assert isinstance(b, Corpus)
    sum_a, sum_b = a.table.sum(axis=0), b.table.sum(axis=0)
    moved = b.table - a.table  # what a's sums gain when an item's outputs are swapped
    for rows in _chunks(resamples, n):
        swaps = rng.integers(0, 2, size=(rows, n)).astype(np.float64) @ moved
        parts.append(_scores_of_sums(a, sum_a + swaps) - _scores_of_sums(b, sum_b - swaps))
    return np.concatenate(parts)


def _permutation_p(observed: float, permuted: FloatArray) -> float:
    """p = (extreme + 1) / (resamples + 1); ties up to rounding count as extreme."""
    tolerance = 1e-9 * abs(observed) + 1e-12
    extreme = int(np.count_nonzero(np.abs(permuted) >= abs(observed) - tolerance))
    return (extreme + 1) / (permuted.size + 1)


def paired_test(
    a: Group,
    b: Group,
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

    For two aligned :class:`Corpus` scores the difference is that of the corpus scores, its
    interval a paired bootstrap of it and the p-value approximate randomization (each item's
    outputs swapped between the models at random, the corpus scores recomputed), as in
    sacrebleu's ``paired_ar``.
    """
    _check_resampling(resamples, confidence)
    pair = _aligned(a, b)
    if isinstance(pair[0], Corpus):
        return _paired_corpus(pair, resamples, confidence, seed)
    x, y = pair
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
        p_value = 1.0 if discordant == 0 else _binomial_p(a_only, discordant)
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


def _paired_corpus(
    pair: tuple[Corpus, Corpus], resamples: int, confidence: float, seed: int
) -> PairedTest:
    n = _pair_size(pair)
    if n == 0:
        return PairedTest(math.nan, math.nan, math.nan, math.nan, 0, "permutation")
    difference = _pair_difference(pair)
    rng = np.random.default_rng(seed)
    low, high = (
        (math.nan, math.nan)
        if n == 1
        else _bounds(_bootstrap_differences(pair, resamples, rng), confidence)
    )
    p_value = _permutation_p(difference, _permuted_differences(pair, resamples, rng))
    return PairedTest(difference, low, high, p_value, n, "permutation")


def stratified_paired_test(
    pairs: Sequence[tuple[Group, Group]],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Is A's overall score (the mean of its per-task scores) different from B's?

    ``pairs`` holds, per task, the two models' aligned scores (values or corpora), as for
    :func:`paired_test`. Tasks with no pairs left are dropped. With one task this is
    :func:`paired_test` itself (so McNemar for 0/1 scores); with more, the difference is the
    mean of per-task differences, its interval a paired bootstrap resampling each task's
    items within the task, and the p-value a permutation test swapping the models' outputs
    item by item within each task.
    """
    _check_resampling(resamples, confidence)
    if not pairs:
        raise ValueError("stratified_paired_test needs at least one task")
    kept = [pair for a, b in pairs if _pair_size(pair := _aligned(a, b))]
    if len(kept) <= 1:
        return paired_test(
            *(kept[0] if kept else pairs[0]), resamples=resamples, confidence=confidence, seed=seed
        )
    n = sum(_pair_size(pair) for pair in kept)
    difference = float(np.mean([_pair_difference(pair) for pair in kept]))
    rng = np.random.default_rng(seed)
    boot = np.mean([_bootstrap_differences(pair, resamples, rng) for pair in kept], axis=0)
    low, high = _bounds(boot, confidence)
    permuted = np.mean([_permuted_differences(pair, resamples, rng) for pair in kept], axis=0)
    return PairedTest(difference, low, high, _permutation_p(difference, permuted), n, "permutation")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Declaring every adjusted p below alpha significant keeps the chance of any false
    positive among the whole family of tests at alpha (the raw p-values would not, once many
    pairs of models are compared). NaN p-values (no test) stay NaN and are not counted.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, float((order.size - position) * p[index])))
        adjusted[index] = running
    return [float(v) for v in adjusted]


def rank_with_ties(
    intervals: Mapping[str, Interval],
    higher_is_better: bool = True,
    *,
    paired: Mapping[tuple[str, str], bool] | None = None,
) -> dict[str, int]:
    """Rank = 1 + the number of models significantly better than this one.

    Where two models were scored on the same items, a paired test decides: ``paired[(x, y)]``
    is True when x is significantly better than y (the caller's test, e.g. Holm-adjusted, in
    the metric's direction); a pair present in either order is decided by it alone. Other
    pairs fall back to the intervals: x is better when its interval lies entirely on the
    better side of y's (for higher_is_better: x.low > y.high; the LMSYS arena rule), so
    overlapping intervals share a rank. Models with a NaN estimate rank last, at
    len(intervals), and do not push anyone else down.
    """
    decided = paired or {}
    scored = {k: v for k, v in intervals.items() if not math.isnan(v.estimate)}

    def beats(x: str, y: str) -> bool:
        if (x, y) in decided or (y, x) in decided:
            return decided.get((x, y), False)
        if higher_is_better:
            return scored[x].low > scored[y].high
        return scored[x].high < scored[y].low

    ranks: dict[str, int] = {}
    for name in intervals:
        if name not in scored:
            ranks[name] = len(intervals)
            continue
        ranks[name] = 1 + sum(beats(other, name) for other in scored if other != name)
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


def _binomial_p(successes: int, trials: int) -> float:
    from scipy import stats as sps  # here, not at the top: see the module docstring

    return float(sps.binomtest(successes, trials).pvalue)


def _spearman(x: Sequence[Hashable], y: Sequence[Hashable]) -> float:
    from scipy import stats as sps

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
    from scipy.sparse.csgraph import connected_components

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
