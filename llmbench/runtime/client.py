"""A model client: the one road every model call takes (inspect_ai's ``Model`` over a
``ModelAPI``).

    response cache -> identical request in flight? share it -> the run's budget ->
    endpoint limiter (concurrency gate, RPM/TPM) -> provider.generate with retries inside a
    per-request timeout -> priced completion with its trace

Task generations, judges and every member call inside a strategy go through a client, so a
strategy's members keep their own endpoint limits, prices and cache entries, and a retry
re-sends one call, never a strategy's earlier, already paid-for calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
from dataclasses import dataclass, field

from llmbench import pricing
from llmbench.providers.base import Provider
from llmbench.providers.registry import build_provider
from llmbench.runtime.budget import Budget
from llmbench.runtime.cache import ResponseCache, cache_key, reused
from llmbench.runtime.limiter import ConnectionLimiter, limiter_for
from llmbench.runtime.request import send_with_retries
from llmbench.runtime.retry import RetryPolicy, Sleep
from llmbench.schema import ModelSpec, PriceEntry
from llmbench.types import Call, Completion, Request


@dataclass
class RunSettings:
    """How requests are sent; none of it changes what a model answers."""

    concurrency: int = 4
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    cache: ResponseCache | None = None
    refresh: bool = False  # ignore cached answers (still store new ones)
    budget: Budget | None = None  # the run's spend limit, shared with its other steps
    limiter: ConnectionLimiter | None = None  # the endpoint's limits, shared across steps
    max_error_rate: float | None = None  # abort once this share of requests failed
    sleep: Sleep | None = None  # tests pass a scaled clock
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class ClientCounts:
    """What a client did: requests sent, answers from the response cache, answers shared
    with an identical request already in flight."""

    sent: int = 0
    cache_hits: int = 0
    shared: int = 0


# Identical requests in flight, process-wide: steps are threads, each with its own event
# loop, so a thread-safe future is what a second caller waits on.
_IN_FLIGHT: dict[str, concurrent.futures.Future[Completion]] = {}
_IN_FLIGHT_LOCK = threading.Lock()


def budget_refusal(budget: Budget) -> Completion:
    """The row of a request the run's budget did not allow: nothing was sent."""
    return Completion(
        finish_reason="error",
        error=f"budget: not sent (execution.max_cost_usd ${budget.limit_usd:g} reached)",
    )


def draw_request(request: Request) -> Request:
    """The request as its draw sends it: a seeded request gets its own seed per draw, so k
    draws are k different requests, never k copies of one answer."""
    params = request.params
    if request.draw == 0 or params.seed is None:
        return request
    return request.with_params(seed=params.seed + request.draw)


class ModelClient:
    """One configured model with its endpoint's limits, the run's cache and budget and its
    price. ``generate`` returns a priced completion whose trace is this one call."""

    def __init__(
        self,
        spec: ModelSpec,
        settings: RunSettings,
        *,
        provider: Provider | None = None,
        limiter: ConnectionLimiter | None = None,
    ) -> None:
        if spec.price is None:
            raise ValueError(f"model {spec.name} has no resolved price")
        self.spec = spec
        self.price: PriceEntry = spec.price
        self.settings = settings
        self.provider = provider or build_provider(spec)
        self.limiter = (
            limiter
            or settings.limiter
            or limiter_for(self.provider.connection_key(), spec.limits, settings.concurrency)
        )
        self.identity = self.provider.cache_identity()
        self.counts = ClientCounts()

    @property
    def name(self) -> str:
        return self.spec.name

    async def generate(
        self,
        request: Request,
        *,
        index: int,
        role: str | None = None,
        purpose: str = "answer",
        note: str | None = None,
        record_input: bool = False,
    ) -> Completion:
        """One call. ``index`` is the sample's position and the request's ``draw`` which
        sample of it this is: both key unseeded sampling, so draws stay distinct; greedy
        requests with the same conversation and settings are one request, whoever asks.
        ``record_input``: the trace keeps the conversation sent (a prompt a strategy built;
        the sample's own is on its row already)."""
        request = draw_request(request)
        completion = await self._answer(self.key(request, index), request)
        shown = request.transcript() if record_input else None
        return self.priced(completion, role=role, purpose=purpose, note=note, input=shown)

    def key(self, request: Request, index: int) -> str:
        """The response-cache key of one call (``request`` already that of its draw)."""
        return cache_key(self.identity, request, index)

    def priced(
        self,
        completion: Completion,
        *,
        role: str | None = None,
        purpose: str = "answer",
        note: str | None = None,
        input: list[dict[str, str]] | None = None,
    ) -> Completion:
        """``completion`` at this model's price, with its trace: this one call."""
        cost = pricing.call_cost(completion, self.price)
        call = Call(
            model=self.name,
            role=role,
            purpose=purpose,
            input=input,
            output=completion.text,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cached_tokens=completion.cached_tokens,
            cache_write_tokens=completion.cache_write_tokens,
            reasoning_tokens=completion.reasoning_tokens,
            latency_s=completion.latency_s,
            cost_usd=cost,
            cached=completion.cached,
            local=self.provider.local,
            attempts=completion.attempts,
            error=completion.error,
            note=note,
        )
        return completion.model_copy(
            update={"cost_usd": cost, "answered_by": self.name, "trace": [call]}
        )

    # One sending path: the steps below are all a call goes through before and after its
    # request, whether the request leaves from this thread (_answer) or from a worker
    # process (llmbench.runtime.offload).

    def from_cache(self, key: str) -> Completion | None:
        """The response cache's answer to this call, as this call's own (None: send it)."""
        cache = self.settings.cache
        if cache is None or self.settings.refresh:
            return None
        hit = cache.get(key)
        if hit is None:
            return None
        self.counts.cache_hits += 1
        return reused(hit)

    def reserve(self, request: Request) -> float | Completion:
        """The request's worst case, reserved against the run's budget; or the row of a
        request the budget does not allow (nothing is sent)."""
        budget = self.settings.budget
        if budget is None:
            return 0.0
        worst = pricing.worst_case_cost(request, self.price)
        return worst if budget.reserve(worst) else budget_refusal(budget)

    def settle(self, key: str, reserved: float, completion: Completion) -> None:
        """A sent request's answer: counted, stored for the next run, its real cost settled
        against what was reserved for it."""
        self.counts.sent += 1
        if self.settings.cache is not None:
            self.settings.cache.put(key, completion)
        if self.settings.budget is not None:
            self.settings.budget.settle(reserved, pricing.call_cost(completion, self.price))

    async def _answer(self, key: str, request: Request) -> Completion:
        hit = self.from_cache(key)
        if hit is not None:
            return hit
        with _IN_FLIGHT_LOCK:
            leader = _IN_FLIGHT.get(key)
            if leader is None:
                mine: concurrent.futures.Future[Completion] = concurrent.futures.Future()
                _IN_FLIGHT[key] = mine
        if leader is not None:
            shared = await asyncio.wrap_future(leader)
            self.counts.shared += 1
            return reused(shared)
        try:
            completion = await self._send(key, request)
            mine.set_result(completion)
            return completion
        except BaseException as exc:  # cancelled: whoever waits on this request gets an error
            mine.set_result(Completion(finish_reason="error", error=f"not answered: {exc!r}"))
            raise
        finally:
            with _IN_FLIGHT_LOCK:
                _IN_FLIGHT.pop(key, None)

    async def _send(self, key: str, request: Request) -> Completion:
        """A request unless the run's budget would be crossed; errors become rows."""
        reserved = self.reserve(request)
        if isinstance(reserved, Completion):
            return reserved
        completion = await self._request(request)
        self.settle(key, reserved, completion)
        return completion

    async def _request(self, request: Request) -> Completion:
        settings = self.settings
        return await send_with_retries(
            self.provider,
            self.limiter,
            request,
            retries=settings.retries,
            rng=settings.rng,
            sleep=settings.sleep,
        )

    async def aclose(self) -> None:
        await self.provider.aclose()
