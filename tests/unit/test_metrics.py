"""The project's evaluate modules agree with the reference implementations."""

from __future__ import annotations

import math

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from llmbench.scoring.metrics import compute_metric

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
