"""Cost before spending: prompt tokens per model and the most the run could cost.

Prompt tokens are counted with the model's own tokenizer where one is available offline
(the GGUF's, for llama.cpp models) and estimated at ~4 characters per token otherwise; the
table says which. Output is bounded by max_tokens, so the cost shown is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmbench.config import BenchConfig, ModelSpec
from llmbench.runtime.budget import estimated_prompt_tokens
from llmbench.runtime.runner import request_params
from llmbench.tasks.build import build_samples


@dataclass(frozen=True)
class Estimate:
    model: str
    provider: str
    samples: int
    prompt_tokens: int
    counted_by: str
    max_output_tokens: int
    max_cost_usd: float | None  # None: priced by compute time, unknown before running


def _token_counter(model: ModelSpec) -> tuple[str, object | None]:
    if model.provider != "llamacpp":
        return "estimated", None
    from llama_cpp import Llama

    from llmbench.providers.llamacpp import quiet_llama_logs, resolve_model_file

    quiet_llama_logs()
    vocab = Llama(model_path=str(resolve_model_file(model.model)), vocab_only=True, verbose=False)
    return "tokenizer", vocab


def estimate(config: BenchConfig) -> list[Estimate]:
    samples = {t.name: build_samples(t, config.execution.limit) for t in config.tasks}
    rows = []
    for model in config.models:
        counted_by, vocab = _token_counter(model)
        prompt = output = count = 0
        for task in config.tasks:
            params = request_params(model, task, config.execution.seed)
            for sample in samples[task.name]:
                if vocab is None:
                    prompt += estimated_prompt_tokens(sample.messages())
                else:
                    text = "\n".join(m.content for m in sample.messages())
                    prompt += len(vocab.tokenize(text.encode(), add_bos=True))  # type: ignore[attr-defined]
                output += params.max_tokens
                count += 1
        price = model.price
        cost = None
        if price is not None and price.per_hour is None:
            cost = price.cost(prompt, output, 0.0)
        rows.append(Estimate(model.name, model.provider, count, prompt, counted_by, output, cost))
    return rows
