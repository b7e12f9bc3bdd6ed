"""Throughput of the generation runner against the loopback provider server (not a test).

    python benchmarks/throughput.py [--n 2000] [--latency 0.1] [--concurrency 64]
                                    [--provider openai] [--scale]

Prints, for N requests with a fixed server latency L at concurrency C: the time from the
first to the last request the server saw (plus L for the last answer), the ideal N*L/C and
their ratio, requests/s and peak RSS; then the same N from the response cache; then two
providers side by side (each in its own thread, as the pipeline runs them) against each one
alone. ``--scale`` adds 10,000 samples x 3 models with peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import threading
import time
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


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def provider(name: str, server: ProviderServer) -> Any:
    os.environ["OPENAI_BASE_URL"] = server.url + "/v1"
    os.environ["ANTHROPIC_BASE_URL"] = server.url
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark")
    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-benchmark")
    spec = ModelSpec.model_validate(
        {"name": name, "provider": name, "model": MODELS[name], "price": PRICE}
    )
    return build_provider(spec)


def samples(n: int, tag: str = "") -> list[Sample]:
    return [
        Sample(sample_id=str(i), prompt=f"{tag} question number {i}", references=("x",))
        for i in range(n)
    ]


def run(name: str, server: ProviderServer, items: list[Sample], settings: RunSettings) -> float:
    progress = GenerationProgress(name, len(items), live=False)
    started = time.perf_counter()
    results = asyncio.run(
        run_samples(
            provider(name, server),
            items,
            GenerationParams(max_tokens=16),
            price=PRICE,
            progress=progress,
            settings=settings,
        )
    )
    errors = sum(r.error is not None for r in results)
    if errors:
        print(f"  warning: {errors} errors")
    return time.perf_counter() - started


def server_span(server: ProviderServer, latency: float) -> float:
    seen = [r.received_at for r in server.requests]
    return max(seen) - min(seen) + latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--provider", choices=sorted(MODELS), default="openai")
    parser.add_argument("--scale", action="store_true", help="also 10,000 samples x 3 models")
    args = parser.parse_args()
    import logging

    logging.getLogger("llmbench").setLevel(logging.WARNING)
    n, latency, concurrency = args.n, args.latency, args.concurrency
    ideal = n * latency / concurrency

    with ProviderServer(latency_s=latency) as server, tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp))
        wall = run(
            args.provider, server, samples(n), RunSettings(concurrency=concurrency, cache=cache)
        )
        span = server_span(server, latency)
        print(f"{args.provider}: N={n} L={latency * 1000:.0f}ms C={concurrency}")
        print(f"  server span {span:.2f}s  ideal N*L/C {ideal:.2f}s  ratio {ideal / span:.3f}")
        print(
            f"  wall {wall:.2f}s  {n / wall:.0f} requests/s  peak server in flight "
            f"{server.peak_in_flight}  peak RSS {peak_rss_mib():.0f} MiB"
        )

        server.clear()
        cached = run(
            args.provider, server, samples(n), RunSettings(concurrency=concurrency, cache=cache)
        )
        print(
            f"  cached rerun: wall {cached:.2f}s, {len(server.requests)} requests sent, "
            f"{n / cached:.0f} samples/s, peak RSS {peak_rss_mib():.0f} MiB"
        )

        half = n // 2
        alone: dict[str, float] = {}
        for name in MODELS:
            server.clear()
            alone[name] = run(
                name, server, samples(half, name), RunSettings(concurrency=concurrency)
            )
        server.clear()
        took: dict[str, float] = {}

        def worker(name: str) -> None:
            took[name] = run(
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
            + f"; together {together:.2f}s (sum of alone {sum(alone.values()):.2f}s)"
        )

        if args.scale:
            server.latency_s = 0.0
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
