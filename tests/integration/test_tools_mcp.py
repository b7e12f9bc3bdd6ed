"""Tool-using tasks end to end without ZenML: the shipped tool task's items answered by a
scripted model through the model client, with llmbench's local tools called in process
and served by llmbench's MCP server over stdio (the official SDK at both ends); scored on
the final answer; logged to MLflow as TOOL spans that MLflow's own tool-call extraction
reads. An MCP server that dies mid-run leaves error rows' tool calls, not a crash; one
that cannot start is a ConfigError before the run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import mlflow
import pytest
from mlflow.genai.utils.trace_utils import extract_tools_called_from_trace

from llmbench import stages
from llmbench.config import load_task_file
from llmbench.errors import ConfigError
from llmbench.providers.registry import PROVIDERS
from llmbench.report.agents import agent_table
from llmbench.runtime.client import ModelClient, RunSettings
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.runner import ModelAnswerer, run_answers
from llmbench.schema import BenchConfig
from llmbench.tools.spec import McpServerSpec, ToolsSpec
from llmbench.tools.toolset import check_servers
from llmbench.tracking.traces import log_traces
from llmbench.types import GenerationParams, Sample
from tests.fakes.scripted_agent import PRICE, SCRIPTS, Script, field_of, spec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "configs" / "tasks" / "tools_weather_stock.yaml"
LOCAL_SERVER = McpServerSpec(
    name="local", command="python", args=["-m", "llmbench.tools.mcp_server"]
)
DYING = McpServerSpec(name="dying", command="python", args=["-m", "tests.fakes.dying_mcp_server"])
PARIS_HIGH = "What was the high temperature in Paris on 2025-03-02, in degrees Celsius?"

SCRIPTS["items"] = {
    PARIS_HIGH: Script(
        [[("get_weather", {"city": "Paris", "date": "2025-03-02"})]], field_of("high_c")
    ),
    "How many millimetres of precipitation fell in Paris on 2025-03-05?": Script(
        [[("get_weather", {"city": "paris", "date": "2025-03-05"})]], field_of("precipitation_mm")
    ),
    "What was the low temperature in Sydney on 2025-03-03, in degrees Celsius?": Script(
        # a wrong date first: the tool's error is read and the call made again
        [
            [("get_weather", {"city": "Sydney", "date": "2025-3-3"})],
            [("get_weather", {"city": "Sydney", "date": "2025-03-03"})],
        ],
        field_of("low_c"),
    ),
    "What was ACME's closing price on 2025-03-03, in USD?": Script(
        [[("get_stock_quote", {"ticker": "ACME", "date": "2025-03-03"})]], field_of("open")
    ),  # reads the wrong field: a scored wrong answer
}


@pytest.mark.parametrize("served", ["in_process", "mcp"])
def test_the_tool_task_runs_scores_and_logs_tool_spans(
    served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PROVIDERS, "scripted", "tests.fakes.scripted_agent:ScriptedProvider")
    task = load_task_file(TASK)
    if served == "mcp":
        task = task.model_copy(update={"tools": ToolsSpec(mcp=[LOCAL_SERVER], max_steps=6)})
    model = spec("items")
    samples = stages.load_task(task.sample_spec(), 4)
    completions = stages.generate(
        model, samples, GenerationParams(), settings=RunSettings(), label="tools"
    )
    results, _aggregates = stages.score(model, task, samples, completions)
    assert list(results["score.exact_match"]) == [1.0, 1.0, 1.0, 0.0]
    assert results["error"].isna().all()
    traces = [json.loads(t) for t in results["trace"]]
    assert [sum(c["kind"] == "model" for c in t) for t in traces] == [2, 2, 3, 2]
    sources = {c["role"] for t in traces for c in t if c["kind"] == "tool"}
    assert sources == {"builtin" if served == "in_process" else "mcp:local"}
    retried = [c for c in traces[2] if c["kind"] == "tool"]
    assert "does not match" in retried[0]["error"] and retried[1]["error"] is None
    assert (results["cost_usd"] > 0).all() and (results["input_tokens"] > 0).all()
    (agents,) = agent_table(BenchConfig(models=[model], tasks=[task]), results).to_dict("records")
    assert (agents["items"], agents["solved"], agents["steps_per_item"]) == (4, 3, 9 / 4)
    assert (agents["tool_calls_per_item"], agents["tool_errors"], agents["step_limit_hits"]) == (
        5 / 4,
        1,
        0,
    )
    assert agents["cost_per_solved_usd"] == pytest.approx(results["cost_usd"].sum() / 3)
    tokens = (results["input_tokens"] + results["output_tokens"]).sum()
    assert agents["tokens_per_solved"] == pytest.approx(tokens / 3)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("tools")
    run = client.create_run(experiment, run_name="scripted")
    ids = log_traces(
        results,
        experiment,
        {"scripted": run.info.run_id},
        {"scripted": PRICE},
        {"scripted": "scripted"},
        started_ms=1_000,
    )
    sydney = client.get_trace(ids[2])
    called = extract_tools_called_from_trace(sydney)
    assert [(c.name, c.arguments) for c in called] == [
        ("get_weather", {"city": "Sydney", "date": "2025-3-3"}),
        ("get_weather", {"city": "Sydney", "date": "2025-03-03"}),
    ]
    assert called[0].exception is not None and "does not match" in called[0].exception
    assert json.loads(str(called[1].outputs))["low_c"] == 18.0
    (root,) = [s for s in sydney.data.spans if s.parent_id is None]
    assert root.span_type == "AGENT"
    assert [s.span_type for s in sorted(sydney.data.spans, key=lambda s: s.start_time_ns)][1:] == [
        "LLM",
        "TOOL",
        "LLM",
        "TOOL",
        "LLM",
    ]
    assert sydney.info.token_usage["input_tokens"] == results["input_tokens"][2]


def _answer_all(tools: ToolsSpec, questions: list[str]) -> list:
    model = spec("dying")
    client = ModelClient(model, RunSettings(concurrency=1))
    samples = [
        Sample(sample_id=str(n), prompt=q, references=("",), agent=tools)
        for n, q in enumerate(questions)
    ]
    answerer = ModelAnswerer(client, GenerationParams())  # the samples carry the tools
    progress = GenerationProgress("dying", len(samples))
    try:
        return asyncio.run(
            run_answers(answerer, samples, progress=progress, settings=RunSettings(concurrency=1))
        )
    finally:
        progress.close()


def test_an_mcp_server_that_dies_mid_run_leaves_recorded_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(PROVIDERS, "scripted", "tests.fakes.scripted_agent:ScriptedProvider")
    weather = [("get_weather", {"city": "Tokyo", "date": "2025-03-01"})]
    SCRIPTS["dying"] = {
        "before": Script([weather], field_of("condition")),
        "crash": Script([[("crash", {})]], lambda results: results[0]),
        "after": Script([weather], lambda results: results[0]),
    }
    rows = _answer_all(ToolsSpec(mcp=[DYING]), ["before", "crash", "after"])
    assert [r.error for r in rows] == [None, None, None]  # answered and scored, all three
    assert rows[0].text.endswith("sunny")
    crashed = next(c for c in rows[1].trace if c.kind == "tool")
    assert crashed.error is not None and "MCP server 'dying'" in crashed.error
    after = next(c for c in rows[2].trace if c.kind == "tool")
    assert after.error is not None and after.error.startswith("MCP server 'dying'")
    assert rows[2].text == f"error: {after.error}"  # what the model was shown


def test_an_mcp_server_that_cannot_start_is_a_config_error() -> None:
    broken = McpServerSpec(
        name="broken", command="python", args=["-c", "import sys; sys.exit('no such thing')"]
    )
    with pytest.raises(ConfigError) as info:
        check_servers(ToolsSpec(mcp=[broken]), source="task t", field="tools")
    assert info.value.field == "tools.mcp.0" and "no such thing" in info.value.message
    with pytest.raises(ConfigError, match="offers no tool 'get_wether'"):
        check_servers(
            ToolsSpec(mcp=[LOCAL_SERVER.model_copy(update={"tools": ["get_wether"]})]),
            source="task t",
            field="tools",
        )


def test_the_cli_exits_2_before_anything_runs_when_a_server_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import run as cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "recorded.jsonl").write_text(json.dumps({"question": PARIS_HIGH, "output": "13"}))
    (tmp_path / "task.yaml").write_text(
        f"include: {TASK}\n"
        "tools: {builtin: [], mcp: [{name: gone, command: /nonexistent/server}]}\n"
    )
    (tmp_path / "bench.yaml").write_text(
        "models: [{name: r, provider: recorded, model: recorded.jsonl,"
        " options: {prompt_field: question}}]\ntasks: [task.yaml]\n"
    )
    assert cli.main(["--config", str(tmp_path / "bench.yaml")]) == 2
    err = capsys.readouterr().err
    assert "task tools_weather_stock: tools.mcp.0: MCP server 'gone'" in err
    assert "Traceback" not in err and not (tmp_path / "results").exists()
