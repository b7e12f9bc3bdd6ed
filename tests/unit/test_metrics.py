"""The project's evaluate modules agree with the reference implementations."""

from __future__ import annotations

import math

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from llmbench.scoring.corpus import corpus_statistics
from llmbench.scoring.metrics import METRICS, compute_metric
from llmbench.scoring.stats import Corpus

PREDICTIONS = [
    "The concert moved to next weekend because of rain.",
    "Let the dough rest for an hour before you bake it.",
    "Completely unrelated words here.",
]
REFERENCES = [
    ["The outdoor concert was moved to next weekend because of heavy rain."],
    ["Let the dough rest somewhere warm for an hour before baking."],
    ["The train was late because of snow."],
]


def test_rouge_matches_rouge_score() -> None:
    result = compute_metric("rouge", {}, PREDICTIONS, REFERENCES)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"])
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        direct = [
            scorer.score(r[0], p)[key].fmeasure
            for p, r in zip(PREDICTIONS, REFERENCES, strict=True)
        ]
        assert result.per_sample[key] == pytest.approx(direct, abs=1e-12)
        assert result.aggregate[key] == pytest.approx(sum(direct) / len(direct), abs=1e-12)


def test_rouge_options_select_types_and_stemmer() -> None:
    result = compute_metric(
        "rouge", {"rouge_types": ["rougeL"], "use_stemmer": True}, PREDICTIONS, REFERENCES
    )
    assert set(result.aggregate) == {"rougeL"}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    direct = [
        scorer.score(r[0], p)["rougeL"].fmeasure
        for p, r in zip(PREDICTIONS, REFERENCES, strict=True)
    ]
    assert result.per_sample["rougeL"] == pytest.approx(direct, abs=1e-12)


def test_bleu_and_chrf_match_sacrebleu() -> None:
    streams = [[r[0] for r in REFERENCES]]
    bleu = compute_metric("bleu", {}, PREDICTIONS, REFERENCES)
    assert bleu.aggregate["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(PREDICTIONS, streams).score
    )
    assert bleu.per_sample["bleu"] == pytest.approx(
        [sacrebleu.sentence_bleu(p, r).score for p, r in zip(PREDICTIONS, REFERENCES, strict=True)]
    )
    chrf = compute_metric("chrf", {}, PREDICTIONS, REFERENCES)
    assert chrf.aggregate["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(PREDICTIONS, streams).score
    )
    assert chrf.per_sample["chrf"] == pytest.approx(
        [sacrebleu.sentence_chrf(p, r).score for p, r in zip(PREDICTIONS, REFERENCES, strict=True)]
    )


def test_ter_matches_sacrebleu_and_is_lower_is_better() -> None:
    streams = [[r[0] for r in REFERENCES]]
    ter = compute_metric("ter", {}, PREDICTIONS, REFERENCES)
    assert ter.aggregate["ter"] == pytest.approx(sacrebleu.corpus_ter(PREDICTIONS, streams).score)
    assert ter.per_sample["ter"] == pytest.approx(
        [sacrebleu.sentence_ter(p, r).score for p, r in zip(PREDICTIONS, REFERENCES, strict=True)]
    )
    perfect = compute_metric("ter", {}, [r[0] for r in REFERENCES], REFERENCES)
    assert perfect.aggregate["ter"] == 0.0 < ter.aggregate["ter"]  # 0 is the best TER
    assert METRICS["ter"].higher_is_better is False
    assert all(METRICS[name].higher_is_better for name in METRICS if name != "ter")


@pytest.mark.parametrize("name", ["bleu", "chrf", "ter"])
def test_corpus_statistics_sum_to_the_reported_corpus_score(name: str) -> None:
    """The statistics the intervals resample give back exactly the leaderboard's number."""
    references = [[r[0], r[0].replace("the", "a")] for r in REFERENCES]  # two references
    corpus = corpus_statistics(name, PREDICTIONS, references)
    assert corpus.n == len(PREDICTIONS)
    reported = compute_metric(name, {}, PREDICTIONS, references).aggregate[name]
    assert corpus.estimate() == pytest.approx(reported, abs=1e-9)
    sentence_mean = sum(compute_metric(name, {}, PREDICTIONS, references).per_sample[name]) / 3
    assert corpus.estimate() != pytest.approx(sentence_mean)  # a different number
    # Any subset is the corpus score of that subset.
    subset = Corpus(corpus.table[[0, 2]], corpus.score)
    direct = compute_metric(
        name, {}, [PREDICTIONS[0], PREDICTIONS[2]], [references[0], references[2]]
    )
    assert subset.estimate() == pytest.approx(direct.aggregate[name], abs=1e-9)


def test_exact_match_options_and_multiple_references() -> None:
    preds = ["Paris", "the USA.", "london"]
    refs = [["Paris"], ["United States", "USA"], ["London"]]
    strict = compute_metric("exact_match", {}, preds, refs)
    assert strict.per_sample["exact_match"] == [1.0, 0.0, 0.0]
    folded = compute_metric("exact_match", {"squad_normalize": True}, preds, refs)
    assert folded.per_sample["exact_match"] == [1.0, 1.0, 1.0]
    assert folded.aggregate["exact_match"] == 1.0


def test_token_f1_and_accuracy() -> None:
    f1 = compute_metric("token_f1", {}, ["the capital is Paris"], [["Paris"]])
    # tokens after normalisation: [capital, is, paris] vs [paris] -> P=1/3, R=1 -> F1=0.5
    assert f1.per_sample["token_f1"] == [pytest.approx(0.5)]
    acc = compute_metric("accuracy", {}, ["B", "C", ""], [["B"], ["D"], ["A"]])
    assert acc.per_sample["accuracy"] == [1.0, 0.0, 0.0]
    assert acc.aggregate["accuracy"] == pytest.approx(1 / 3)


def test_no_predictions_gives_nan_not_zero() -> None:
    result = compute_metric("exact_match", {}, [], [])
    assert math.isnan(result.aggregate["exact_match"])


def test_concurrent_scoring_keeps_inputs_apart() -> None:
    """Scoring steps run in parallel threads: each must score only its own predictions."""
    from concurrent.futures import ThreadPoolExecutor

    def score(index: int) -> tuple[int, float, list[float]]:
        hits = index % 5
        predictions = ["right"] * hits + ["wrong"] * (5 - hits) + [f"filler {index}"] * 20
        references = [["right"]] * 25
        result = compute_metric("exact_match", {}, predictions, references)
        return hits, result.aggregate["exact_match"], result.per_sample["exact_match"][:5]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(score, range(40)))
    for hits, aggregate, first in outcomes:
        assert aggregate == pytest.approx(hits / 25)
        assert first == [1.0] * hits + [0.0] * (5 - hits)
