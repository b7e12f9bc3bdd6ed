"""The llamacpp provider's server engine against the real local models (slow: starts
llama.cpp's llama-server, built by scripts/build_llama_server.sh).

One server per model for the module (the providers share it, as a run's steps do), stopped
at the end; the kill -9 tests start their own in a child process and count what is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmbench.config import ModelSpec, PriceEntry, load
from llmbench.errors import MissingDependencyError
from llmbench.providers import llama_server
from llmbench.providers.llamacpp import LlamaCppProvider
from llmbench.runtime.progress import GenerationProgress
from llmbench.runtime.runner import RunSettings, request_params, run_samples
from llmbench.tasks.build import build_samples
from llmbench.types import Completion, GenerationParams, Message, Request, Sample

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PRICE = PriceEntry(per_hour=0.085, source="test", date="2026-11-29")
QUESTION = [Message(role="user", content="What is the capital of France? Answer in one word.")]


def spec(model: str, **options: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "m",
            "provider": "llamacpp",
            "model": model,
            "price": PRICE,
            "options": {"engine": "server", **options},
        }
    )


@pytest.fixture(scope="module", autouse=True)
def servers() -> Iterator[None]:
    """Skip where llama-server is not built; stop the module's servers after it."""
    try:
        llama_server.server_binary()
    except MissingDependencyError as missing:
        pytest.skip(f"{missing} ({missing.hint})")
    yield
    folders = [s.folder for s in llama_server._SERVERS.values()]
    llama_server.stop_servers()
    # Servers that ran to a normal stop leave no log folder behind.
    assert folders and not [f for f in folders if f.exists()]


def run(p: LlamaCppProvider, messages: list[Message], **params: Any) -> Completion:
    async def once() -> Completion:
        try:
            params_ = GenerationParams.model_validate(params)
            return await p.generate(Request(messages=tuple(messages), params=params_))
        finally:
            await p.aclose()

    return asyncio.run(once())


def test_chat_answers_carry_a_time_to_first_token() -> None:
    """Unstreamed: the time to first token is the latency less the server's time on the
    tokens after the first (its ``timings``), so a longer answer's is shorter than it."""
    p = LlamaCppProvider(spec("smollm2-135m-instruct"))
    first = run(p, QUESTION, max_tokens=16)
    second = run(p, QUESTION, max_tokens=16)
    assert p.mode == "chat"
    assert "Paris" in first.text and first.text == second.text
    assert first.input_tokens > 10 and 0 < first.output_tokens <= 16
    assert first.ttft_s is not None and 0 < first.ttft_s <= first.latency_s
    assert first.finish_reason == "stop"
    assert first.model_version is not None and first.model_version.lower().startswith("smollm2")
    length = run(p, [Message(role="user", content="Write a long story.")], max_tokens=5)
    assert length.output_tokens == 5 and length.finish_reason == "length"
    assert length.ttft_s is not None and 0 < length.ttft_s < length.latency_s


def test_the_base_model_gets_plain_completion_with_stop_sequences() -> None:
    p = LlamaCppProvider(spec("gemma-3-270m"))
    prompt = [Message(role="user", content="Question: What is the capital of France?\nAnswer:")]
    completion = run(p, prompt, max_tokens=24, stop=("\n",))
    assert p.mode == "completion"
    assert "Paris" in completion.text and "\n" not in completion.text
    assert completion.ttft_s is not None and completion.output_tokens > 0


def test_steps_share_one_server_per_model_and_settings() -> None:
    for model in ("smollm2-135m-instruct", "gemma-3-270m"):
        run(LlamaCppProvider(spec(model)), QUESTION, max_tokens=2)
    before = llama_server.running_pids()
    run(LlamaCppProvider(spec("smollm2-135m-instruct", json_mode=True)), QUESTION, max_tokens=2)
    assert llama_server.running_pids() == before  # a request option: the same server
    assert len(before) == 2
    identities = {
        json.dumps(LlamaCppProvider(s).cache_identity(), sort_keys=True)
        for s in (
            spec("smollm2-135m-instruct"),
            spec("smollm2-135m-instruct", prefix_cache="any"),
            ModelSpec.model_validate(
                {"name": "m", "provider": "llamacpp", "model": "smollm2-135m-instruct"}
            ),
        )
    }
    assert len(identities) == 3  # other engine, other prompt evaluation: other answers


def shipped_tasks(per_task: int) -> list[tuple[str, list[Sample], GenerationParams]]:
    """bench.yaml's prompts, with each task's answer length and stop sequences."""
    config = load(ROOT / "bench.yaml")
    model = next(m for m in config.models if m.name == "smollm2-135m")
    return [
        (
            task.name,
            build_samples(task.sample_spec(), per_task),
            request_params(model, task, config.execution.seed),
        )
        for task in config.tasks
    ]


def answers(
    p: LlamaCppProvider,
    tasks: list[tuple[str, list[Sample], GenerationParams]],
    concurrency: int,
) -> dict[tuple[str, str], str]:
    """Each prompt's answer, ``concurrency`` requests in flight per task, tasks in order."""
    out: dict[tuple[str, str], str] = {}
    for name, samples, params in tasks:
        completions = asyncio.run(
            run_samples(
                p,
                samples,
                params,
                price=PRICE,
                progress=GenerationProgress("test", len(samples), live=False),
                settings=RunSettings(concurrency=concurrency),
            )
        )
        for sample, completion in zip(samples, completions, strict=True):
            assert completion.error is None, completion.error
            out[name, sample.sample_id] = completion.text
    return out


def test_answers_do_not_depend_on_order_or_concurrency() -> None:
    tasks = shipped_tasks(per_task=3)  # 12 prompts of the four tasks
    reversed_tasks = [(name, samples[::-1], params) for name, samples, params in tasks[::-1]]
    p = LlamaCppProvider(spec("smollm2-135m-instruct"))
    one = answers(p, tasks, concurrency=1)
    eight = answers(p, tasks, concurrency=8)
    backward = answers(p, reversed_tasks, concurrency=1)
    assert len(one) == 12
    assert sum(one[k] == eight[k] for k in one) == len(one)
    assert sum(one[k] == backward[k] for k in one) == len(one)


def test_a_json_schema_answer_validates() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    p = LlamaCppProvider(spec("smollm2-135m-instruct", json_schema=schema))
    question = "Give the capital of France and its population as JSON."
    completion = run(p, [Message(role="user", content=question)], max_tokens=64)
    answer = json.loads(completion.text)
    import jsonschema

    jsonschema.validate(answer, schema)
    assert completion.ttft_s is not None


CHILD = """
import asyncio, sys
from llmbench.config import ModelSpec
from llmbench.providers import llama_server
from llmbench.providers.llamacpp import LlamaCppProvider
from llmbench.types import GenerationParams, Message, Request

spec = ModelSpec.model_validate({"name": "m", "provider": "llamacpp",
    "model": "smollm2-135m-instruct", "options": {"engine": "server", "n_ctx": 512}})
provider = LlamaCppProvider(spec)
hi = (Message(role="user", content="Hi"),)
request = Request(messages=hi, params=GenerationParams(max_tokens=2))
asyncio.run(provider.generate(request))
print(*llama_server.running_pids(), flush=True)
sys.stdin.read()  # until the test kills this process or closes stdin
"""


def live_servers(pids: list[int]) -> int:
    """How many of ``pids`` are still llama-server processes (a zombie left for a busy init to
    reap is dead: it holds no memory, no port, no core)."""
    alive = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
        alive += name == "llama-server" and state != "Z"
    return alive


def servers_left_after(end: str) -> int:
    """Start a server in a child python process, end the child (``kill -9`` or a normal exit),
    and count the child's servers still running once they have had 30 s to go."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        pids = [int(pid) for pid in child.stdout.readline().split()]
        # Started from the event loop's worker thread, which has exited by now: alive.
        assert len(pids) == 1 and live_servers(pids) == 1
        if end == "kill":
            child.kill()
        else:
            child.stdin.close()
        child.wait(timeout=60)
        deadline = time.monotonic() + 30
        while live_servers(pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        return live_servers(pids)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_no_server_survives_kill_9_of_its_process() -> None:
    assert servers_left_after("kill") == 0


def test_no_server_survives_a_normal_exit() -> None:
    assert servers_left_after("exit") == 0
