"""The embedded llama.cpp provider against the real local models (slow: loads GGUFs)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from llmbench.config import ModelSpec, PriceEntry
from llmbench.errors import ProviderError
from llmbench.providers.llamacpp import LlamaCppProvider, resolve_model_file
from llmbench.types import Completion, GenerationParams, Message, Request

pytestmark = pytest.mark.slow

PRICE = PriceEntry(per_hour=0.085, source="test", date="2026-11-29")
QUESTION = [Message(role="user", content="What is the capital of France? Answer in one word.")]


def provider(model: str, **fields: object) -> LlamaCppProvider:
    spec = ModelSpec.model_validate(
        {"name": "m", "provider": "llamacpp", "model": model, "price": PRICE, **fields}
    )
    return LlamaCppProvider(spec)


def run(p: LlamaCppProvider, messages: list[Message], **params: object):  # type: ignore[no-untyped-def]
    request = Request(messages=tuple(messages), params=GenerationParams.model_validate(params))
    return asyncio.run(p.generate(request))


def test_smollm2_chat_is_greedy_and_deterministic() -> None:
    p = provider("smollm2-135m-instruct")
    first = run(p, QUESTION, max_tokens=16, seed=1)
    second = run(p, QUESTION, max_tokens=16, seed=1)
    assert p.mode == "chat"
    assert "Paris" in first.text
    assert first.text == second.text
    assert first.input_tokens > 10 and 0 < first.output_tokens <= 16
    assert first.latency_s > 0
    # The first token's time: the prompt evaluated and one token chosen, before the rest.
    assert first.ttft_s is not None and 0 < first.ttft_s < first.latency_s
    assert first.finish_reason == "stop"
    assert first.model_version is not None and "@" in first.model_version
    assert first.error is None


def test_max_tokens_gives_length_finish() -> None:
    p = provider("smollm2-135m-instruct")
    long = [Message(role="user", content="Write a long story about a dragon.")]
    completion = run(p, long, max_tokens=5)
    assert completion.output_tokens == 5
    assert completion.finish_reason == "length"


def test_gemma_base_model_uses_completion_with_stop() -> None:
    p = provider("gemma-3-270m")
    prompt = [Message(role="user", content="Question: What is the capital of France?\nAnswer:")]
    completion = run(p, prompt, max_tokens=24, stop=("\n",))
    assert p.mode == "completion"
    assert "\n" not in completion.text
    assert "Paris" in completion.text
    assert completion.ttft_s is not None and 0 < completion.ttft_s < completion.latency_s


def test_any_gguf_path_and_concurrent_requests() -> None:
    path = resolve_model_file("smollm2-135m-instruct")
    p = provider(str(path), mode="chat")

    async def many() -> list[Completion]:
        params = GenerationParams(max_tokens=8)
        request = Request(messages=tuple(QUESTION), params=params)
        return list(await asyncio.gather(*(p.generate(request) for _ in range(4))))

    results = asyncio.run(many())
    assert len(results) == 4 and all(r.error is None and r.output_tokens > 0 for r in results)
    texts = [r.text for r in results]
    assert texts[0].strip() and len(set(texts)) == 1  # serialised and greedy: identical


def test_every_call_runs_on_one_long_lived_thread() -> None:
    """llama.cpp's CPU backend keeps an OpenMP team per calling thread: calls from changing
    threads (``asyncio.to_thread``'s pool, a new one per event loop) ran 1.2x slower."""
    p = provider("smollm2-135m-instruct")
    callers: list[threading.Thread] = []
    blocking = p._generate_blocking

    def recorded(request: Request) -> Completion:
        callers.append(threading.current_thread())
        return blocking(request)

    p._generate_blocking = recorded  # type: ignore[method-assign]
    for _ in range(3):  # three event loops, as three steps' request loops
        assert run(p, QUESTION, max_tokens=2).error is None

    async def together() -> None:
        request = Request(messages=tuple(QUESTION), params=GenerationParams(max_tokens=2))
        await asyncio.gather(*(p.generate(request) for _ in range(3)))

    asyncio.run(together())
    assert len(callers) == 6
    assert all(caller is callers[0] for caller in callers)
    assert callers[0] is not threading.current_thread()  # the event loop stays free


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="model file not found"):
        provider(str(tmp_path / "missing.gguf"))


def test_in_process_engine_runs_the_options_threads_and_flash_attention() -> None:
    """The loaded model gets the thread count the server engine gets (llama-cpp-python's own
    default is half the cores: one thread on 2 cores, about 0.6x the tokens/s), and flash
    attention, which is part of the answers' identity."""
    import llama_cpp

    p = provider("smollm2-135m-instruct")
    llm, _ = p._load()
    assert llm.n_threads == llm.n_threads_batch == p.options.threads()
    assert llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    off = provider("smollm2-135m-instruct", options={"flash_attn": False})
    off_llm, _ = off._load()
    assert off_llm is not llm
    assert off_llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    assert off.cache_identity() != p.cache_identity()
    assert p.cache_identity()["attention"] == "flash"


def test_generation_steps_are_keyed_by_what_computes_the_answers() -> None:
    """A local model's ZenML step key carries its options with defaults filled in, how answers
    are computed and the llama.cpp build: a changed default (flash attention, here) re-runs
    its generation steps instead of reusing rows computed the old way."""
    from llmbench.config import load
    from llmbench.plan import plan
    from llmbench.preflight import preflight

    def spec(**options: object) -> ModelSpec:
        return ModelSpec.model_validate(
            {
                "name": "m",
                "provider": "llamacpp",
                "model": "smollm2-135m-instruct",
                "options": options,
            }
        )

    base = LlamaCppProvider.fingerprint(spec())
    assert base == LlamaCppProvider.fingerprint(spec(flash_attn=True))  # the default, written out
    assert base == LlamaCppProvider.fingerprint(spec(n_threads=1))  # threads do not change answers
    for other in ({"flash_attn": False}, {"prefix_cache": "off"}, {"engine": "server"}):
        assert LlamaCppProvider.fingerprint(spec(**other)) != base, other

    bench = load(Path(__file__).resolve().parents[2] / "bench.yaml")
    fingerprints = preflight(bench)
    steps = {g.id: g for g in plan(bench, fingerprints).generations}
    assert steps["generate__smollm2-135m__arithmetic"].params["data_fingerprint"] == base
