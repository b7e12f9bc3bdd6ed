"""The shipped XQuAD RAG task end to end over the loopback fake OpenAI API: retrieval, the
answer, a faithfulness judge, scores with intervals, and each answer's MLflow trace with a
RETRIEVER span that MLflow's own retrieval helpers read."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import SpanType
from mlflow.genai.utils.trace_utils import extract_retrieval_context_from_trace

from llmbench import config as cfg
from llmbench import stages
from llmbench.report import statistics
from llmbench.retrieval import index
from llmbench.runtime import runner
from llmbench.scoring.judge import template_text
from llmbench.tables import frame_to_samples
from llmbench.tracking.traces import log_traces
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
XQUAD = ROOT.parent / "shared" / "data" / "rag" / "xquad" / "xquad.en.json"
BENCH = f"""
models:
  - {{name: reader, provider: openai, model: gpt-4o-mini}}
judges:
  - {{name: judge, provider: openai, model: gpt-4o}}
tasks: [{ROOT / "configs" / "tasks" / "xquad_rag.yaml"}]
execution: {{limit: 4}}
stats: {{resamples: 200}}
"""


def reader_and_judge(request: RecordedRequest) -> Reply:
    text = request.last_user_text or ""
    if "[Retrieved passages]" in text:  # the faithfulness judge's prompt
        return Reply(text='{"explanation": "every claim is in passage 1", "score": 10}')
    return Reply(text="308.")  # right for the first question only


@pytest.fixture
def bench(
    server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> cfg.BenchConfig:
    if not XQUAD.is_file():
        pytest.skip(f"shared benchmark data not found at {XQUAD}")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rag-test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv(index.INDEX_DIR_ENV, str(tmp_path / "indexes"))
    monkeypatch.setattr(index, "_LOADED", {})
    server.default = reader_and_judge  # type: ignore[assignment]
    (tmp_path / "bench.yaml").write_text(BENCH)
    return cfg.load(tmp_path / "bench.yaml")


def test_a_rag_task_is_scored_judged_and_traced(
    bench: cfg.BenchConfig, server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (task,), (model,) = bench.tasks, bench.models
    assert task.judge is not None and task.retrieval is not None
    samples = stages.load_task(task, bench.execution.limit)
    items = frame_to_samples(samples)
    assert [len(s.retrieval.passages) for s in items if s.retrieval] == [3] * 4
    assert all("Passage 1 (" in s.prompt for s in items)
    completions = stages.generate(
        model,
        samples,
        runner.request_params(model, task, bench.execution.seed),
        settings=runner.RunSettings(),
        label="reader",
    )
    grades = stages.grade(
        task.name,
        task.judge,
        template_text(task.judge),
        bench.grader("judge"),
        samples,
        completions,
        seed=1,
        settings=runner.RunSettings(),
        label="judge",
    )
    # The judge saw each answer's own passages.
    judged = [r for r in server.requests if "[Retrieved passages]" in (r.last_user_text or "")]
    assert len(judged) == 4
    shown = judged[0].last_user_text or ""
    first = items[0].retrieval.passages[0]  # type: ignore[union-attr]
    assert shown.count(first.text) == 1  # in the passages, not again inside the question
    assert f"[Question]\n{items[0].retrieval.query}\n[End of question]" in shown  # type: ignore[union-attr]
    results, aggregates = stages.score(model, task, samples, completions, [grades])

    assert results["score.exact_match"].tolist() == [1.0, 0.0, 0.0, 0.0]  # only item 0's answer
    values = dict(zip(aggregates["metric"], aggregates["value"], strict=True))
    found = [any(p.id in s.retrieval.gold for p in s.retrieval.passages) for s in items]  # type: ignore[union-attr]
    assert values["hit_rate"] == sum(found) / 4 and sum(found) >= 3
    assert results["score.hit_rate"].tolist() == [float(f) for f in found]
    assert 0 < values["ndcg_at_k"] <= 1.0 and values["judge"] == 10.0
    ci = statistics.intervals(bench, results)
    assert {"hit_rate", "recall_at_k", "precision_at_k", "mrr", "ndcg_at_k", "judge"} <= set(
        ci["metric"]
    )

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("rag")
    ids = log_traces(results, experiment, {}, {}, {"reader": "openai"}, started_ms=1_000)
    for trace_id, item in zip(ids, items, strict=True):
        trace = client.get_trace(trace_id)
        (span,) = trace.search_spans(span_type=SpanType.RETRIEVER)
        assert span.inputs == {"query": item.retrieval.query}  # type: ignore[union-attr]
        assert [d["metadata"]["doc_uri"] for d in span.outputs] == [
            p.id
            for p in item.retrieval.passages  # type: ignore[union-attr]
        ]
        (context,) = extract_retrieval_context_from_trace(trace).values()
        assert [c["content"] for c in context] == [p.text for p in item.retrieval.passages]  # type: ignore[union-attr]
        (llm,) = trace.search_spans(span_type=SpanType.LLM)
        assert llm.start_time_ns >= span.end_time_ns  # the model was asked after retrieval
    assert json.loads(results["trace"][0])[0]["kind"] == "retriever"
