"""Retrieval's pure parts: the metrics against a hand-computed case, reciprocal rank
fusion, corpus and gold id checks, a retrieval through the table round trip and into its
answer's trace."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow.entities
import pandas as pd
import pytest

from llmbench.config import load_task_file
from llmbench.errors import ConfigError
from llmbench.retrieval.augment import retrieve
from llmbench.retrieval.corpus import load_corpus
from llmbench.retrieval.fusion import reciprocal_rank_fusion
from llmbench.retrieval.trace import documents, with_retrieval
from llmbench.schema import CorpusSpec, RetrievalSpec
from llmbench.scoring.metrics import compute_structured
from llmbench.scoring.retrieval import item_scores
from llmbench.tables import JSON_SAMPLE_COLUMNS, frame_to_samples, samples_to_frame
from llmbench.types import Call, Completion, Passage, Retrieval, Sample

LOG2_3 = math.log2(3)


def passages(*ids: str) -> tuple[Passage, ...]:
    return tuple(
        Passage(id=i, text=f"text of {i}", title="T", score=1.0 / n, rank=n)
        for n, i in enumerate(ids, 1)
    )


def sample(sample_id: str, ranked: tuple[str, ...], gold: tuple[str, ...]) -> Sample:
    found = Retrieval(
        query=f"q{sample_id}", retriever="bm25", passages=passages(*ranked), gold=gold
    )
    return Sample(sample_id=sample_id, prompt="p", references=("r",), retrieval=found)


# ---------------------------------------------------------------- metrics


def test_metrics_equal_a_hand_computed_case() -> None:
    # Ranked a, b, c; gold b and d. At k=3: one of two gold found, first at rank 2.
    # DCG = 1/log2(3); ideal DCG (both gold first) = 1/log2(2) + 1/log2(3).
    got = item_scores(["a", "b", "c"], ["b", "d"], 3)
    assert got == pytest.approx(
        {
            "hit_rate": 1.0,
            "recall_at_k": 0.5,
            "precision_at_k": 1 / 3,
            "mrr": 0.5,
            "ndcg_at_k": (1 / LOG2_3) / (1 + 1 / LOG2_3),
        }
    )
    assert item_scores(["a", "b", "c"], ["b", "d"], 1) == dict.fromkeys(got, 0.0)
    perfect = item_scores(["b", "d", "a"], ["b", "d"], 2)
    assert perfect == dict.fromkeys(got, 1.0)


def test_an_item_without_gold_passages_is_unscored_not_zero() -> None:
    assert all(math.isnan(v) for v in item_scores(["a"], [], 3).values())


def test_the_aggregate_is_the_mean_over_items_with_gold() -> None:
    items = [
        sample("1", ("a", "b", "c"), ("b", "d")),
        sample("2", ("x", "y", "z"), ("x",)),
        sample("3", ("x", "y", "z"), ()),
    ]
    result = compute_structured("retrieval", items, [Completion()] * 3)
    assert result.per_sample["mrr"][:2] == [0.5, 1.0]
    assert math.isnan(result.per_sample["mrr"][2])
    assert result.aggregate["mrr"] == pytest.approx(0.75)
    assert result.aggregate["recall_at_k"] == pytest.approx(0.75)  # (1/2 + 1) / 2
    at_one = compute_structured("retrieval", items, [Completion()] * 3, {"k": 1})
    assert at_one.aggregate["hit_rate"] == pytest.approx(0.5)


# ---------------------------------------------------------------- fusion


def test_reciprocal_rank_fusion_sums_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60)
    assert [key for key, _ in fused] == ["a", "c", "b", "d"]
    assert dict(fused) == pytest.approx(
        {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63}
    )


def test_fusion_ties_keep_the_order_first_met() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=60)
    assert [key for key, _ in fused] == ["a", "b"]
    assert fused[0][1] == fused[1][1]


# ---------------------------------------------------------------- id checks


def corpus_file(tmp_path: Path, *rows: dict[str, object]) -> CorpusSpec:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return CorpusSpec(path=str(path))


def test_a_passage_without_an_id_names_the_file_line_and_field(tmp_path: Path) -> None:
    spec = corpus_file(tmp_path, {"id": "p1", "text": "one"}, {"text": "two"})
    with pytest.raises(ConfigError) as caught:
        load_corpus(spec)
    assert (caught.value.source, caught.value.field) == (spec.path, "id")
    assert "line 2 has no passage id" in caught.value.message


def test_a_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    spec = corpus_file(
        tmp_path,
        {"id": "p1", "text": "one"},
        {"id": "p2", "text": "two"},
        {"id": "p1", "text": "3"},
    )
    with pytest.raises(ConfigError) as caught:
        load_corpus(spec)
    assert (caught.value.source, caught.value.field) == (spec.path, "id")
    assert "'p1' occurs on lines 1 and 3" in caught.value.message


def test_a_passage_without_text_is_refused(tmp_path: Path) -> None:
    spec = corpus_file(tmp_path, {"id": "p1", "body": "one"})
    with pytest.raises(ConfigError, match="has no text"):
        load_corpus(spec)


def test_a_gold_id_not_in_the_corpus_is_refused_before_searching(tmp_path: Path) -> None:
    spec = RetrievalSpec(
        corpus=corpus_file(tmp_path, {"id": "p1", "text": "one"}), query="question", gold="g"
    )
    with pytest.raises(ConfigError) as caught:
        retrieve(spec, ["q1", "q2"], [("p1",), ("p9",)], source="task t (data.jsonl)")
    assert (caught.value.source, caught.value.field) == ("task t (data.jsonl)", "retrieval.gold")
    assert "row 1: gold passage id 'p9' is not in the corpus" in caught.value.message


def test_the_corpus_hash_follows_content_not_the_file_name(tmp_path: Path) -> None:
    first = load_corpus(corpus_file(tmp_path, {"id": "p1", "text": "one"}))
    moved = tmp_path / "moved.jsonl"
    Path(first.source).rename(moved)
    assert load_corpus(CorpusSpec(path=str(moved))).fingerprint == first.fingerprint
    changed = load_corpus(corpus_file(tmp_path, {"id": "p1", "text": "one!"}))
    assert changed.fingerprint != first.fingerprint


TASK = """
name: rag
source: {{path: data.jsonl}}
target: answer
template: "{{% for p in passages %}}{{{{ p.text }}}} {{% endfor %}}{{{{ question }}}}"
retrieval:
  corpus: {{path: corpus.jsonl}}
  query: question
{gold}
metrics: {metrics}
{judge}
"""


@pytest.mark.parametrize(
    ("gold", "metrics", "judge", "expected"),
    [
        ("", "[retrieval]", "", "retrieval scores retrieved passages against gold ones"),
        ("  gold: pid", "[{name: retrieval, options: {k: 5}}]", "", "option k must be"),
        (
            "  gold: pid",
            "[exact_match]",
            "judge: {mode: faithfulness, panel: [j]}",
            None,
        ),
    ],
)
def test_retrieval_settings_are_checked_at_load(
    tmp_path: Path, gold: str, metrics: str, judge: str, expected: str | None
) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(TASK.format(gold=gold, metrics=metrics, judge=judge))
    if expected is None:
        assert load_task_file(path).judge is not None
        return
    with pytest.raises(ConfigError, match=expected):
        load_task_file(path)


def test_a_faithfulness_judge_needs_retrieval(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(
        "name: t\nsource: {path: d.jsonl}\ntarget: a\ntemplate: x\nmetrics: [exact_match]\n"
        "judge: {mode: faithfulness, panel: [j]}\n"
    )
    with pytest.raises(ConfigError, match="faithfulness"):
        load_task_file(path)


# ---------------------------------------------------------------- round trip and trace


def test_a_retrieval_survives_the_table_round_trip(tmp_path: Path) -> None:
    items = [sample("1", ("a", "b"), ("b",)), Sample(sample_id="2", prompt="p", references=())]
    assert "retrieval" in JSON_SAMPLE_COLUMNS
    samples_to_frame(items).to_parquet(tmp_path / "samples.parquet")
    assert frame_to_samples(pd.read_parquet(tmp_path / "samples.parquet")) == items


def test_a_retrieval_is_the_first_call_of_its_answers_trace() -> None:
    item = sample("1", ("a", "b"), ("b",))
    item = item.model_copy(
        update={"retrieval": item.retrieval.model_copy(update={"latency_s": 0.25})}  # type: ignore[union-attr]
    )
    model_call = Call(model="m", output="answer", latency_s=1.0, start_s=0.0)
    answer = Completion(text="answer", latency_s=1.0, trace=[model_call])
    traced = with_retrieval(item, answer)
    first, second = traced.trace
    assert (first.kind, first.model, first.input) == (
        "retriever",
        "bm25",
        [{"role": "user", "content": "q1"}],
    )
    assert (first.start_s, first.latency_s, second.start_s) == (0.0, 0.25, 0.25)
    assert traced.latency_s == 1.25
    assert [mlflow.entities.Document(**d).id for d in json.loads(first.output)] == ["a", "b"]
    assert json.loads(first.output) == documents(item.retrieval)  # type: ignore[arg-type]
    assert with_retrieval(item, traced) == traced  # never twice
    plain = Sample(sample_id="2", prompt="p", references=())
    assert with_retrieval(plain, answer) == answer


def test_a_retrieval_costs_nothing_even_when_a_model_shares_its_name() -> None:
    from llmbench.pricing import price_completion
    from llmbench.schema import PriceEntry

    hourly = PriceEntry(per_hour=3600.0, source="t", date="d")  # $1 a second
    answer = Completion(text="a", latency_s=2.0, trace=[Call(model="bm25", latency_s=2.0)])
    item = sample("1", ("a",), ("a",))
    timed = item.retrieval.model_copy(update={"latency_s": 1.0})  # type: ignore[union-attr]
    traced = with_retrieval(item.model_copy(update={"retrieval": timed}), answer)
    priced = price_completion(traced, {"bm25": hourly})
    assert [c.cost_usd for c in priced.trace] == [0.0, 2.0]
    assert priced.cost_usd == 2.0
