"""Throughput of the generation path against a loopback API in its own process (not a test).

    python benchmarks/throughput.py [--n 2000] [--latency 0.1] [--concurrency 64]
                                    [--workers 2] [--repeat 3] [--loop uvloop|asyncio]
                                    [--server lean|fake] [--provider openai|anthropic]
                                    [--http-client aiohttp|httpx] [--skip-two] [--scale]

For N requests with a fixed server latency L at concurrency C it prints, per run: the time
from the first to the last request the server saw (plus L for the last answer) against the
ideal N*L/C and their ratio, requests/s, the client's CPU time per request (every client
process: the caller and its workers) and the server's, peak RSS. Two ways are measured:

- ``in-process``: the runner's ``run_samples`` on one event loop in the calling thread (how
  a generate step sends today), on ``--loop`` (uvloop by default);
- ``workers=W``: ``llmbench.runtime.workers.run_in_workers``, the same requests spread over
  W worker processes, each with its own event loop and provider (``--workers 0`` skips it).

Beside them, references with no llmbench code, in one process and in as many as the
generate step uses: the bare official SDK (``client.post`` on uvloop with the aiohttp
transport), the ceiling of any path that sends through the SDK on this machine, and a raw
aiohttp session, as lm-evaluation-harness sends (``--skip-reference`` skips both).

Each way gets a warm-up pass first (imports, connection pool, the workers' fork server: a
once-per-process cost, printed as "cold start"), then ``--repeat`` measured runs and their
median. Then: the same N from the response cache, and two providers (openai and anthropic,
N/2 requests each) alone and together, each in its own thread as the pipeline runs them,
in-process and with one worker process per provider.

Wall-clock ratios need idle cores: on a shared machine other processes' CPU lengthens the
span, while the CPU time per request (time.process_time) barely moves. Read both.

The default server (``benchmarks/lean_server.py``) is raw asyncio HTTP/1.1 with keep-alive
and a fixed reply: its CPU per request is a small fraction of the client's. ``--server fake``
uses the wire-format test double (``tests/fakes/provider_server.py``, starlette + uvicorn).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script, not a test: make llmbench and the fakes importable

from benchmarks.lean_server import LeanServer  # noqa: E402
from llmbench.config import ModelSpec, PriceEntry  # noqa: E402
from llmbench.providers.registry import build_provider  # noqa: E402
from llmbench.runtime import workers  # noqa: E402
from llmbench.runtime.cache import ResponseCache, cache_key  # noqa: E402
from llmbench.runtime.progress import GenerationProgress  # noqa: E402
from llmbench.runtime.runner import RunSettings, generate, run_samples  # noqa: E402
from llmbench.types import Completion, GenerationParams, Request, Sample  # noqa: E402

PRICE = PriceEntry(input_per_1m=0.15, output_per_1m=0.6, source="benchmark", date="-")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-haiku-20240307"}
OPTIONS: dict[str, Any] = {}  # the providers' options (--http-client)
PARAMS = GenerationParams(max_tokens=16)


class Server(Protocol):
    url: str

    def clear(self) -> None: ...
    def set_latency(self, latency: float) -> None: ...
    def stats(self) -> tuple[int, float, int, float]: ...
    def close(self) -> None: ...


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- the starlette fake, if asked


def _serve_fake(latency: float, conn: Connection) -> None:
    """The child process: a ProviderServer that answers the parent's commands over a pipe."""
    from tests.fakes.provider_server import ProviderServer

    with ProviderServer(latency_s=latency) as server:
        conn.send(server.url)
        cpu_at_clear = time.process_time()
        while True:
            command, argument = conn.recv()
            if command == "stop":
                return
            if command == "clear":
                server.clear()
                cpu_at_clear = time.process_time()
                conn.send(None)
            elif command == "latency":
                server.latency_s = argument
                conn.send(None)
            elif command == "stats":
                seen = [r.received_at for r in server.requests]
                span = max(seen) - min(seen) if seen else 0.0
                cpu = time.process_time() - cpu_at_clear
                conn.send((len(seen), span, server.peak_in_flight, cpu))


class FakeServer(LeanServer):
    """The wire-format test double in a child process, with the lean server's handle."""

    def __init__(self, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_fake, args=(latency, child), daemon=True)
        self._process.start()
        self.url = self._conn.recv()


# ---------------------------------------------------------------- one measured run


def spec_for(name: str, server: Server) -> ModelSpec:
    os.environ["OPENAI_BASE_URL"] = server.url + "/v1"
    os.environ["ANTHROPIC_BASE_URL"] = server.url
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark")
    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-benchmark")
    return ModelSpec.model_validate(
        {"name": name, "provider": name, "model": MODELS[name], "price": PRICE, "options": OPTIONS}
    )


def samples(n: int, tag: str = "") -> list[Sample]:
    return [
        Sample(sample_id=str(i), prompt=f"{tag} question number {i}", references=("x",))
        for i in range(n)
    ]


@dataclass
class Run:
    wall_s: float
    client_cpu_s: float  # this process and its workers, once they had their providers
    results: list[Completion]
    startup_s: float = 0.0  # workers: from the call until all had their providers
    startup_cpu_s: float = 0.0  # workers: their CPU until then (fork, provider, SSL context)


def in_process(
    name: str,
    server: Server,
    items: list[Sample],
    concurrency: int,
    loop: str,
    cache: ResponseCache | None = None,
) -> Run:
    """The runner on one event loop in this thread; the provider is built before the clock."""
    provider = build_provider(spec_for(name, server))
    progress = GenerationProgress(name, len(items), live=False)
    coroutine = run_samples(
        provider,
        items,
        PARAMS,
        price=PRICE,
        progress=progress,
        settings=RunSettings(concurrency=concurrency, cache=cache),
    )
    started, cpu = time.perf_counter(), time.process_time()
    results = workers.run_coroutine(coroutine) if loop == "uvloop" else asyncio.run(coroutine)
    return Run(time.perf_counter() - started, time.process_time() - cpu, results)


def in_workers(name: str, server: Server, items: list[Sample], concurrency: int, count: int) -> Run:
    """The same requests through run_in_workers; client CPU = this process + the workers'."""
    spec = spec_for(name, server)
    stats = workers.WorkerStats()
    started, cpu = time.perf_counter(), time.process_time()
    requests = [(i, sample.request(PARAMS)) for i, sample in enumerate(items)]
    results = workers.run_in_workers(
        spec, requests, workers=count, concurrency=concurrency, stats=stats
    )
    own = time.process_time() - cpu
    return Run(
        time.perf_counter() - started,
        own + stats.cpu_s - stats.startup_cpu_s,
        results,
        startup_s=stats.startup_s,
        startup_cpu_s=stats.startup_cpu_s,
    )


def _pool_cpu_s() -> float:
    """CPU seconds so far of the worker processes waiting in this process's pool (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for worker in list(workers._IDLE):
        try:
            fields = Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def as_step(name: str, server: Server, items: list[Sample], concurrency: int) -> Run:
    """The generate step's own path (``runner.generate``): in-process or from worker
    processes as ``worker_count`` decides, cache-less; client CPU = this process + its
    pooled workers' (after a warm-up the same workers serve every run)."""
    spec = spec_for(name, server)
    settings = RunSettings(concurrency=concurrency)
    before = _pool_cpu_s()
    started, cpu = time.perf_counter(), time.process_time()
    results = generate(spec, items, PARAMS, settings=settings, label=name)
    own = time.process_time() - cpu
    return Run(time.perf_counter() - started, own + _pool_cpu_s() - before, results)


def in_workers_cached(
    name: str,
    server: Server,
    items: list[Sample],
    concurrency: int,
    count: int,
    cache: ResponseCache,
) -> tuple[Run, int]:
    """run_in_workers wired as a generate step would wire it: the response cache and progress
    stay in this process (admit: a cache hit is answered here, nothing is sent; on_result:
    store and count). Returns the run and how many samples went to the workers."""
    spec = spec_for(name, server)
    identity = build_provider(spec).cache_identity()  # what the runner keys answers on
    progress = GenerationProgress(name, len(items), live=False)
    keys: dict[int, str] = {}

    def admit(index: int, request: Request) -> Completion | None:
        keys[index] = cache_key(identity, request, index)
        hit = cache.get(keys[index])
        if hit is None:
            return None
        progress.advance(error=False, cost=0.0, cached=True)
        return hit.model_copy(update={"cached": True, "attempts": 0})

    def on_result(index: int, completion: Completion) -> None:
        if completion.error is None:
            cache.put(keys[index], completion)
        progress.advance(error=completion.error is not None, cost=0.0)

    stats = workers.WorkerStats()
    started, cpu = time.perf_counter(), time.process_time()
    results = workers.run_in_workers(
        spec,
        [(i, sample.request(PARAMS)) for i, sample in enumerate(items)],
        workers=count,
        concurrency=concurrency,
        admit=admit,
        on_result=on_result,
        stats=stats,
    )
    run = Run(time.perf_counter() - started, time.process_time() - cpu + stats.cpu_s, results)
    return run, stats.sent


def check(run: Run, n: int) -> None:
    errors = [r.error for r in run.results if r.error is not None]
    if errors:
        print(f"    warning: {len(errors)} errors, e.g. {errors[0]}")
    assert len(run.results) == n


@dataclass
class Figures:
    ratio: float
    span_s: float
    requests_per_s: float
    client_ms: float
    server_ms: float
    wall_s: float
    peak: int
    startup_s: float
    startup_cpu_s: float


def measure(
    server: Server, n: int, latency: float, concurrency: int, go: Callable[[], Run]
) -> Figures:
    server.clear()
    run = go()
    check(run, n)
    return figures(server, n, latency, concurrency, run)


def figures(server: Server, n: int, latency: float, concurrency: int, run: Run) -> Figures:
    """``run``'s figures, with what the server saw since it was last cleared."""
    seen, span, peak, server_cpu = server.stats()
    span += latency  # the last request's answer
    return Figures(
        ratio=n * latency / concurrency / span,
        span_s=span,
        requests_per_s=seen / span,
        client_ms=run.client_cpu_s / n * 1000,
        server_ms=server_cpu / max(seen, 1) * 1000,
        wall_s=run.wall_s,
        peak=peak,
        startup_s=run.startup_s,
        startup_cpu_s=run.startup_cpu_s,
    )


def report(label: str, ideal: float, runs: list[Figures]) -> Figures:
    for index, f in enumerate(runs, 1):
        print(
            f"  {label} run {index}: span {f.span_s:.2f}s vs ideal {ideal:.2f}s: "
            f"ratio {f.ratio:.3f}, {f.requests_per_s:.0f} req/s, "
            f"CPU per request: client {f.client_ms:.2f} ms, server {f.server_ms:.3f} ms; "
            f"peak in flight {f.peak}"
            + (
                f"; workers' startup {f.startup_s:.2f}s wall, {f.startup_cpu_s:.2f}s CPU"
                if f.startup_s
                else ""
            )
        )
    median = Figures(
        *(statistics.median(getattr(f, k) for f in runs) for k in Figures.__dataclass_fields__)
    )
    print(
        f"  {label} MEDIAN of {len(runs)}: ratio {median.ratio:.3f}  client CPU "
        f"{median.client_ms:.2f} ms/request  server CPU {median.server_ms:.3f} ms/request"
    )
    return median


# ---------------------------------------------------------------- the SDK's own ceiling


def _bare_child(url: str, n: int, concurrency: int, tag: str, sender: str, queue: Any) -> None:
    """A bare loop, no llmbench: ``sdk`` is the official SDK (``client.post`` with the body
    serialised once, uvloop, the aiohttp transport): what the SDK alone costs and reaches;
    ``aiohttp`` posts with a plain aiohttp session, as lm-evaluation-harness sends."""
    import json

    import aiohttp
    import openai
    import uvloop

    def body(i: int) -> bytes:
        message = {"role": "user", "content": f"{tag} {i}"}
        return json.dumps(
            {"model": MODELS["openai"], "messages": [message], "max_tokens": 16}
        ).encode()

    async def main() -> None:
        client = openai.AsyncOpenAI(
            api_key="sk-benchmark",
            base_url=url + "/v1",
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
        session = aiohttp.ClientSession()
        headers = {"content-type": "application/json", "authorization": "Bearer sk-benchmark"}
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                if sender == "aiohttp":
                    async with session.post(
                        url + "/v1/chat/completions", data=body(i), headers=headers
                    ) as response:
                        await response.json()
                    return
                raw = await client.post(
                    "/chat/completions",
                    cast_to=bytes,
                    content=body(i),
                    options={"security": {"bearer_auth": True}},
                )
                json.loads(raw)

        await asyncio.gather(*(one(-1 - i) for i in range(concurrency)))  # warm the pool
        queue.put("ready")
        await asyncio.sleep(0.5)  # every process warm before the server's clock starts
        cpu = time.process_time()
        await asyncio.gather(*(one(i) for i in range(n)))
        queue.put(time.process_time() - cpu)
        await client.close()
        await session.close()

    uvloop.run(main())


def bare_loop(
    server: Server, n: int, latency: float, concurrency: int, processes: int, sender: str
) -> Figures:
    """N requests through a bare loop (``_bare_child``) split over ``processes`` processes."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    tag = f"bare-{processes}-{time.perf_counter()}"
    children = [
        context.Process(
            target=_bare_child,
            args=(
                server.url,
                n // processes,
                concurrency // processes,
                f"{tag}-{k}",
                sender,
                queue,
            ),
        )
        for k in range(processes)
    ]
    for child in children:
        child.start()
    for _ in children:
        queue.get()
    server.clear()
    started = time.perf_counter()
    cpu = sum(queue.get() for _ in children)
    wall = time.perf_counter() - started
    for child in children:
        child.join()
    sent = n // processes * processes
    return figures(server, sent, latency, concurrency, Run(wall, cpu, []))


# ---------------------------------------------------------------- two providers at once


def together(jobs: dict[str, Callable[[], Run]]) -> tuple[float, dict[str, float]]:
    """Each job in its own thread, as ZenML runs the steps of a dynamic pipeline."""
    took: dict[str, float] = {}
    failures: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            took[name] = jobs[name]().wall_s
        except BaseException as exc:  # surface it in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in jobs]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return time.perf_counter() - started, took


def two_providers(server: Server, half: int, args: argparse.Namespace) -> None:
    concurrency = args.concurrency
    ways: dict[str, Callable[[str, str], Run]] = {
        "in-process": lambda name, tag: in_process(
            name, server, samples(half, tag), concurrency, args.loop
        ),
        "1 worker each": lambda name, tag: in_workers(
            name, server, samples(half, tag), concurrency, 1
        ),
        "generate steps": lambda name, tag: as_step(name, server, samples(half, tag), concurrency),
    }
    ideal = half * args.latency / concurrency
    for way, go in ways.items():
        for name in MODELS:  # warm-up: imports and, for workers, the fork server
            go(name, f"warm-{way}-{name}")
        alone_runs: dict[str, list[float]] = {name: [] for name in MODELS}
        together_runs: list[float] = []
        for repeat in range(args.repeat):
            for name in MODELS:
                alone_runs[name].append(go(name, f"alone-{repeat}").wall_s)
            tag = f"two-{repeat}"
            wall, _ = together(
                {name: lambda n=name, g=go, t=tag: g(n, t) for name in MODELS}  # type: ignore[misc]
            )
            together_runs.append(wall)
        alone = {name: statistics.median(v) for name, v in alone_runs.items()}
        both = statistics.median(together_runs)
        slowest = max(alone.values())
        print(
            f"two providers, {half} requests each, {way} (median of {args.repeat}): alone "
            + ", ".join(f"{k} {v:.2f}s" for k, v in alone.items())
            + f"; together {both:.2f}s = {both / slowest:.2f}x the slower alone "
            f"(sum of alone {sum(alone.values()):.2f}s, ideal {ideal:.2f}s); "
            f"together runs: {', '.join(f'{t:.2f}' for t in together_runs)}"
        )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="0: skip the worker runs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--server", choices=["lean", "fake"], default="lean")
    parser.add_argument("--provider", choices=sorted(MODELS), default="openai")
    parser.add_argument("--http-client", choices=["aiohttp", "httpx"], help="the SDK transport")
    parser.add_argument("--skip-two", action="store_true", help="skip the two-provider runs")
    parser.add_argument(
        "--skip-reference", action="store_true", help="skip the bare-SDK reference loop"
    )
    parser.add_argument("--scale", action="store_true", help="also 10,000 samples x 3 models")
    args = parser.parse_args()
    logging.getLogger("llmbench").setLevel(logging.WARNING)
    n, latency, concurrency = args.n, args.latency, args.concurrency
    if args.http_client:
        OPTIONS["http_client"] = args.http_client
    ideal = n * latency / concurrency
    started = time.perf_counter()
    server: Server = LeanServer(latency) if args.server == "lean" else FakeServer(latency)
    print(f"server: {args.server}, started in {time.perf_counter() - started:.2f}s")
    workers.prepare([spec_for(name, server) for name in MODELS])
    transport = OPTIONS.get("http_client", "aiohttp")
    print(
        f"{args.provider} ({transport}, {args.loop}): N={n} L={latency * 1000:.0f}ms "
        f"C={concurrency}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ways: dict[str, Callable[[list[Sample]], Run]] = {
                "in-process": lambda items: in_process(
                    args.provider, server, items, concurrency, args.loop
                ),
            }
            if args.workers:
                ways[f"workers={args.workers}"] = lambda items: in_workers(
                    args.provider, server, items, concurrency, args.workers
                )
            count = workers.worker_count(spec_for(args.provider, server), n, concurrency)
            ways[f"generate step ({count} workers)"] = lambda items: as_step(
                args.provider, server, items, concurrency
            )
            for label, go in ways.items():
                cold = time.perf_counter()
                go(samples(concurrency, f"warm-{label}"))
                print(f"  {label} cold start: {time.perf_counter() - cold:.2f}s for {concurrency}")
                runs = [
                    measure(
                        server,
                        n,
                        latency,
                        concurrency,
                        lambda g=go, t=f"{label}-{repeat}": g(samples(n, t)),  # type: ignore[misc]
                    )
                    for repeat in range(args.repeat)
                ]
                report(label, ideal, runs)

            if args.provider == "openai" and not args.skip_reference:
                for sender, processes in itertools.product(
                    ("sdk", "aiohttp"), sorted({1, count or 1})
                ):
                    runs = [
                        bare_loop(server, n, latency, concurrency, processes, sender)
                        for _ in range(args.repeat)
                    ]
                    name = "the bare SDK" if sender == "sdk" else "raw aiohttp (lm-eval's way)"
                    report(f"reference: {name}, {processes} process(es)", ideal, runs)

            cache = ResponseCache(Path(tmp))
            in_process(args.provider, server, samples(n, "cached"), concurrency, args.loop, cache)
            server.clear()
            cached = in_process(
                args.provider, server, samples(n, "cached"), concurrency, args.loop, cache
            )
            print(
                f"  cached rerun: wall {cached.wall_s:.2f}s, {server.stats()[0]} requests sent, "
                f"{n / cached.wall_s:.0f} samples/s, peak RSS {peak_rss_mib():.0f} MiB"
            )

            if args.workers:
                cache = ResponseCache(Path(tmp) / "workers")
                for attempt in ("first", "again"):
                    server.clear()
                    run, sent = in_workers_cached(
                        args.provider,
                        server,
                        samples(n, "wcached"),
                        concurrency,
                        args.workers,
                        cache,
                    )
                    check(run, n)
                    print(
                        f"  workers={args.workers} with the response cache in this process, "
                        f"{attempt}: wall {run.wall_s:.2f}s, {sent} sent to workers, "
                        f"{server.stats()[0]} requests at the server, "
                        f"{sum(r.cached for r in run.results)} cache hits"
                    )

            if not args.skip_two:
                two_providers(server, n // 2, args)

            if args.scale:
                server.set_latency(0.0)
                server.clear()
                began = time.perf_counter()
                for index in range(3):
                    in_process(
                        args.provider,
                        server,
                        samples(10_000, f"scale{index}"),
                        concurrency,
                        args.loop,
                    )
                print(
                    f"scale: 10,000 samples x 3 models in {time.perf_counter() - began:.1f}s, "
                    f"peak RSS {peak_rss_mib():.0f} MiB"
                )
    finally:
        server.close()


if __name__ == "__main__":
    main()
