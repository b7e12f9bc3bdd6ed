"""The llama.cpp provider's prompt-chunk cache against the real local models (slow).

llama.cpp's logits depend on how a prompt is split into batches, so reusing whatever prefix
the previous request left (llama-cpp-python's own reuse) makes an answer depend on the request
before it. The provider splits every prompt at positions fixed by the prompt itself and keeps
only whole chunks: the logits that pick each answer must be bit-identical whatever came
before, while shared chunks (the chat header, a task's instruction) are really reused.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmbench.config import ModelSpec, PriceEntry, load
from llmbench.providers.llamacpp import LlamaCppProvider, chunk_boundaries
from llmbench.tasks.build import build_samples
from llmbench.types import Completion, GenerationParams, Message, Request

pytestmark = pytest.mark.slow

PRICE = PriceEntry(per_hour=0.085, source="test", date="2026-11-29")
MODELS = ["smollm2-135m-instruct", "gemma-3-270m"]


def provider(model: str, **options: Any) -> LlamaCppProvider:
    spec = ModelSpec.model_validate(
        {"name": "m", "provider": "llamacpp", "model": model, "price": PRICE, "options": options}
    )
    return LlamaCppProvider(spec)


def shipped_prompts(per_task: int = 3) -> list[list[Message]]:
    config = load(Path(__file__).resolve().parents[2] / "bench.yaml")
    return [
        sample.messages()
        for task in config.tasks
        for sample in build_samples(task.sample_spec(), per_task)
    ]


def answer(p: LlamaCppProvider, messages: list[Message], **params: Any) -> Completion:
    params = GenerationParams(**{"max_tokens": 24, **params})
    return asyncio.run(p.generate(Request(messages=tuple(messages), params=params)))


def prompt_tokens(p: LlamaCppProvider, messages: list[Message]) -> list[int]:
    """The exact tokens a prompt is evaluated as (chat template applied)."""
    completion = answer(p, messages, max_tokens=1)
    return p._load()[0].input_ids[: completion.input_tokens].tolist()  # type: ignore[no-any-return]


def last_logits(llm: Any, tokens: list[int]) -> tuple[np.ndarray, int]:
    """What generate() does before sampling: keep whole chunks, evaluate the rest; the logits
    and the number of tokens kept from the cache."""
    kept = llm._prepare(tokens)
    llm.eval(tokens[llm.n_tokens :])
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
    return logits, kept


def empty(llm: Any) -> None:
    llm.reset()
    llm._ctx.kv_cache_clear()


@pytest.mark.parametrize("model", MODELS)
def test_logits_do_not_depend_on_the_request_before(model: str) -> None:
    p = provider(model)
    llm = p._load()[0]
    prompts = [prompt_tokens(p, messages) for messages in shipped_prompts()]
    reference = []
    for tokens in prompts:
        empty(llm)
        reference.append(last_logits(llm, tokens)[0])
    forward = list(range(len(prompts)))
    shuffled = forward[:]
    random.Random(7).shuffle(shuffled)
    reused = 0
    for order in (forward, forward[::-1], shuffled):
        empty(llm)
        for index in order:
            logits, kept = last_logits(llm, prompts[index])
            reused += kept
            assert np.array_equal(logits, reference[index]), (model, index, order)
    assert reused > 0  # the chunks really came from the cache


@pytest.mark.parametrize("model", MODELS)
def test_a_line_evaluated_in_the_last_batch_is_not_kept_as_a_chunk(model: str) -> None:
    """Prompt A's last line goes in one batch with A's end; prompt B is A's text plus a line,
    so B evaluates that line as a chunk of its own: A's batch must not be kept for it.
    (Keeping it, Gemma's logits for B differ by up to 0.84 from B's on an empty cache.)"""
    p = provider(model)
    llm = p._load()[0]
    base = shipped_prompts(per_task=3)[1]
    extra = Message(role="user", content=base[-1].content + "\nThink it through, then answer.")
    a, b = prompt_tokens(p, base), prompt_tokens(p, [*base[:-1], extra])
    bounds_a = chunk_boundaries(a, llm._is_line_end, llm._is_control)
    bounds_b = chunk_boundaries(b, llm._is_line_end, llm._is_control)
    pairs = enumerate(zip(a, b, strict=False))
    shared = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
    assert [x for x in bounds_b if x <= shared and x not in bounds_a]  # the case at hand
    empty(llm)
    reference, _ = last_logits(llm, b)
    empty(llm)
    last_logits(llm, a)
    after_a, kept = last_logits(llm, b)
    assert np.array_equal(after_a, reference)
    assert 0 < kept <= max(bounds_a)


@pytest.mark.parametrize("model", MODELS)
def test_answers_are_the_same_in_any_order_and_shared_chunks_are_kept(model: str) -> None:
    prompts = shipped_prompts(per_task=2)
    p = provider(model)
    llm = p._load()[0]
    llm.reset()
    kept_before = llm.prompt_tokens_kept
    forward = [answer(p, messages) for messages in prompts]
    kept = llm.prompt_tokens_kept - kept_before
    backward = [answer(p, messages) for messages in prompts[::-1]][::-1]
    assert [c.text for c in forward] == [c.text for c in backward]
    assert [c.output_tokens for c in forward] == [c.output_tokens for c in backward]
    assert [c.input_tokens for c in forward] == [c.input_tokens for c in backward]
    # Same task, same instruction line: the second prompt of each task reuses at least it.
    assert kept >= 8 * len(prompts) // 2


def test_prefix_cache_off_evaluates_every_prompt_whole() -> None:
    on, off = (
        provider("smollm2-135m-instruct"),
        provider("smollm2-135m-instruct", prefix_cache="off"),
    )
    anywhere = provider("smollm2-135m-instruct", prefix_cache="any")
    identities = [p.cache_identity() for p in (on, off, anywhere)]
    assert len({str(i) for i in identities}) == 3  # other batches, other numbers
    llm = off._load()[0]
    prompts = shipped_prompts(per_task=1)
    kept_before, evaluated_before = llm.prompt_tokens_kept, llm.prompt_tokens_evaluated
    completions = [answer(off, messages) for messages in prompts]
    assert llm.prompt_tokens_kept == kept_before
    assert llm.prompt_tokens_evaluated - evaluated_before == sum(
        c.input_tokens for c in completions
    )
    assert all(c.error is None and c.output_tokens > 0 for c in completions)
