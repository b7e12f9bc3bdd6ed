"""One model's requests in worker processes, each with its own event loop and provider.

ZenML runs a pipeline's steps as threads of one process, so every generate step's request
loop shares one GIL: at a few hundred requests a second a single SDK client is CPU-bound,
and two providers in two threads take the sum of their times instead of the longer one.
``run_in_workers`` moves the request loop out of the calling thread into ``workers``
processes; the caller keeps what must stay in one place (the response cache, the budget,
progress, the error-rate guard) through two callbacks:

- ``admit(index, request)``, called just before a request is handed to a worker: return
  ``None`` to send it, or the sample's final Completion (a cache hit, "budget reached",
  "aborted") to send nothing;
- ``on_result(index, completion)``, called as each sent sample's answer comes back.

Completions come back in the order of ``items``. A failed request is an error row, as in the
runner; so is every sample of a worker that could not start its provider or died (its other
samples go to the workers still alive).

Workers are forked from a fork server (``multiprocessing`` "forkserver"), never from the
caller: forking a process with running threads (ZenML's) is unsafe, and "spawn" would import
the SDK again in every worker (a second or more each). ``prepare(specs)`` names the models a
run will use so the fork server imports their SDKs once, before the first worker starts.
A worker outlives its job: it waits in a pool of this process for the next one, with its
event loop, and the default sender keeps its provider (SDK client, open connections) for the
next job of the same model and environment; ``shutdown()`` (also at exit) ends the idle ones.
Each job carries the caller's environment (``*_BASE_URL``, keys) with the keys its model's
ZenML secret provides (:func:`llmbench.providers.keys.provide_keys`), never written anywhere.

Each worker runs one event loop (uvloop when installed, see ``new_event_loop``) at its
share of the concurrency and of the model's rate limits (``limits`` divided evenly: the
workers do not share an adaptive limit with each other or with other steps).

The request itself is made by a *sender*, ``"module:function"``: called once per worker
with the job, it returns ``(send, close)`` where ``send(index, request)`` is a coroutine giving
the sample's Completion (never raising). The default, ``llmbench.runtime.workers:
request_sender``, does what the runner does per request: the concurrency gate, RPM/TPM
waits, the provider's timeout, retries with backoff, errors as redacted rows.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import importlib
import math
import multiprocessing
import os
import queue
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, TypeVar

from llmbench.providers.keys import keys_for
from llmbench.runtime.limiter import AdaptiveGate, ConnectionLimiter, RateLimits
from llmbench.runtime.request import error_row, send_with_retries
from llmbench.runtime.retry import RetryPolicy
from llmbench.types import Completion, Request

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext
    from multiprocessing.process import BaseProcess

    from llmbench.config import ModelSpec
    from llmbench.providers.base import Provider

T = TypeVar("T")
Send = Callable[[int, Request], Awaitable[Completion]]
Close = Callable[[], Awaitable[None]]
Admit = Callable[[int, Request], Completion | None]
OnResult = Callable[[int, Completion], None]

DEFAULT_SENDER = "llmbench.runtime.workers:request_sender"

# The SDK each provider module imports when a model is built: what the fork server preloads.
SDK_MODULES: dict[str, tuple[str, ...]] = {
    "llmbench.providers.openai": ("openai", "openai.types.chat", "httpcore2", "truststore"),
    "llmbench.providers.anthropic": ("anthropic", "httpcore2", "truststore"),
    "llmbench.providers.gemini": ("google.genai",),
    "llmbench.providers.ollama": ("ollama",),
}


# ---------------------------------------------------------------- event loops


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (less CPU per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on ``new_event_loop()``; safe in any thread (a step's, a worker's)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coroutine)


# ---------------------------------------------------------------- what a worker runs


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker needs: pickled to it once, before its samples."""

    spec: ModelSpec
    concurrency: int
    retries: RetryPolicy
    limits: RateLimits
    sender: str
    environ: dict[str, str]
    cwd: str
    seed: int


@dataclass
class WorkerStats:
    """Filled by ``run_in_workers``: what the workers did, for benchmarks and logs."""

    workers: int = 0
    sent: int = 0
    reused: int = 0  # workers that came from the pool (the others were started for this)
    cpu_s: float = 0.0  # the workers' CPU time for this job, summed (startup included)
    startup_cpu_s: float = 0.0  # of which: until each had its provider, summed
    startup_s: float = 0.0  # wall time from the call until every worker had its provider
    per_worker: list[int] = field(default_factory=list)  # samples answered by each
    pids: list[int] = field(default_factory=list)


async def request_sender(job: WorkerJob) -> tuple[Send, Close]:
    """The runner's request path, per worker: gate, RPM/TPM, timeout, retries, error rows."""

    provider = _provider_for(job)  # kept for this worker's next job; closed when it exits
    limiter = ConnectionLimiter(job.limits, job.concurrency)
    rng = random.Random(job.seed)

    async def send(index: int, request: Request) -> Completion:
        return await send_with_retries(provider, limiter, request, retries=job.retries, rng=rng)

    return send, _nothing


async def _nothing() -> None:
    return None


def _load(dotted: str) -> Callable[[WorkerJob], Awaitable[tuple[Send, Close]]]:
    module_name, _, attribute = dotted.partition(":")
    factory: Callable[[WorkerJob], Awaitable[tuple[Send, Close]]] = getattr(
        importlib.import_module(module_name), attribute
    )
    return factory


def _worker_main(conn: Connection) -> None:
    """A worker process: jobs one after another on one event loop, until told to exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # Answers leave through a thread of their own, so the event loop never blocks on a full
    # pipe and keeps reading the parent's next samples (no deadlock on long prompts).
    outgoing: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()

    def write() -> None:
        while (message := outgoing.get()) is not None:
            try:
                conn.send(message)
            except OSError:  # the parent is gone
                return

    writer = threading.Thread(target=write, name="llmbench-worker-writer", daemon=True)
    writer.start()
    try:
        run_coroutine(_serve(conn, outgoing.put))
    finally:
        outgoing.put(None)
        writer.join(timeout=30)


async def _serve(conn: Connection, post: Callable[[Any], None]) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def readable() -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone: nobody wants the answers
            message = ("gone", None)
            loop.remove_reader(conn.fileno())
        inbox.put_nowait(message)

    loop.add_reader(conn.fileno(), readable)
    try:
        while True:
            kind, payload = await inbox.get()
            if kind != "job" or not await _job(payload, inbox, post):
                return
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(conn.fileno())
        await _close_providers()


async def _job(
    job: WorkerJob, inbox: asyncio.Queue[tuple[str, Any]], post: Callable[[Any], None]
) -> bool:
    """One job; False when the parent is gone (or told this worker to go)."""
    loop = asyncio.get_running_loop()
    cpu = time.process_time()
    os.environ.clear()
    os.environ.update(job.environ)
    os.chdir(job.cwd)
    try:
        send, close = await _load(job.sender)(job)
    except BaseException as exc:  # the parent turns this worker's samples into error rows
        post(("fatal", f"worker could not start: {type(exc).__name__}: {exc}"))
        return False
    post(("ready", time.process_time() - cpu))
    outbox: list[tuple[int, Completion]] = []
    tasks: set[asyncio.Task[None]] = set()

    def flush() -> None:
        if outbox:
            post(("done", outbox.copy()))
            outbox.clear()

    async def one(position: int, index: int, request: Request) -> None:
        try:
            completion = await send(index, request)
        except Exception as exc:  # a sender that raised: still a row
            completion = error_row(exc, ())
        if not outbox:
            loop.call_soon(flush)  # everything that finishes in this tick goes in one message
        outbox.append((position, completion))

    try:
        while True:
            kind, payload = await inbox.get()
            if kind != "items":
                break
            for position, index, request in payload:
                task = loop.create_task(one(position, index, request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if kind == "end":  # every sample was handed out: finish them
            while tasks:
                await asyncio.gather(*tasks)
            flush()
        else:  # the parent is gone or gave up on this job
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await close()
    post(("finished", time.process_time() - cpu))
    return kind == "end"


# Providers the default sender built in this worker, kept for the worker's next jobs: the
# same model and environment gets the same SDK client (and its open connections).
_PROVIDERS: dict[str, Provider] = {}


def _provider_for(job: WorkerJob) -> Provider:
    from llmbench.providers.registry import build_provider

    environment = hashlib.sha256(repr(sorted(job.environ.items())).encode()).hexdigest()
    key = f"{job.spec.model_dump_json()}|{environment}"
    if key not in _PROVIDERS:
        _PROVIDERS[key] = build_provider(job.spec)
    return _PROVIDERS[key]


async def _close_providers() -> None:
    for provider in _PROVIDERS.values():
        with contextlib.suppress(Exception):
            await provider.aclose()
    _PROVIDERS.clear()


# ---------------------------------------------------------------- the parent's side


_CONTEXT_LOCK = threading.Lock()
_PRELOAD: set[str] = {"__main__", "llmbench.runtime.workers", "llmbench.providers.registry"}
_STARTED = False


def _modules_for(spec: ModelSpec) -> set[str]:
    from llmbench.providers.registry import PROVIDERS

    module = PROVIDERS[spec.provider].partition(":")[0]
    return {module, *SDK_MODULES.get(module, ())}


def import_sdks(specs: Iterable[ModelSpec]) -> None:
    """Import the models' provider modules and SDKs in this thread, before steps start:
    steps are threads, and an SDK first imported by two of them at once can be seen half
    initialised ("partially initialized module 'httpx' has no attribute 'URL'")."""
    for spec in specs:
        for module in sorted(_modules_for(spec)):
            with contextlib.suppress(ImportError):
                importlib.import_module(module)


def prepare(specs: Iterable[ModelSpec], *, start: bool = True) -> None:
    """Name the models a run will send through workers, before the first one starts, so the
    fork server imports their SDKs once instead of every worker importing its own; with
    ``start``, the fork server is started now, in the background (a second or a few of CPU,
    in its own process), so it is ready when the first step asks for workers."""
    global _STARTED
    context = multiprocessing.get_context("forkserver")
    with _CONTEXT_LOCK:
        for spec in specs:
            _PRELOAD.update(_modules_for(spec))
        if not start or _STARTED:
            return
        context.set_forkserver_preload(sorted(_PRELOAD))
        _STARTED = True
    from multiprocessing import forkserver

    threading.Thread(
        target=forkserver.ensure_running, name="llmbench-forkserver", daemon=True
    ).start()


def _context(spec: ModelSpec) -> ForkServerContext:
    global _STARTED
    context = multiprocessing.get_context("forkserver")
    with _CONTEXT_LOCK:
        if not _STARTED:
            _PRELOAD.update(_modules_for(spec))
            context.set_forkserver_preload(sorted(_PRELOAD))
            _STARTED = True
    return context


# Requests in flight per worker process: at ~1-1.5 ms of SDK CPU per request and 100 ms or more
# per answer, one process keeps up with 32 comfortably (about a third of a core).
REQUESTS_PER_WORKER = 32
MIN_SAMPLES = 32  # fewer: not worth a process hop, send in-process


def worker_count(spec: ModelSpec, samples: int, concurrency: int) -> int:
    """How many worker processes a step should use; 0 to send in-process.

    In-process for models that are not HTTP APIs (llama.cpp in this process, recorded
    outputs), for small steps, and for models with an endpoint limit (``max_concurrency``,
    RPM or TPM: an endpoint's gate and token buckets are shared by every step that uses it,
    which worker processes cannot share); otherwise at
    least one, so that steps on different endpoints stop sharing a GIL, and one per
    ``REQUESTS_PER_WORKER`` in flight, up to the number of cores.
    """
    from llmbench.providers.registry import provider_class

    limits = spec.limits
    if (
        not provider_class(spec.provider).remote
        or samples < MIN_SAMPLES
        or limits.max_concurrency is not None
        or limits.requests_per_minute is not None
        or limits.tokens_per_minute is not None
    ):
        return 0
    wanted = math.ceil(min(concurrency, samples) / REQUESTS_PER_WORKER)
    return max(1, min(wanted, os.cpu_count() or 1))


# Worker processes sending for all steps of this process at once: a step asks for its
# ``worker_count`` and is granted what the cores have left, never less than one (a step
# alone keeps one process per 32 requests in flight; two at once share the cores instead
# of starting two each: measured, 2+2 processes on 2 cores took 1.33x the slower step
# alone, 1+1 took 1.11x).
WORKER_SLOTS = os.cpu_count() or 1
_SLOTS_IN_USE = 0
_SLOTS_LOCK = threading.Lock()


@contextlib.contextmanager
def claimed_slots(wanted: int) -> Iterator[int]:
    """How many of ``wanted`` worker processes a step gets now, held until it is done."""
    global _SLOTS_IN_USE
    with _SLOTS_LOCK:
        granted = max(1, min(wanted, WORKER_SLOTS - _SLOTS_IN_USE))
        _SLOTS_IN_USE += granted
    try:
        yield granted
    finally:
        with _SLOTS_LOCK:
            _SLOTS_IN_USE -= granted


def _shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal whole shares, each at least 1."""
    base, extra = divmod(total, parts)
    return [max(1, base + (1 if i < extra else 0)) for i in range(parts)]


def _split_limits(limits: RateLimits, parts: int) -> RateLimits:
    def per(value: float | None) -> float | None:
        return None if value is None else value / parts

    return limits.model_copy(
        update={
            "max_concurrency": None
            if limits.max_concurrency is None
            else max(1, math.ceil(limits.max_concurrency / parts)),
            "requests_per_minute": per(limits.requests_per_minute),
            "tokens_per_minute": per(limits.tokens_per_minute),
        }
    )


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    model: str = ""  # the model of its last job: a warm provider for the same one
    # This job's state:
    capacity: int = 0  # samples it may hold: its concurrency plus a little prefetch
    outstanding: set[int] = field(default_factory=set)
    ready: bool = False
    alive: bool = True
    finished: bool = False
    answered: int = 0
    cpu_s: float = 0.0
    startup_cpu_s: float = 0.0

    def start(self, job: WorkerJob) -> None:
        self.model = job.spec.model_dump_json()
        self.capacity = job.concurrency + max(2, job.concurrency // 4)
        self.outstanding = set()
        self.ready = self.finished = False
        self.alive = True
        self.answered = 0
        self.cpu_s = self.startup_cpu_s = 0.0
        self.conn.send(("job", job))

    def retire(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("exit", None))
        self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


# Workers between jobs, for the next run_in_workers of any step thread of this process.
_IDLE: list[_Worker] = []
_IDLE_LOCK = threading.Lock()
MAX_IDLE = max(4, 2 * (os.cpu_count() or 2))


def _acquire(context: ForkServerContext, count: int, spec: ModelSpec) -> tuple[list[_Worker], int]:
    """``count`` workers: idle ones first (those that last ran this model first), then new."""
    model = spec.model_dump_json()
    with _IDLE_LOCK:
        _IDLE.sort(key=lambda w: w.model != model)  # stable: the same model first
        candidates = _IDLE[:count]
        del _IDLE[:count]
    taken = [w for w in candidates if w.process.is_alive()]
    for worker in candidates:
        if worker not in taken:
            worker.retire()
    reused = len(taken)
    while len(taken) < count:
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_worker_main, args=(child_end,), name="llmbench-worker", daemon=True
        )
        process.start()
        child_end.close()
        taken.append(_Worker(process, parent_end))
    return taken, reused


def _release(workers: Iterable[_Worker]) -> None:
    for worker in workers:
        healthy = worker.alive and worker.finished and worker.process.is_alive()
        with _IDLE_LOCK:
            if healthy and len(_IDLE) < MAX_IDLE:
                _IDLE.append(worker)
                continue
        worker.retire()


def shutdown() -> None:
    """End the idle workers (run at exit; a later run_in_workers starts new ones)."""
    with _IDLE_LOCK:
        idle = _IDLE[:]
        _IDLE.clear()
    for worker in idle:
        worker.retire()


atexit.register(shutdown)


def run_in_workers(
    spec: ModelSpec,
    items: Sequence[tuple[int, Request]],
    *,
    workers: int,
    concurrency: int,
    retries: RetryPolicy | None = None,
    admit: Admit | None = None,
    on_result: OnResult | None = None,
    sender: str = DEFAULT_SENDER,
    stats: WorkerStats | None = None,
    seed: int = 0,
    gate: AdaptiveGate | None = None,
) -> list[Completion]:
    """Completions for ``items`` (``(index, request)`` pairs: the sample's position and the
    request that asks it), in their order.

    ``concurrency`` is the total number of requests in flight, split over ``workers``
    processes (each gets at least one). ``gate``: the endpoint's run-wide concurrency limit
    (the connection key's, shared with every step of this process): an item is handed to a
    worker only while it has a free slot, held until the answer is back, and the 429s the
    workers meet narrow it (when the model's limits are adaptive). Blocks the calling thread
    until every item has an answer; the callbacks run in this thread.
    """
    if workers < 1 or concurrency < 1:
        raise ValueError("workers and concurrency must be at least 1")
    results: list[Completion | None] = [None] * len(items)
    pending: deque[int] = deque(range(len(items)))
    workers = max(1, min(workers, concurrency, len(items) or 1))
    stats = stats if stats is not None else WorkerStats()
    stats.workers = workers
    started = time.perf_counter()
    context = _context(spec)
    retries = retries or RetryPolicy()
    shares = _shares(concurrency, workers)
    pool, stats.reused = _acquire(context, workers, spec)
    clean = False
    try:
        for number, (worker, share) in enumerate(zip(pool, shares, strict=True)):
            worker.start(
                WorkerJob(
                    spec=spec,
                    concurrency=share,
                    retries=retries,
                    limits=_split_limits(spec.limits, workers),
                    sender=sender,
                    environ={**os.environ, **keys_for(spec.name)},
                    cwd=os.getcwd(),
                    seed=seed * 1000 + number,
                )
            )
        limit = _Limit(gate, spec.limits.adaptive) if gate is not None else None
        _dispatch(pool, items, results, pending, admit, on_result, stats, started, limit)
        for worker in pool:
            if worker.alive:
                with contextlib.suppress(OSError):
                    worker.conn.send(("end", None))
        for worker in pool:
            _finish(worker)
        clean = True
    finally:
        if clean:
            _release(pool)  # back to the pool, or retired if unhealthy
        else:  # interrupted: nobody knows what these are doing; end them
            for worker in pool:
                worker.alive = False
            _release(pool)
    stats.cpu_s = sum(w.cpu_s for w in pool)
    stats.startup_cpu_s = sum(w.startup_cpu_s for w in pool)
    stats.per_worker = [w.answered for w in pool]
    stats.pids = [w.process.pid or 0 for w in pool]
    return [
        r if r is not None else Completion(finish_reason="error", error="no answer")
        for r in results
    ]


def _finish(worker: _Worker) -> None:
    """Wait for a worker's last message of the job (its CPU time) after it was told to end."""
    while worker.alive:
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            worker.alive = False
            return
        if kind == "finished":
            worker.cpu_s = float(payload)
            worker.finished = True
            return


@dataclass(frozen=True)
class _Limit:
    """The run-wide concurrency limit, as the dispatcher holds it for worker processes."""

    gate: AdaptiveGate
    adaptive: bool

    def answered(self, completion: Completion) -> None:
        """A sent item's answer is back: its slot is free; its 429s narrow the limit, a
        success lets it grow back (AIMD, as the in-process path does per attempt)."""
        self.gate.release()
        if self.adaptive:
            for _ in range(completion.rate_limited):
                self.gate.on_rate_limited()
        if completion.error is None:
            self.gate.on_success()


def _dispatch(
    pool: list[_Worker],
    items: Sequence[tuple[int, Request]],
    results: list[Completion | None],
    pending: deque[int],
    admit: Admit | None,
    on_result: OnResult | None,
    stats: WorkerStats,
    started: float,
    limit: _Limit | None,
) -> None:
    remaining = sum(r is None for r in results)
    by_conn = {id(w.conn): w for w in pool}
    waiting_ready = len(pool)

    def settle(position: int, completion: Completion, *, sent: bool) -> None:
        nonlocal remaining
        results[position] = completion
        remaining -= 1
        if sent and limit is not None:
            limit.answered(completion)
        if sent and on_result is not None:
            on_result(items[position][0], completion)

    def fail(worker: _Worker, reason: str) -> None:
        nonlocal waiting_ready
        if not worker.ready:
            waiting_ready -= 1
        worker.alive = False
        for position in sorted(worker.outstanding):
            settle(position, Completion(finish_reason="error", error=reason), sent=True)
        worker.outstanding.clear()
        if not any(w.alive for w in pool):  # nobody left to send the rest
            while pending:
                settle(
                    pending.popleft(), Completion(finish_reason="error", error=reason), sent=False
                )

    while remaining:
        blocked = False  # the endpoint's limit is full: look again shortly
        for worker in pool:
            if not (worker.alive and worker.ready):
                continue
            batch: list[tuple[int, int, Request]] = []
            while pending and len(worker.outstanding) < worker.capacity:
                if limit is not None and not limit.gate.try_acquire():
                    blocked = True
                    break
                position = pending.popleft()
                index, request = items[position]
                answered = admit(index, request) if admit is not None else None
                if answered is not None:
                    if limit is not None:
                        limit.gate.release()  # answered here: nothing holds the slot
                    settle(position, answered, sent=False)
                    continue
                worker.outstanding.add(position)
                batch.append((position, index, request))
            if batch:
                stats.sent += len(batch)
                # A dead worker's samples are failed when its pipe reports EOF below.
                with contextlib.suppress(OSError):
                    worker.conn.send(("items", batch))
        if not remaining:
            break
        # Another step may free a slot of the shared limit: no message would say so.
        for ready in wait([w.conn for w in pool if w.alive], timeout=0.02 if blocked else None):
            worker = by_conn[id(ready)]
            try:
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                worker.process.join(timeout=5)
                fail(worker, f"worker process exited (code {worker.process.exitcode})")
                continue
            if kind == "done":
                for position, completion in payload:
                    worker.outstanding.discard(position)
                    worker.answered += 1
                    settle(position, completion, sent=True)
            elif kind == "ready":
                worker.ready = True
                worker.startup_cpu_s = float(payload)
                waiting_ready -= 1
                if waiting_ready == 0:
                    stats.startup_s = time.perf_counter() - started
            elif kind == "fatal":
                fail(worker, str(payload))
