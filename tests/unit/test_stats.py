"""The leaderboard's statistics: interval coverage, test calibration, agreement vs references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score

from llmbench.scoring.stats import (
    Corpus,
    Interval,
    agreement,
    bootstrap_ci,
    bradley_terry,
    cohen_kappa,
    fleiss_kappa,
    holm,
    paired_test,
    rank_with_ties,
    stratified_bootstrap_ci,
    stratified_paired_test,
)

NAN = math.nan

# --- bootstrap_ci --------------------------------------------------------------------------


def test_bootstrap_ci_drops_nans() -> None:
    with_nans = bootstrap_ci([1.0, NAN, 0.0, 1.0, NAN, 1.0], seed=3)
    without = bootstrap_ci([1.0, 0.0, 1.0, 1.0], seed=3)
    assert with_nans == without
    assert with_nans.n == 4
    assert with_nans.estimate == pytest.approx(0.75)
    assert with_nans.low < 0.75 < with_nans.high


def test_bootstrap_ci_degenerate_sizes() -> None:
    for empty in ([], [NAN, NAN], np.array([NAN])):
        result = bootstrap_ci(empty)
        assert result.n == 0
        assert math.isnan(result.estimate) and math.isnan(result.low) and math.isnan(result.high)
    one = bootstrap_ci([NAN, 0.4])  # one value: an estimate but no interval
    assert (one.estimate, one.n) == (0.4, 1)
    assert math.isnan(one.low) and math.isnan(one.high)
    # ... so it never looks certain enough to separate ranks.
    ranks = rank_with_ties({"one": one, "other": Interval(0.9, 0.85, 0.95, 50)})
    assert ranks == {"one": 1, "other": 1}


def test_bootstrap_ci_is_deterministic_by_seed() -> None:
    values = np.random.default_rng(0).normal(size=200)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


def test_bootstrap_ci_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], resamples=0)


@pytest.mark.parametrize("kind", ["bernoulli", "normal"])
def test_bootstrap_ci_covers_the_true_mean_at_the_nominal_rate(kind: str) -> None:
    rng = np.random.default_rng(12345)
    datasets, n = 400, 100
    if kind == "bernoulli":
        truth, data = 0.7, (rng.random((datasets, n)) < 0.7).astype(float)
    else:
        truth, data = 2.0, rng.normal(2.0, 1.5, size=(datasets, n))
    intervals = [bootstrap_ci(row, resamples=500, seed=i) for i, row in enumerate(data)]
    covered = np.mean([ci.low <= truth <= ci.high for ci in intervals])
    assert 0.90 <= covered <= 0.99


# --- stratified_bootstrap_ci ---------------------------------------------------------------


def test_stratified_estimate_is_the_mean_of_group_means() -> None:
    groups = [[1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.5, 0.25, NAN]]
    result = stratified_bootstrap_ci(groups, resamples=500)
    expected = np.mean([7 / 8, 1 / 3, 0.375])
    assert result.estimate == pytest.approx(expected)
    assert result.estimate != pytest.approx(np.nanmean(np.concatenate(groups)))  # not pooled
    assert result.n == 13
    assert result.low < result.estimate < result.high


def test_stratified_ignores_empty_groups() -> None:
    rng = np.random.default_rng(1)
    groups = [rng.random(30), rng.random(50)]
    plain = stratified_bootstrap_ci(groups, seed=4)
    padded = stratified_bootstrap_ci([[], groups[0], [NAN, NAN], groups[1]], seed=4)
    assert padded == plain
    assert math.isnan(stratified_bootstrap_ci([[NAN], []]).estimate)


def test_stratified_interval_matches_plain_bootstrap_for_one_group() -> None:
    values = np.random.default_rng(2).random(80)
    assert stratified_bootstrap_ci([values], seed=5) == bootstrap_ci(values, seed=5)


# --- paired_test ---------------------------------------------------------------------------


def test_mcnemar_is_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(2024)
    p_values = []
    for _ in range(300):
        a = (rng.random(100) < 0.6).astype(float)
        b = (rng.random(100) < 0.6).astype(float)
        result = paired_test(a, b, resamples=200)
        assert result.method == "mcnemar"
        p_values.append(result.p_value)
    assert 0.02 <= np.mean(np.array(p_values) < 0.05) <= 0.08


def test_permutation_is_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(2025)
    p_values = []
    for _ in range(300):
        difficulty = rng.random(100)
        a = difficulty + rng.normal(0, 0.3, 100)
        b = difficulty + rng.normal(0, 0.3, 100)
        result = paired_test(a, b, resamples=1000)
        assert result.method == "permutation"
        p_values.append(result.p_value)
    assert 0.02 <= np.mean(np.array(p_values) < 0.05) <= 0.08


def test_paired_test_detects_a_clear_difference() -> None:
    rng = np.random.default_rng(6)
    a = (rng.random(300) < 0.8).astype(float)
    b = (rng.random(300) < 0.5).astype(float)
    binary = paired_test(a, b)
    assert binary.method == "mcnemar"
    assert binary.p_value < 0.01
    assert 0 < binary.low < binary.difference < binary.high

    scores = rng.random(200)
    continuous = paired_test(scores + 0.1 + rng.normal(0, 0.1, 200), scores)
    assert continuous.method == "permutation"
    assert continuous.p_value == pytest.approx(1 / 1001)  # no flip is as extreme
    assert 0 < continuous.low < continuous.difference < continuous.high


def test_mcnemar_p_value_is_the_binomial_test_on_discordant_pairs() -> None:
    rng = np.random.default_rng(8)
    a = (rng.random(80) < 0.7).astype(float)
    b = (rng.random(80) < 0.55).astype(float)
    a_only, b_only = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
    result = paired_test(a, b)
    assert result.p_value == pytest.approx(sps.binomtest(a_only, a_only + b_only).pvalue)
    assert result.difference == pytest.approx((a_only - b_only) / 80)
    assert paired_test([1, 0, 1, 1], [1, 0, 1, 1]).p_value == 1.0


def test_permutation_p_value_approaches_the_exact_one() -> None:
    d = np.array([0.9, 0.4, -0.2, 0.7, 0.3, -0.5, 0.8, 0.1, 0.6, -0.1])
    signs = np.array(list(itertools.product([-1, 1], repeat=d.size)))
    exact = np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12)
    result = paired_test(d + 1.0, np.ones_like(d), resamples=20000)
    assert result.p_value == pytest.approx(exact, abs=0.01)


def test_paired_test_drops_nan_pairs() -> None:
    a = [0.9, NAN, 0.3, 0.8, 0.1, 0.7]
    b = [0.5, 0.2, NAN, 0.4, 0.2, 0.6]
    result = paired_test(a, b, seed=1)
    assert result == paired_test([0.9, 0.8, 0.1, 0.7], [0.5, 0.4, 0.2, 0.6], seed=1)
    assert result.n == 4
    assert result.difference == pytest.approx(np.mean([0.4, 0.4, -0.1, 0.1]))
    # Binary with NaNs still takes the McNemar path.
    assert paired_test([1, NAN, 0], [0, 1, NAN]).method == "mcnemar"
    assert math.isnan(paired_test([NAN], [1.0]).p_value)


def test_paired_test_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError):
        paired_test([1.0, 0.0], [1.0, 0.0, 1.0])


# --- rank_with_ties ------------------------------------------------------------------------


def test_rank_with_ties() -> None:
    intervals = {
        "a": Interval(0.80, 0.75, 0.85, 100),
        "b": Interval(0.78, 0.72, 0.84, 100),  # overlaps a: shares rank 1
        "c": Interval(0.60, 0.55, 0.65, 100),  # below both
        "d": Interval(NAN, NAN, NAN, 0),
    }
    assert rank_with_ties(intervals) == {"a": 1, "b": 1, "c": 3, "d": 4}
    # Lower is better (e.g. latency): c is now clearly best.
    assert rank_with_ties(intervals, higher_is_better=False) == {"a": 2, "b": 2, "c": 1, "d": 4}


def test_rank_with_ties_chains_of_overlap() -> None:
    intervals = {
        "a": Interval(0.9, 0.85, 0.95, 10),
        "b": Interval(0.8, 0.75, 0.86, 10),  # overlaps a and c
        "c": Interval(0.7, 0.65, 0.76, 10),  # below a only
    }
    assert rank_with_ties(intervals) == {"a": 1, "b": 1, "c": 2}


def test_paired_tests_decide_ranks_where_given() -> None:
    intervals = {
        "a": Interval(0.80, 0.75, 0.85, 100),
        "b": Interval(0.76, 0.71, 0.81, 100),  # overlaps a
        "c": Interval(0.74, 0.69, 0.79, 100),  # overlaps a and b
    }
    assert rank_with_ties(intervals) == {"a": 1, "b": 1, "c": 1}
    # The same items: the paired test separates a from b although their intervals overlap;
    # b vs c was tested and found no difference; a vs c falls back to the intervals.
    paired = {("a", "b"): True, ("b", "a"): False, ("b", "c"): False, ("c", "b"): False}
    assert rank_with_ties(intervals, paired=paired) == {"a": 1, "b": 2, "c": 1}
    # A paired "no difference" also overrides intervals that do not overlap.
    apart = {"a": Interval(0.9, 0.85, 0.95, 10), "b": Interval(0.5, 0.45, 0.55, 10)}
    assert rank_with_ties(apart) == {"a": 1, "b": 2}
    assert rank_with_ties(apart, paired={("a", "b"): False}) == {"a": 1, "b": 1}
    # Direction: for a lower-is-better score the paired verdict is taken as given.
    assert rank_with_ties(apart, False, paired={("b", "a"): True}) == {"a": 2, "b": 1}


# --- holm ----------------------------------------------------------------------------------


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max so far 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([0.003]) == [0.003]  # one test: unchanged
    adjusted = holm([0.02, NAN, 0.01])  # NaN: no test, not counted in the family
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)
    assert math.isnan(adjusted[1])
    assert holm([]) == []


def test_holm_controls_the_familywise_error_rate() -> None:
    """Six true-null pairs: raw p < 0.05 somewhere far more often than 5%, Holm at most 5%."""
    rng = np.random.default_rng(77)
    raw_any = holm_any = 0
    trials = 2000
    for _ in range(trials):
        p = rng.random(6)  # p-values of true nulls are uniform
        raw_any += bool(np.any(p < 0.05))
        holm_any += bool(np.any(np.array(holm(p.tolist())) < 0.05))
    assert raw_any / trials > 0.2
    assert holm_any / trials <= 0.06


# --- corpus scores -------------------------------------------------------------------------


def ratio(summed: np.ndarray) -> float:
    """A corpus score of the TER kind: total edits / total reference length, x100."""
    return 100.0 * float(summed[0]) / float(summed[1])


def corpus(edits: np.ndarray, lengths: np.ndarray) -> Corpus:
    return Corpus(np.column_stack([edits, lengths]).astype(float), ratio)


def test_corpus_interval_is_of_the_corpus_score_not_the_sentence_mean() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 40, 200)
    edits = rng.binomial(lengths, np.where(lengths < 10, 0.8, 0.2))  # short items err more
    scores = corpus(edits, lengths)
    ci = bootstrap_ci(scores, resamples=2000, seed=1)
    assert ci.estimate == pytest.approx(100 * edits.sum() / lengths.sum())
    assert ci.n == 200
    assert ci.low < ci.estimate < ci.high
    sentence_mean = bootstrap_ci(100 * edits / lengths, resamples=2000, seed=1)
    assert not sentence_mean.low <= ci.estimate <= sentence_mean.high  # another number


def test_corpus_interval_covers_the_true_score_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(11)
    covered = []
    for i in range(300):
        lengths = rng.integers(3, 30, 80)
        edits = rng.binomial(lengths, 0.3)
        ci = bootstrap_ci(corpus(edits, lengths), resamples=400, seed=i)
        covered.append(ci.low <= 30.0 <= ci.high)
    assert 0.90 <= np.mean(covered) <= 0.99


def test_corpus_degenerate_sizes() -> None:
    one = bootstrap_ci(corpus(np.array([2]), np.array([4])))
    assert (one.estimate, one.n) == (50.0, 1)
    assert math.isnan(one.low) and math.isnan(one.high)
    empty = bootstrap_ci(Corpus(np.zeros((0, 2)), ratio))
    assert empty.n == 0 and math.isnan(empty.estimate)


def test_paired_corpus_test_is_the_difference_of_corpus_scores() -> None:
    rng = np.random.default_rng(5)
    lengths = rng.integers(3, 30, 150)
    a, b = rng.binomial(lengths, 0.2), rng.binomial(lengths, 0.35)
    result = paired_test(corpus(a, lengths), corpus(b, lengths), seed=2)
    assert result.method == "permutation"
    assert result.n == 150
    assert result.difference == pytest.approx(100 * (a.sum() - b.sum()) / lengths.sum())
    assert result.low < result.difference < result.high < 0
    assert result.p_value == pytest.approx(1 / 1001)  # no swap is as extreme
    same = paired_test(corpus(a, lengths), corpus(a, lengths))
    assert same.difference == 0.0 and same.p_value == 1.0


def test_paired_corpus_test_is_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(8)
    p_values = []
    for i in range(300):
        lengths = rng.integers(3, 30, 60)
        a, b = rng.binomial(lengths, 0.3), rng.binomial(lengths, 0.3)
        p_values.append(
            paired_test(corpus(a, lengths), corpus(b, lengths), resamples=200, seed=i).p_value
        )
    assert 0.02 <= np.mean(np.array(p_values) < 0.05) <= 0.08


def test_paired_corpus_test_needs_aligned_corpora() -> None:
    with pytest.raises(ValueError):
        paired_test(
            corpus(np.array([1, 2]), np.array([3, 3])), corpus(np.array([1]), np.array([3]))
        )
    with pytest.raises(TypeError):
        paired_test(corpus(np.array([1]), np.array([3])), [0.5])


def test_stratified_bootstrap_mixes_means_and_corpora() -> None:
    rng = np.random.default_rng(9)
    values = rng.random(50)
    lengths = rng.integers(3, 30, 40)
    scores = corpus(rng.binomial(lengths, 0.3), lengths).mapped(lambda v: v / 100)
    result = stratified_bootstrap_ci([values, scores], seed=3)
    assert result.estimate == pytest.approx((values.mean() + scores.estimate()) / 2)
    assert result.n == 90
    assert result.low < result.estimate < result.high


# --- stratified_paired_test ----------------------------------------------------------------


def test_stratified_paired_test_of_one_task_is_the_task_test() -> None:
    rng = np.random.default_rng(10)
    a = (rng.random(100) < 0.6).astype(float)
    b = (rng.random(100) < 0.4).astype(float)
    assert stratified_paired_test([(a, b)], seed=4) == paired_test(a, b, seed=4)
    # Tasks with no pairs left are dropped.
    assert stratified_paired_test([(a, b), ([NAN], [1.0])], seed=4) == paired_test(a, b, seed=4)


def test_stratified_paired_test_averages_task_differences() -> None:
    rng = np.random.default_rng(12)
    a1, b1 = (rng.random(80) < 0.7).astype(float), (rng.random(80) < 0.4).astype(float)
    a2, b2 = rng.random(60) + 0.2, rng.random(60)
    result = stratified_paired_test([(a1, b1), (a2, b2)], seed=1)
    expected = ((a1 - b1).mean() + (a2 - b2).mean()) / 2
    assert result.difference == pytest.approx(expected)
    assert result.n == 140
    assert result.method == "permutation"
    assert result.low < expected < result.high
    assert result.p_value < 0.01


def test_stratified_paired_test_is_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(13)
    p_values = []
    for i in range(300):
        a1, b1 = (rng.random(40) < 0.5).astype(float), (rng.random(40) < 0.5).astype(float)
        a2, b2 = rng.random(30), rng.random(30)
        p_values.append(stratified_paired_test([(a1, b1), (a2, b2)], resamples=200, seed=i).p_value)
    assert 0.02 <= np.mean(np.array(p_values) < 0.05) <= 0.08


# --- cohen_kappa / fleiss_kappa ------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_sklearn(weights: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 6, 60)
    b = np.where(rng.random(60) < 0.6, a, rng.integers(1, 6, 60))
    expected = cohen_kappa_score(a, b, weights=weights)
    assert cohen_kappa(a, b, weights=weights) == pytest.approx(expected)
    assert cohen_kappa(a.tolist(), b.tolist(), weights=weights) == pytest.approx(expected)


def test_cohen_kappa_string_labels() -> None:
    rng = np.random.default_rng(9)
    labels = np.array(["yes", "no", "unsure"])
    a = labels[rng.integers(0, 3, 50)]
    b = np.where(rng.random(50) < 0.5, a, labels[rng.integers(0, 3, 50)])
    assert cohen_kappa(list(a), list(b)) == pytest.approx(cohen_kappa_score(a, b))


def test_cohen_kappa_edge_cases() -> None:
    # Missing labels are dropped.
    assert cohen_kappa(["x", None, "y", "x", NAN], ["x", "y", "y", "y", "x"]) == pytest.approx(
        cohen_kappa_score(["x", "y", "x"], ["x", "y", "y"])
    )
    assert math.isnan(cohen_kappa(["x"], ["x"]))
    assert math.isnan(cohen_kappa(["x", None], [None, "x"]))
    # Both raters constant and identical: documented as perfect agreement.
    assert cohen_kappa(["x", "x", "x"], ["x", "x", "x"]) == 1.0
    assert cohen_kappa([3, 3], [3, 3], weights="quadratic") == 1.0
    # Constant but different raters: no agreement beyond chance.
    assert cohen_kappa(["x", "x"], ["y", "y"]) == 0.0
    with pytest.raises(ValueError):
        cohen_kappa(["a", "b"], ["a", "a"], weights="linear")
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1, 2], weights="cubic")
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1])


def test_cohen_kappa_full_scale_categories() -> None:
    a, b = [1, 2, 5, 5, 1], [2, 2, 5, 4, 1]
    # Nobody used 3: by default 2 -> 4 is one step; with the full 1..5 scale it is two.
    default = cohen_kappa(a, b, weights="linear")
    assert default == pytest.approx(cohen_kappa_score(a, b, weights="linear"))
    full = cohen_kappa(a, b, weights="linear", categories=[1, 2, 3, 4, 5])
    assert full == pytest.approx(cohen_kappa_score(a, b, weights="linear", labels=[1, 2, 3, 4, 5]))
    assert full != pytest.approx(default)


# Wikipedia, "Fleiss' kappa", worked example: 10 items, 14 raters, 5 categories.
WIKIPEDIA_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_wikipedia_example() -> None:
    ratings = [[c for c, k in enumerate(row, 1) for _ in range(k)] for row in WIKIPEDIA_COUNTS]
    assert fleiss_kappa(ratings) == pytest.approx(0.210, abs=5e-4)
    # Label types do not matter, nor does a missing extra rating.
    named = [[f"cat{c}" for c in item] + [None] for item in ratings]
    assert fleiss_kappa(named) == pytest.approx(fleiss_kappa(ratings))


def test_fleiss_kappa_edge_cases() -> None:
    assert fleiss_kappa([["a", "a", "a"], ["b", "b", "b"], ["c", "c", "c"]]) == 1.0
    assert math.isnan(fleiss_kappa([["a", "a"], ["a", "a"]]))  # one category only
    assert math.isnan(fleiss_kappa([["a"], [None, "b"]]))  # no item with 2 ratings
    # An item with a single rating left is dropped.
    assert fleiss_kappa([["a", "a"], ["b", "b"], ["a", NAN]]) == 1.0
    with pytest.raises(ValueError):
        fleiss_kappa([["a", "a"], ["b", "b", "b"]])


# --- agreement -----------------------------------------------------------------------------


def test_agreement_on_a_scale() -> None:
    rng = np.random.default_rng(11)
    human = rng.integers(1, 6, 80).astype(float)
    judge = np.clip(human + rng.integers(-1, 2, 80), 1, 5)
    human_missing, judge_missing = human.copy(), judge.copy()
    human_missing[3], judge_missing[7] = NAN, NAN
    keep = np.ones(80, dtype=bool)
    keep[[3, 7]] = False

    result = agreement(list(judge_missing), list(human_missing), scale=True)
    assert result.n == 78
    assert result.accuracy == np.sum(judge[keep] == human[keep]) / 78
    assert result.spearman == pytest.approx(sps.spearmanr(judge[keep], human[keep]).statistic)
    expected = cohen_kappa_score(judge[keep], human[keep], weights="quadratic")
    assert result.kappa == pytest.approx(expected)


def test_agreement_on_labels() -> None:
    judge = ["pass", "fail", "pass", None, "pass", "fail"]
    human = ["pass", "pass", "pass", "fail", "pass", "fail"]
    result = agreement(judge, human, scale=False)
    assert result.n == 5
    assert result.accuracy == 4 / 5
    assert result.spearman is None
    kept_judge, kept_human = ["pass", "fail", "pass", "pass", "fail"], human[:3] + human[4:]
    assert result.kappa == pytest.approx(cohen_kappa_score(kept_judge, kept_human))


def test_agreement_undefined_cases() -> None:
    constant = agreement([3, 3, 3], [1, 2, 3], scale=True)
    assert constant.spearman is not None and math.isnan(constant.spearman)
    empty = agreement([None], [1], scale=True)
    assert empty.n == 0 and math.isnan(empty.accuracy)


# --- bradley_terry -------------------------------------------------------------------------


def simulate(elo: dict[str, float], games: int, seed: int) -> list[tuple[str, str, float]]:
    """Comparisons from known Elo ratings: each pair plays ``games`` times."""
    rng = np.random.default_rng(seed)
    out = []
    for a, b in itertools.combinations(elo, 2):
        p_a = 1 / (1 + 10 ** ((elo[b] - elo[a]) / 400))
        out += [(a, b, float(rng.random() < p_a)) for _ in range(games)]
    return out


def test_bradley_terry_recovers_known_strengths() -> None:
    truth = {"w": 850.0, "x": 950.0, "y": 1050.0, "z": 1150.0}
    ratings = bradley_terry(simulate(truth, 400, seed=1))
    assert sorted(ratings, key=lambda k: ratings[k].rating) == ["w", "x", "y", "z"]
    assert np.mean([r.rating for r in ratings.values()]) == pytest.approx(1000.0)
    for name, true in truth.items():
        assert ratings[name].rating == pytest.approx(true, abs=40)
        assert ratings[name].low < ratings[name].rating < ratings[name].high
    covered = [ratings[k].low <= truth[k] <= ratings[k].high for k in truth]
    assert sum(covered) >= 3


def test_bradley_terry_is_the_likelihood_maximum() -> None:
    # MLE with one virtual tie per pair that met: expected score equals actual score.
    comparisons = simulate({"a": 1000.0, "b": 1100.0, "c": 1300.0}, 25, seed=2)
    comparisons += [("a", "d", 0.0)] * 5 + [("d", "b", 0.5)] * 2  # d never meets c
    ratings = bradley_terry(comparisons, resamples=10)
    strength = {k: 10 ** ((r.rating - 1000) / 400) for k, r in ratings.items()}
    score = dict.fromkeys(strength, 0.0)
    expected = dict.fromkeys(strength, 0.0)
    met = {(min(a, b), max(a, b)) for a, b, _ in comparisons}
    for a, b, outcome in [*comparisons, *((a, b, 0.5) for a, b in met)]:
        score[a] += outcome
        score[b] += 1 - outcome
        expected[a] += strength[a] / (strength[a] + strength[b])
        expected[b] += strength[b] / (strength[a] + strength[b])
    for name in strength:
        assert expected[name] == pytest.approx(score[name], rel=1e-6)


def test_bradley_terry_symmetric_ties_give_equal_ratings() -> None:
    cycle = [("a", "b", 1.0), ("b", "c", 1.0), ("c", "a", 1.0)] * 5
    ties = [("a", "b", 0.5), ("a", "c", 0.5), ("b", "c", 0.5)] * 3
    for comparisons in (cycle, ties, cycle + ties):
        ratings = bradley_terry(comparisons, resamples=50)
        for r in ratings.values():
            assert r.rating == pytest.approx(1000.0)
            assert r.win_rate == pytest.approx(0.5)


def test_bradley_terry_undefeated_player_is_finite_and_top() -> None:
    comparisons = simulate({"a": 1000.0, "b": 1100.0}, 30, seed=3)
    comparisons += [("champ", "a", 1.0)] * 10 + [("b", "champ", 0.0)] * 10
    comparisons += [("a", "loser", 1.0)] * 10
    ratings = bradley_terry(comparisons, resamples=100)
    for name in ("champ", "loser"):
        r = ratings[name]
        assert all(math.isfinite(v) for v in (r.rating, r.low, r.high))
    assert max(ratings, key=lambda k: ratings[k].rating) == "champ"
    assert min(ratings, key=lambda k: ratings[k].rating) == "loser"
    assert ratings["champ"].win_rate == 1.0
    assert ratings["loser"].win_rate == 0.0


def test_bradley_terry_groups_that_never_meet_are_normalised_apart() -> None:
    comparisons = [("a", "b", 1.0)] * 6 + [("a", "b", 0.0)] * 2 + [("c", "d", 1.0)] * 3
    ratings = bradley_terry(comparisons, resamples=20)
    assert ratings["a"].rating + ratings["b"].rating == pytest.approx(2000.0)
    assert ratings["c"].rating + ratings["d"].rating == pytest.approx(2000.0)
    # With the virtual tie a scores 6.5 to b's 2.5, so their strength ratio is 6.5 / 2.5.
    assert ratings["a"].rating - ratings["b"].rating == pytest.approx(400 * math.log10(6.5 / 2.5))


def test_bradley_terry_win_rate_and_counts() -> None:
    comparisons = [
        ("a", "b", 1.0),
        ("a", "b", 0.5),
        ("b", "a", 1.0),
        ("c", "a", 0.0),
        ("c", "b", NAN),  # unscored: dropped
        ("d", "a", NAN),  # d is only in unscored comparisons
    ]
    ratings = bradley_terry(comparisons, resamples=20)
    assert list(ratings) == ["a", "b", "c", "d"]
    assert ratings["a"].comparisons == 4
    assert ratings["a"].win_rate == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert ratings["b"].comparisons == 3
    assert ratings["b"].win_rate == pytest.approx((0 + 0.5 + 1) / 3)
    assert ratings["c"].comparisons == 1 and ratings["c"].win_rate == 0.0
    assert ratings["d"].comparisons == 0 and math.isnan(ratings["d"].rating)
    assert bradley_terry([]) == {}
    with pytest.raises(ValueError):
        bradley_terry([("a", "a", 1.0)])
    with pytest.raises(ValueError):
        bradley_terry([("a", "b", 2.0)])


def test_bradley_terry_is_deterministic_by_seed() -> None:
    comparisons = simulate({"a": 1000.0, "b": 1050.0, "c": 1100.0}, 20, seed=4)
    first = bradley_terry(comparisons, seed=5)
    assert first == bradley_terry(comparisons, seed=5)
    other = bradley_terry(comparisons, seed=6)
    assert all(first[k].rating == other[k].rating for k in first)
    assert any(first[k].low != other[k].low for k in first)
