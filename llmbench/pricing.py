"""Every dollar figure comes from here: a request's cost, an answer's cost from its trace,
re-pricing at the prices in force, a judge's reply, and the worst case reserved before a
request or shown by ``--dry-run``.

One formula (:meth:`PriceEntry.cost`) and one module calling it, so prompt-cache discounts,
compute-time pricing and reasoning tokens are billed the same way on every path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

from llmbench.schema import PriceEntry
from llmbench.types import Call, Completion, Message, Request

CHARS_PER_TOKEN = 4.0


def usage_cost(
    price: PriceEntry,
    input_tokens: int,
    output_tokens: int,
    compute_s: float,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float:
    """USD for one request's usage: tokens x price, or compute seconds x hourly rate."""
    return price.cost(
        int(input_tokens),
        int(output_tokens),
        float(compute_s),
        int(cached_tokens),
        int(cache_write_tokens),
    )


def call_cost(call: Call | Completion, price: PriceEntry) -> float:
    return usage_cost(
        price,
        call.input_tokens,
        call.output_tokens,
        call.latency_s,
        call.cached_tokens,
        call.cache_write_tokens,
    )


def with_cache_writes(price: PriceEntry, markup: float | None) -> PriceEntry:
    """``price`` with a prompt-cache write rate: the table's own, else ``markup`` (the
    provider's published premium, e.g. Anthropic's 1.25x) times the input rate, else none
    (writes billed as input)."""
    if price.cache_write_per_1m is not None or markup is None or price.input_per_1m is None:
        return price
    return price.model_copy(update={"cache_write_per_1m": markup * price.input_per_1m})


def price_call(call: Call, price: PriceEntry) -> Call:
    return call.model_copy(update={"cost_usd": call_cost(call, price)})


def price_completion(
    completion: Completion, prices: Mapping[str, PriceEntry], own: str | None = None
) -> Completion:
    """``completion`` at the prices in force: each call of its trace at its model's price,
    the answer's cost their sum. A completion without a trace (stored before traces existed)
    is priced whole at ``own``'s price."""
    if not completion.trace:
        price = prices.get(own or "") if own else None
        if price is None:
            return completion
        return completion.model_copy(update={"cost_usd": call_cost(completion, price)})
    trace = [
        price_call(c, prices[c.model]) if c.kind == "model" and c.model in prices else c
        for c in completion.trace
    ]
    return completion.model_copy(
        update={"trace": trace, "cost_usd": math.fsum(c.cost_usd for c in trace)}
    )


def estimated_prompt_tokens(messages: Sequence[Message]) -> int:
    """~4 characters per token plus a few per message for the chat format (an assistant
    turn's tool calls are text the model reads back too)."""
    return sum(math.ceil(_chars(m) / CHARS_PER_TOKEN) + 4 for m in messages)


def estimated_tokens(text: str) -> int:
    """A text's tokens at ~4 characters each (a template's own words, in a worst case)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _chars(message: Message) -> int:
    return len(message.content) + sum(len(c.name) + len(c.arguments) for c in message.tool_calls)


def max_cost(price: PriceEntry | None, prompt_tokens: int, output_tokens: int) -> float | None:
    """The most ``prompt_tokens`` in and ``output_tokens`` out can cost; None when priced by
    compute time (unknown before running) or unpriced."""
    if price is None or price.per_hour is not None:
        return None
    return usage_cost(price, prompt_tokens, output_tokens, 0.0)


def worst_case_cost(request: Request, price: PriceEntry) -> float:
    """What a request is reserved against the budget before it is sent."""
    prompt = estimated_prompt_tokens(request.messages)
    # Tool definitions and a response schema are sent as part of the prompt.
    extra = [tool.model_dump_json() for tool in request.tools]
    if request.response_schema is not None:
        extra.append(json.dumps(request.response_schema))
    prompt += sum(math.ceil(len(text) / CHARS_PER_TOKEN) for text in extra)
    return max_cost(price, prompt, request.params.max_tokens) or 0.0


def cost_parts(price: PriceEntry | None, call: Call) -> tuple[float, float]:
    """(input, output) USD of a call, summing to its cost: compute-time pricing bills it all
    as output (the time is spent generating); unpriced calls cost nothing."""
    if price is None:
        return 0.0, call.cost_usd
    if price.per_hour is not None:
        return 0.0, call_cost(call, price)
    prompt = usage_cost(
        price, call.input_tokens, 0, 0.0, call.cached_tokens, call.cache_write_tokens
    )
    return prompt, usage_cost(price, 0, call.output_tokens, 0.0)
