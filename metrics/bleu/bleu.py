"""BLEU through sacrebleu: corpus BLEU as the aggregate, sentence BLEU per item (0-100)."""

from __future__ import annotations

import evaluate
import sacrebleu

from llmbench.scoring.corpus import reference_streams, sacrebleu_metric
from llmbench.scoring.metric_module import metric_info


class Bleu(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            "sacreBLEU with its default tokenizer; corpus score and per-sentence scores.",
            citation="Post, A Call for Clarity in Reporting BLEU Scores, 2018",
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict[str, object]:
        corpus = sacrebleu_metric("bleu").corpus_score(predictions, reference_streams(references))
        per_item = [
            sacrebleu.sentence_bleu(p, list(refs)).score
            for p, refs in zip(predictions, references, strict=True)
        ]
        return {"bleu": corpus.score, "per_sample": {"bleu": per_item}}
