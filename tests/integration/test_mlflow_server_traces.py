"""Traces to an MLflow tracking server (a real ``mlflow server`` on loopback): the store is
REST, not SQL, so the public per-trace ``start_trace`` (assessments attached) and batched
``log_spans`` carry them, and the server holds what the bulk SQL path would have written
(a strategy's nested, overlapping spans included: test_trace_spans.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests

from llmbench.schema import PriceEntry
from llmbench.tracking.traces import log_traces
from tests.integration.test_trace_spans import log_and_check

pytestmark = pytest.mark.slow

PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="test", date="2026-12-01")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--default-artifact-root",
            str(tmp_path / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # the server's first start migrates its database
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):  # a busy machine: wait on
                pass
            assert server.poll() is None, "mlflow server exited"
            time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_traces_and_assessments_through_a_tracking_server(
    tracking_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", tracking_server)
    client = mlflow.MlflowClient(tracking_server)
    experiment_id = client.create_experiment("server-traces")
    run = client.create_run(experiment_id, run_name="m")
    call = {"model": "m", "output": "4", "input_tokens": 100, "output_tokens": 10}
    rows = pd.DataFrame(
        [
            {
                "model": "m",
                "task": "t",
                "sample_id": str(i),
                "prompt": f"{i} + {i}?",
                "output": "4",
                "trace": json.dumps([call | {"latency_s": 0.5}]),
                "score.exact_match": float(i == 2),
                "human_label": 5.0,
            }
            for i in range(3)
        ]
    )
    ids = log_traces(
        rows, experiment_id, {"m": run.info.run_id}, {"m": PRICE}, {"m": "openai"}, started_ms=1
    )
    traces = client.search_traces(locations=[experiment_id], run_id=run.info.run_id)
    assert sorted(t.info.trace_id for t in traces) == sorted(ids)
    for trace in traces:
        sample = int(trace.info.trace_metadata["llmbench.sample_id"])
        found = {a.name: (a.source.source_type, a.value) for a in trace.info.assessments}
        assert found == {"exact_match": ("CODE", float(sample == 2)), "human_label": ("HUMAN", 5.0)}
        assert trace.info.token_usage["input_tokens"] == 100
        (llm,) = [s for s in trace.data.spans if s.span_type == "LLM"]
        assert llm.attributes["mlflow.llm.cost"]["total_cost"] == pytest.approx(120 / 1e6)

    # A strategy's answer: its spans nest and overlap as on the SQL path.
    log_and_check(client, experiment_id)
