"""An answer's MLflow trace nests and times its spans as the answer ran: a cascade's k draws
side by side (overlapping spans, the trace as long as the leaderboard's latency, not k times
it), the verifier's prompt as its span's inputs, a nested strategy's calls under its own span.
The bulk SQL path here; the public path (a tracking server) checks the same trace in
test_mlflow_server_traces.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from llmbench.schema import PriceEntry
from llmbench.strategies.base import combine, nested
from llmbench.tracking.traces import log_traces
from llmbench.types import Call, Completion

pytestmark = pytest.mark.slow

PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="test", date="2026-12-01")
PRICES = {"cheap": PRICE, "strong": PRICE}
PROVIDERS = {"cheap": "openai", "strong": "openai", "cascade": "strategy:cascade"}
VERIFIER = "Is this answer to the question correct? ... Answer:\n7\n\nGrade:"
DRAWS = (0.5, 0.7, 0.6)


def asked(
    model: str, role: str, purpose: str, latency: float, prompt: str | None = None
) -> Completion:
    """One model call's completion, as the model client returns it."""
    shown = [{"role": "user", "content": prompt}] if prompt is not None else None
    call = Call(
        model=model,
        role=role,
        purpose=purpose,
        input=shown,
        output=f"{purpose} by {model}",
        input_tokens=10,
        output_tokens=2,
        latency_s=latency,
    )
    return Completion(text=call.output, latency_s=latency, answered_by=model, trace=[call])


def cascade_answer() -> Completion:
    """A cascade's answer: 3 draws of cheap side by side, a verifier's grade, then a router
    (``careful``, named "picker") as its last stage: a classifier, then strong."""
    draws = [
        asked("cheap", "cheap", "answer" if d == 0 else f"draw {d}", latency)
        for d, latency in enumerate(DRAWS)
    ]
    verdict = asked("strong", "checker", "verify", 0.2, VERIFIER)
    label = asked("cheap", "triage", "classify", 0.1, "Which kind of request is this?")
    routed = asked("strong", "big", "answer", 0.9)
    picker = nested(
        combine(routed, [[label], [routed]]), "careful", "picker", purpose="answer", note=None
    )
    return combine(picker, [draws, [verdict], [picker]])


def trace_rows(completion: Completion) -> pd.DataFrame:
    """The answer as the tracking step's results frame holds it, and one stored before
    calls had start times (two calls, 0.5 s and 0.25 s: laid end to end)."""
    old = [{"model": "cheap", "latency_s": 0.5}, {"model": "strong", "latency_s": 0.25}]
    return pd.DataFrame(
        [
            {
                "model": "cascade",
                "task": "t",
                "sample_id": str(n),
                "prompt": "2+2?",
                "output": completion.text,
                "latency_s": latency,
                "trace": trace,
            }
            for n, (latency, trace) in enumerate(
                [
                    (completion.latency_s, json.dumps([c.model_dump() for c in completion.trace])),
                    (0.5, json.dumps(old)),
                ]
            )
        ]
    )


def check_trace_spans(traces: list[Any], completion: Completion) -> None:
    """What both write paths must have stored for ``trace_rows(completion)``."""
    new, old = sorted(traces, key=lambda t: t.info.trace_metadata["llmbench.sample_id"])
    spans = {s.name: s for s in new.data.spans}
    (root,) = [s for s in new.data.spans if s.parent_id is None]
    start = root.start_time_ns
    assert completion.latency_s == pytest.approx(0.7 + 0.2 + 0.1 + 0.9)
    assert root.end_time_ns - start == pytest.approx(completion.latency_s * 1e9, abs=1e3)
    assert new.info.execution_duration == int(completion.latency_s * 1000)
    # The draws start together and overlap; the slowest ends when the verifier starts.
    draws = [spans["cheap: answer"], spans["cheap: draw 1"], spans["cheap: draw 2"]]
    assert all(s.start_time_ns == start and s.parent_id == root.span_id for s in draws)
    assert [s.end_time_ns - start for s in draws] == [
        pytest.approx(x * 1e9, abs=1e3) for x in DRAWS
    ]
    verifier = spans["strong: verify"]
    assert verifier.start_time_ns - start == pytest.approx(0.7e9, abs=1e3)
    assert verifier.inputs == {"messages": [{"role": "user", "content": VERIFIER}]}
    assert spans["cheap: answer"].inputs == {"messages": [{"role": "user", "content": "2+2?"}]}
    # The router stage: its own span under the root, its calls under it, in its rounds.
    picker = spans["picker: answer"]
    assert (picker.span_type, picker.parent_id) == ("CHAIN", root.span_id)
    assert picker.start_time_ns - start == pytest.approx(0.9e9, abs=1e3)
    label, routed = spans["cheap: classify"], spans["strong: answer"]
    assert label.parent_id == routed.parent_id == picker.span_id
    assert label.start_time_ns == picker.start_time_ns
    assert routed.start_time_ns - picker.start_time_ns == pytest.approx(0.1e9, abs=1e3)
    assert routed.end_time_ns == pytest.approx(root.end_time_ns, abs=1e3)
    assert routed.attributes["llmbench.parent"] == "careful:picker"
    assert routed.attributes["llmbench.round"] == 1
    llm = [s for s in new.data.spans if s.span_type == "LLM"]
    assert len(llm) == 6 and new.info.token_usage["input_tokens"] == 60
    # An old trace: its calls one after another, the root as long as both.
    first, second = sorted(
        (s for s in old.data.spans if s.span_type == "LLM"), key=lambda s: s.start_time_ns
    )
    assert second.start_time_ns == first.end_time_ns
    assert old.info.execution_duration == 750


def log_and_check(client: mlflow.MlflowClient, experiment_id: str) -> None:
    """Log ``trace_rows(cascade_answer())`` on a run of its own, then check what was stored."""
    run = client.create_run(experiment_id, run_name="cascade")
    answer = cascade_answer()
    ids = log_traces(
        trace_rows(answer),
        experiment_id,
        {"cascade": run.info.run_id},
        PRICES,
        PROVIDERS,
        started_ms=1_000,
    )
    traces = list(client.search_traces(locations=[experiment_id], run_id=run.info.run_id))
    assert sorted(t.info.trace_id for t in traces) == sorted(ids)
    check_trace_spans(traces, answer)


def test_spans_nest_and_overlap_as_the_answer_ran_on_a_sql_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    client = mlflow.MlflowClient(uri)
    log_and_check(client, client.create_experiment("spans"))
