"""The shipped tool task (local weather and stock tools) through each vendor's official SDK
against the loopback fake, as the generate step runs it: the model calls a tool, llmbench
runs it on its fixture tables, the result goes back in the vendor's own shape, and the
model's final answer (read from that result) is scored. Streamed and not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmbench import config as cfg
from llmbench.config import ModelSpec
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import RunSettings, generate
from llmbench.scoring.score import score_completions
from llmbench.tasks.build import build_samples
from llmbench.types import GenerationParams
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply, ReplyCall
from tests.integration.test_tool_calling import PRICE, PROVIDERS, VENDORS, environment

__all__ = ["environment"]  # the autouse fixture: every SDK's key and URL on the fake

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "configs" / "tasks" / "tools_weather_stock.yaml"
# The questions the fake's model knows how to ask a tool for: (tool, arguments, result field).
CALLS = {
    "high temperature in Paris on 2025-03-02": (
        "get_weather",
        {"city": "Paris", "date": "2025-03-02"},
        "high_c",
    ),
    "precipitation fell in Paris on 2025-03-05": (
        "get_weather",
        {"city": "Paris", "date": "2025-03-05"},
        "precipitation_mm",
    ),
}


def agent_model(request: RecordedRequest) -> Reply:
    """A model that calls the weather tool first, then answers with the field it needs from
    the result it was sent back (so a right answer proves the result arrived)."""
    question = next(q for q in CALLS if q in (request.last_user_text or request.prompt_text))
    tool, arguments, field = CALLS[question]
    results = request.tool_results
    if not results:
        return Reply(text="", tool_calls=(ReplyCall(tool, arguments),), output_tokens=12)
    value = json.loads(results[-1])[field]
    return Reply(text=f"Looked it up.\n{value}", output_tokens=5)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("name", VENDORS)
def test_the_tool_task_runs_through_each_provider(
    server: ProviderServer, tmp_path: Path, name: str, stream: bool
) -> None:
    server.default = agent_model
    task = cfg.load_task_file(TASK)
    samples = [s for s in build_samples(task, 12) if any(q in s.prompt for q in CALLS)]
    assert len(samples) == 2
    model = ModelSpec.model_validate(
        {
            "name": f"{name}-agent",
            "provider": name,
            "model": PROVIDERS[name][0],
            "price": PRICE,
            "stream": stream,
        }
    )
    settings = RunSettings(retries=RetryPolicy(max_attempts=1))
    params = GenerationParams(temperature=0.0, max_tokens=256)
    rows = generate(model, samples, params, settings=settings, label="t")

    assert [r.error for r in rows] == [None, None]
    assert len(server.requests) == 4  # per item: the call, then the answer
    for row in rows:
        kinds = [c.kind for c in row.trace]
        assert kinds == ["model", "tool", "model"], kinds
        tool = row.trace[1]
        assert tool.model == "get_weather" and tool.error is None
        assert re.search(r"\d", tool.output)
        assert row.cost_usd == pytest.approx(sum(c.cost_usd for c in row.trace)) and row.cost_usd
    # What each API was sent: the tools offered, then the call and its result.
    first = next(r for r in server.requests if not r.tool_results)
    second = next(r for r in server.requests if r.tool_results)
    assert "get_weather" in first.tool_names and "calculator" in first.tool_names
    assert second.call_names == ["get_weather"] and len(second.tool_results) == 1
    scores, _ = score_completions(task, samples, rows)
    assert scores["score.exact_match"].tolist() == [1.0, 1.0]
