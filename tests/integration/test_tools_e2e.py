"""The shipped tool task through the real CLI and pipeline, its tools served by llmbench's
MCP server: recorded answers replay tool calls (the same call at every step, as a
recording keyed by the question does), so the loop meets its step limit and the row is
scored on the call it still asks for; a recorded final answer is scored as text. The
calls land in samples.jsonl and as TOOL spans in MLflow."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from mlflow.genai.utils.trace_utils import extract_tools_called_from_trace

from tests.cli_runs import isolated_env, run_cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PARIS = "What was the high temperature in Paris on 2025-03-02, in degrees Celsius?"
RAIN = "How many millimetres of precipitation fell in Paris on 2025-03-05?"
SYDNEY = "What was the low temperature in Sydney on 2025-03-03, in degrees Celsius?"
RECORDED = [
    {
        "question": PARIS,
        "output": "",
        "calls": [
            {
                "name": "get_weather",
                "arguments": json.dumps({"city": "Paris", "date": "2025-03-02"}),
            }
        ],
    },
    {
        "question": RAIN,
        "output": "",
        "calls": [{"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}],
    },
    {"question": SYDNEY, "output": "18", "calls": []},
]
TASK = f"""
include: {ROOT / "configs" / "tasks" / "tools_weather_stock.yaml"}
tools:
  builtin: []  # the shipped task's local tools, here served by the MCP server instead
  mcp: [{{name: local, command: python, args: [-m, llmbench.tools.mcp_server]}}]
  max_steps: 2
"""
BENCH = """
name: tools_e2e
models:
  - name: replayed
    provider: recorded
    model: recorded.jsonl
    options: {prompt_field: question, output_field: output, tool_calls_field: calls}
tasks: [task.yaml]
execution: {limit: 3}
"""


def test_the_tool_task_through_the_pipeline_and_mcp(tmp_path: Path) -> None:
    (tmp_path / "recorded.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDED))
    (tmp_path / "task.yaml").write_text(TASK)
    (tmp_path / "bench.yaml").write_text(BENCH)
    run_cli(tmp_path, isolated_env(tmp_path), "--config", "bench.yaml", "--output-dir", "out")

    rows = {r["sample_id"]: r for r in map(json.loads, (tmp_path / "out" / "samples.jsonl").open())}
    paris, rain, sydney = rows["tool-01"], rows["tool-02"], rows["tool-03"]
    assert [c["kind"] for c in paris["trace"]] == ["model", "tool", "model"]
    tool = paris["trace"][1]
    assert (tool["model"], tool["role"], tool["error"]) == ("get_weather", "mcp:local", None)
    assert json.loads(tool["output"])["high_c"] == 13.0
    assert paris["trace"][2]["note"].startswith("step limit: 2 model calls made")
    assert paris["finish_reason"] == "tool_calls" and paris["error"] is None
    assert "'date' is a required property" in rain["trace"][1]["error"]
    assert sydney["output"] == "18" and [c["kind"] for c in sydney["trace"]] == ["model"]
    scores = {k: r["scores"]["exact_match"] for k, r in rows.items()}
    assert scores == {"tool-01": 0.0, "tool-02": 0.0, "tool-03": 1.0}

    with (tmp_path / "out" / "statistics" / "agents.csv").open() as handle:
        (agents,) = list(csv.DictReader(handle))
    assert (agents["items"], agents["solved"], agents["step_limit_hits"]) == ("3", "1", "2")
    assert (agents["steps_per_item"], agents["tool_errors"]) == (str(5 / 3), "1")

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("llmbench")
    assert experiment is not None
    traces = {
        t.info.trace_metadata["llmbench.sample_id"]: t
        for t in client.search_traces(locations=[experiment.experiment_id])
    }
    called = extract_tools_called_from_trace(client.get_trace(traces["tool-02"].info.trace_id))
    assert [(c.name, c.arguments) for c in called] == [("get_weather", {"city": "Paris"})]
    assert (
        called[0].exception is not None and "'date' is a required property" in called[0].exception
    )
