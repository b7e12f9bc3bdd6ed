"""Retrieval and tools in one task: the shipped xquad_rag_tools task through each vendor's
official SDK against the loopback fake, as the generate step runs it. The retrieved
passages are in the prompt, the model reads a figure from them and calls the calculator or
convert_units with it, llmbench runs the tool, and the final answer (the tool's result) is
scored; the trace is the retrieval, then the agent loop's calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench import config as cfg
from llmbench.config import ModelSpec
from llmbench.retrieval import index
from llmbench.runtime.retry import RetryPolicy
from llmbench.runtime.runner import RunSettings, generate
from llmbench.scoring.score import score_completions
from llmbench.tasks.build import build_samples
from llmbench.types import GenerationParams
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply, ReplyCall
from tests.integration.test_tool_calling import PRICE, PROVIDERS, VENDORS, environment

__all__ = ["environment"]  # the autouse fixture: every SDK's key and URL on the fake

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "configs" / "tasks" / "xquad_rag_tools.yaml"
XQUAD = ROOT.parent / "shared" / "data" / "rag" / "xquad" / "xquad.en.json"
# question id -> (what the passages must say, the tool call made from it, the answer)
READS = {
    "xqt-01": (
        "rose from 415,000 to 587,000 square kilometres",
        ReplyCall("calculator", {"expression": "587000 - 415000"}),
        "172000",
    ),
    "xqt-05": (
        "turbine entry temperatures are typically 565 °C",
        ReplyCall("convert_units", {"value": 565, "from_unit": "degC", "to_unit": "degF"}),
        "1049",
    ),
    "xqt-07": (
        "The extent of Hadrian's Wall was 73 miles",
        ReplyCall("convert_units", {"value": 73, "from_unit": "mile", "to_unit": "foot"}),
        "385440",
    ),
}


def reader_with_tools(request: RecordedRequest) -> Reply:
    """A model that calls a tool with a figure it finds in the retrieved passages (and
    gives up when they are not in its prompt), then answers with the tool's result."""
    text = request.prompt_text
    read = next((r for r in READS.values() if r[0] in text), None)
    if read is None:
        return Reply(text="The passages do not say.\n0")
    if not request.tool_results:
        return Reply(text="", tool_calls=(read[1],), output_tokens=10)
    return Reply(text=f"Computed with the tool.\n{request.tool_results[-1].split()[0]}")


@pytest.fixture(autouse=True)
def index_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not XQUAD.is_file():
        pytest.skip(f"shared benchmark data not found at {XQUAD}")
    monkeypatch.setenv(index.INDEX_DIR_ENV, str(tmp_path / "indexes"))
    monkeypatch.setattr(index, "_LOADED", {})


@pytest.mark.parametrize("name", VENDORS)
def test_retrieved_passages_and_tools_in_one_agent_loop(server: ProviderServer, name: str) -> None:
    server.default = reader_with_tools
    task = cfg.load_task_file(TASK)
    assert task.retrieval is not None and task.tools is not None
    samples = [s for s in build_samples(task, None) if s.sample_id in READS]
    assert len(samples) == len(READS)
    for sample in samples:
        assert sample.retrieval is not None and sample.agent is not None
        assert READS[sample.sample_id][0] in sample.prompt  # the gold passage, retrieved
    model = ModelSpec.model_validate(
        {"name": f"{name}-reader", "provider": name, "model": PROVIDERS[name][0], "price": PRICE}
    )
    settings = RunSettings(retries=RetryPolicy(max_attempts=1))
    rows = generate(
        model,
        samples,
        GenerationParams(temperature=0.0, max_tokens=256),
        settings=settings,
        label="t",
    )

    assert [r.error for r in rows] == [None] * len(READS)
    assert len(server.requests) == 2 * len(READS)  # per item: the call, then the answer
    for sample, row in zip(samples, rows, strict=True):
        assert [c.kind for c in row.trace] == ["model", "tool", "model"]
        assert row.trace[1].model == READS[sample.sample_id][1].name
        assert row.trace[1].error is None
    first = next(r for r in server.requests if not r.tool_results)
    assert sorted(first.tool_names) == ["calculator", "convert_units"]
    scores, _ = score_completions(task, samples, rows)
    assert scores["score.exact_match"].tolist() == [1.0] * len(READS)
    assert scores["score.hit_rate"].tolist() == [1.0] * len(READS)
