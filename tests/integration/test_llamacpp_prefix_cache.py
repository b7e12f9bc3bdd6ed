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
from llmbench.providers.llamacpp import LlamaCppProvider
from llmbench.tasks.build import build_samples
from llmbench.types import Completion, GenerationParams, Message

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
    return asyncio.run(p.generate(messages, GenerationParams(**{"max_tokens": 24, **params})))


@pytest.mark.parametrize("model", MODELS)
def test_logits_do_not_depend_on_the_request_before(model: str) -> None:
    p = provider(model)
    llm = p._load()[0]
    prompts = []
    for messages in shipped_prompts():  # the exact tokens each prompt is evaluated as
        completion = answer(p, messages, max_tokens=1)
        prompts.append(llm.input_ids[: completion.input_tokens].tolist())
    vocabulary = llm.n_vocab()

    def last_logits(tokens: list[int]) -> tuple[np.ndarray, int]:
        """What generate() does before sampling: keep whole chunks, evaluate the rest."""
        llm._prepare(tokens)
        kept = llm.n_tokens
        llm.eval(tokens[kept:])
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocabulary,)).copy()
        return logits, kept

    def fresh(tokens: list[int]) -> np.ndarray:
        llm.reset()
        llm._ctx.kv_cache_clear()
        return last_logits(tokens)[0]

    reference = [fresh(tokens) for tokens in prompts]
    forward = list(range(len(prompts)))
    shuffled = forward[:]
    random.Random(7).shuffle(shuffled)
    reused = 0
    for order in (forward, forward[::-1], shuffled):
        llm.reset()
        for index in order:
            logits, kept = last_logits(prompts[index])
            reused += kept
            assert np.array_equal(logits, reference[index]), (model, index, order)
    assert reused > 0  # the chunks really came from the cache


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
        provider("smollm2-135m-instruct", prefix_cache=False),
    )
    assert on.cache_identity() != off.cache_identity()  # other batches, other numbers
    llm = off._load()[0]
    prompts = shipped_prompts(per_task=1)
    kept_before, evaluated_before = llm.prompt_tokens_kept, llm.prompt_tokens_evaluated
    completions = [answer(off, messages) for messages in prompts]
    assert llm.prompt_tokens_kept == kept_before
    assert llm.prompt_tokens_evaluated - evaluated_before == sum(
        c.input_tokens for c in completions
    )
    assert all(c.error is None and c.output_tokens > 0 for c in completions)
