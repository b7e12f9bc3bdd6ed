"""Throughput of the generation runner against the loopback provider server (not a test).

    python benchmarks/throughput.py [--n 2000] [--latency 0.1] [--concurrency 64]
                                    [--provider openai] [--http-client aiohttp] [--scale]

Prints, for N requests with a fixed server latency L at concurrency C: the time from the
first to the last request the server saw (plus L for the last answer), the ideal N*L/C and
their ratio, requests/s, client and server CPU per request and peak RSS; then the same N from
the response cache; then two providers side by side (each in its own thread, as the pipeline
runs them) against each one alone. ``--scale`` adds 10,000 samples x 3 models with peak RSS.

The fake server runs in a process of its own (``spawn``), like a real API on another machine:
in a thread here its CPU would share this process's GIL with the client being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script, not a test: make llmbench and the fake importable

from llmbench.config import ModelSpec, PriceEntry  # noqa: E402
from llmbench.providers.registry import build_provider  # noqa: E402
from llmbench.runtime.cache import ResponseCache  # noqa: E402
from llmbench.runtime.progress import GenerationProgress  # noqa: E402
from llmbench.runtime.runner import RunSettings, run_samples  # noqa: E402
from llmbench.types import GenerationParams, Sample  # noqa: E402
from tests.fakes.provider_server import ProviderServer  # noqa: E402

PRICE = PriceEntry(input_per_1m=0.15, output_per_1m=0.6, source="benchmark", date="-")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-haiku-20240307"}
OPTIONS: dict[str, Any] = {}  # the providers' options (--http-client)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _serve(latency: float, conn: Connection) -> None:
    """The child process: a ProviderServer that answers the parent's commands over a pipe."""
    with ProviderServer(latency_s=latency) as server:
        conn.send(server.url)
        while True:
            command, argument = conn.recv()
            if command == "stop":
                return
            if command == "clear":
                server.clear()
                conn.send(time.process_time())
            elif command == "latency":
                server.latency_s = argument
                conn.send(None)
            elif command == "stats":
                seen = [r.received_at for r in server.requests]
                span = max(seen) - min(seen) if seen else 0.0
                conn.send((len(seen), span, server.peak_in_flight, time.process_time()))


class ServerProcess:
    """A ProviderServer in a child process; the client here sees only its URL and its figures."""

    def __init__(self, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(latency, child), daemon=True)
        self._process.start()
        self.url: str = self._conn.recv()
        self._cpu_at_clear = 0.0

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        return self._conn.recv()

    def clear(self) -> None:
        self._cpu_at_clear = self._ask("clear")

    def set_latency(self, latency: float) -> None:
        self._ask("latency", latency)

    def stats(self) -> tuple[int, float, int, float]:
        """Requests seen, first-to-last arrival span, peak in flight, server CPU s since clear."""
        count, span, peak, cpu = self._ask("stats")
        return count, span, peak, cpu - self._cpu_at_clear

    def close(self) -> None:
        self._conn.send(("stop", None))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def provider(name: str, server: ServerProcess) -> Any:
    os.environ["OPENAI_BASE_URL"] = server.url + "/v1"
    os.environ["ANTHROPIC_BASE_URL"] = server.url
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark")
    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-benchmark")
    spec = ModelSpec.model_validate(
        {"name": name, "provider": name, "model": MODELS[name], "price": PRICE, "options": OPTIONS}
    )
    return build_provider(spec)


def samples(n: int, tag: str = "") -> list[Sample]:
    return [
        Sample(sample_id=str(i), prompt=f"{tag} question number {i}", references=("x",))
        for i in range(n)
    ]


def run(
    name: str, server: ServerProcess, items: list[Sample], settings: RunSettings
) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all threads) of one run_samples.

    The provider is built before the clocks start: the first build imports its SDK (seconds
    for anthropic), a one-time cost that is not throughput.
    """
    progress = GenerationProgress(name, len(items), live=False)
    client = provider(name, server)
    started, cpu = time.perf_counter(), time.process_time()
    results = asyncio.run(
        run_samples(
            client,
            items,
            GenerationParams(max_tokens=16),
            price=PRICE,
            progress=progress,
            settings=settings,
        )
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    errors = sum(r.error is not None for r in results)
    if errors:
        print(f"  warning: {errors} errors")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--provider", choices=sorted(MODELS), default="openai")
    parser.add_argument("--http-client", choices=["aiohttp", "httpx"], help="the SDK transport")
    parser.add_argument("--scale", action="store_true", help="also 10,000 samples x 3 models")
    args = parser.parse_args()
    import logging

    logging.getLogger("llmbench").setLevel(logging.WARNING)
    n, latency, concurrency = args.n, args.latency, args.concurrency
    if args.http_client:
        OPTIONS["http_client"] = args.http_client
    ideal = n * latency / concurrency

    with ServerProcess(latency) as server, tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp))
        server.clear()
        wall, cpu = run(
            args.provider, server, samples(n), RunSettings(concurrency=concurrency, cache=cache)
        )
        seen, span, peak, server_cpu = server.stats()
        span += latency  # the last request's answer
        transport = OPTIONS.get("http_client", "default")
        print(f"{args.provider} ({transport}): N={n} L={latency * 1000:.0f}ms C={concurrency}")
        print(f"  server span {span:.2f}s  ideal N*L/C {ideal:.2f}s  ratio {ideal / span:.3f}")
        print(
            f"  wall {wall:.2f}s  {n / wall:.0f} requests/s  peak server in flight {peak}  "
            f"peak RSS {peak_rss_mib():.0f} MiB"
        )
        print(
            f"  CPU per request: client {cpu / n * 1000:.2f} ms, "
            f"server {server_cpu / max(seen, 1) * 1000:.2f} ms"
        )

        server.clear()
        cached, _ = run(
            args.provider, server, samples(n), RunSettings(concurrency=concurrency, cache=cache)
        )
        print(
            f"  cached rerun: wall {cached:.2f}s, {server.stats()[0]} requests sent, "
            f"{n / cached:.0f} samples/s, peak RSS {peak_rss_mib():.0f} MiB"
        )

        half = n // 2
        alone: dict[str, float] = {}
        for name in MODELS:
            server.clear()
            alone[name], _ = run(
                name, server, samples(half, name), RunSettings(concurrency=concurrency)
            )
        server.clear()
        took: dict[str, float] = {}

        def worker(name: str) -> None:
            took[name], _ = run(
                name, server, samples(half, name + "-2"), RunSettings(concurrency=concurrency)
            )

        started = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(name,)) for name in MODELS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        together = time.perf_counter() - started
        print(
            f"two providers, {half} requests each: alone "
            + ", ".join(f"{k} {v:.2f}s" for k, v in alone.items())
            + f"; together {together:.2f}s (sum of alone {sum(alone.values()):.2f}s, "
            f"ideal {half * latency / concurrency:.2f}s)"
        )

        if args.scale:
            server.set_latency(0.0)
            server.clear()
            started = time.perf_counter()
            for index in range(3):
                run(
                    args.provider,
                    server,
                    samples(10_000, f"scale{index}"),
                    RunSettings(concurrency=concurrency),
                )
            print(
                f"scale: 10,000 samples x 3 models in {time.perf_counter() - started:.1f}s, "
                f"peak RSS {peak_rss_mib():.0f} MiB"
            )


if __name__ == "__main__":
    main()
