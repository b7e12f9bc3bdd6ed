"""llmbench's local engines against a bare llama-server loop, on the same prompts (not a test).

    python benchmarks/local_engine.py [--model smollm2-135m ...] [--limit 20] [--repeat 2]
                                      [--config bench.yaml] [--threads N] [--skip-in-process]

Default: every llamacpp model of the config (bench.yaml's: the offline default), one after
another, each with its own table, then their summed times: the offline default's generation
time against llama-server's on the same prompts, as a ratio of times and of tokens/s.

On the prompts of the config's tasks (the first ``--limit`` of each, with each task's answer
length and stop sequences), one task after another, it times:

- ``bare llama-server``: llama-server started as a user starts it (``-m``, ``-t``, ``-c``;
  its own defaults otherwise: several slots, prompt-prefix reuse) and a loop of raw HTTP
  requests (httpx, no SDK, not streamed), one at a time;
- ``bare, llmbench's server``: the same loop against the server llmbench's engine started
  (one slot, ``cache_prompt: false``): what the settings cost, apart from the client;
- ``llmbench, engine: server``: the provider through the runner (``run_samples`` per task, as
  a generate step sends it: the openai SDK, streamed, the process-wide turn, Completion rows);
- ``llmbench, engine: in_process``: the in-process provider the same way
  (``--skip-in-process`` skips it);
- ``--streamed``: also ``openai_compatible`` on llmbench's server, streamed through the SDK
  (what ``engine: server`` did before it read the time to first token from the server's
  ``timings``), to show what reading a stream costs next to the rest.

Every contender runs with the same thread count (``--threads``, default the server engine's).

Each task's block runs back to back for every contender, the order rotating per repetition,
so what other processes do to one is done to the others next to it. Time is the wall time of
the blocks; tokens/s is output tokens over it; the ratio is against the bare loop on
llama-server's defaults and against the bare loop on llmbench's server (the same server: what
llmbench's client, runner and streaming cost; issue 19's target: >= 0.9). CPU ms/request is
this process's CPU time per request: the client's, where the model runs in a server (the
load-independent part of what a client costs; in-process it includes the model's own work),
which on a machine with no core to spare is taken from the server's threads. Answers are compared
with the bare loop on llmbench's server (the same server settings: they must be equal).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script, not a test: make llmbench importable
sys.path.insert(0, str(ROOT / "benchmarks"))  # and its sibling's prompts

from local_model import Task, tasks_for  # noqa: E402

from llmbench.config import BenchConfig, ModelSpec, load  # noqa: E402
from llmbench.environment import configure_environment  # noqa: E402
from llmbench.providers import llama_server, llamacpp  # noqa: E402
from llmbench.providers.base import Provider, completion_prompt  # noqa: E402
from llmbench.providers.llamacpp import LlamaCppOptions, LlamaCppProvider  # noqa: E402
from llmbench.providers.openai import OpenAICompatibleProvider  # noqa: E402
from llmbench.runtime.progress import GenerationProgress  # noqa: E402
from llmbench.runtime.runner import RunSettings, run_samples  # noqa: E402


@dataclass
class Tally:
    seconds: float = 0.0
    cpu: float = 0.0  # this process's CPU time: the client's, where the model is a server
    requests: int = 0
    tokens: int = 0
    texts: list[str] = field(default_factory=list)  # the first repetition's answers
    ttft: list[float] = field(default_factory=list)

    def rate(self) -> float:
        return self.tokens / self.seconds


Answer = tuple[str, int, float | None]  # text, output tokens, time to first token
Contender = Callable[[Task], list[Answer]]


def bare_loop(base_url: str, mode: str, extra: dict[str, Any]) -> Contender:
    """Raw HTTP to a llama-server, one request at a time, as a user's script would send."""
    client = httpx.Client(base_url=f"{base_url}/v1", timeout=600)

    def run(task: Task) -> list[Answer]:
        out: list[Answer] = []
        p = task.params
        for sample in task.samples:
            body: dict[str, Any] = {
                "max_tokens": p.max_tokens,
                "temperature": p.temperature,
                "stop": list(p.stop),
                "seed": p.seed,
                **extra,
            }
            if p.top_p is not None:
                body["top_p"] = p.top_p
            messages = sample.messages()
            if mode == "chat":
                body["messages"] = [{"role": m.role, "content": m.content} for m in messages]
                reply = client.post("/chat/completions", json=body).json()
                text = reply["choices"][0]["message"]["content"] or ""
            else:
                body["prompt"] = completion_prompt(messages)
                reply = client.post("/completions", json=body).json()
                text = reply["choices"][0]["text"]
            out.append((text, reply["usage"]["completion_tokens"], None))
        return out

    return run


def through_runner(provider: Provider | Callable[[], Provider]) -> Contender:
    """The provider as a generate step drives it: one ``run_samples`` per task (a factory:
    a provider made per task, for one whose client ends with the task's event loop)."""

    def run(task: Task) -> list[Answer]:
        p = provider() if callable(provider) else provider
        price = p.spec.price
        assert price is not None  # the config's price table prices every model
        completions = asyncio.run(
            run_samples(
                p,
                task.samples,
                task.params,
                price=price,
                progress=GenerationProgress("benchmark", len(task.samples), live=False),
                settings=RunSettings(concurrency=1),
            )
        )
        for completion in completions:
            assert completion.error is None, completion.error
        return [(c.text, c.output_tokens, c.ttft_s) for c in completions]

    return run


def streamed_client(server: LlamaCppProvider, base_url: str) -> Provider:
    """``openai_compatible`` on the engine's server, streamed, with the engine's request
    fields: the engine's client before it stopped streaming."""
    assert server._server is not None
    return OpenAICompatibleProvider(
        ModelSpec.model_validate(
            {
                "name": server.spec.name,
                "provider": "openai_compatible",
                "model": server.spec.model,
                "mode": server.mode,
                "params": server.spec.params,
                "price": server.spec.price,
                "base_url": f"{base_url}/v1",
                "stream": True,
                "options": {"reasoning": False, "extra_body": server._server.extra_body},
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "bench.yaml")
    parser.add_argument(
        "--model",
        action="append",
        help="a model name in the config (repeatable); default: every llamacpp model in it",
    )
    parser.add_argument("--limit", type=int, default=20, help="prompts per task")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, help="n_threads of every contender")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--streamed", action="store_true", help="add the streamed client")
    args = parser.parse_args()
    configure_environment()
    config = load(args.config)
    names = args.model or [m.name for m in config.models if m.provider == "llamacpp"]
    totals: dict[str, Tally] = {}
    for name in names:
        base = next((m for m in config.models if m.name == name), None)
        if base is None:
            sys.exit(f"--model {name}: no such model in {args.config}")
        for contender, tally in benchmark_model(config, base, args).items():
            total = totals.setdefault(contender, Tally())
            total.seconds += tally.seconds
            total.tokens += tally.tokens
            total.requests += tally.requests
    if len(names) > 1:
        reference = totals["bare llama-server"]
        print(
            f"all {len(names)} models ({', '.join(names)}): time and tokens/s against the bare loop"
        )
        print("  on llama-server's defaults (issue 19's target: >= 0.9)")
        for contender, total in totals.items():
            print(
                f"  {contender:30s} {total.seconds:9.1f} s  time ratio "
                f"{reference.seconds / total.seconds:6.3f}  tokens/s ratio "
                f"{total.rate() / reference.rate():6.3f}"
            )


def benchmark_model(
    config: BenchConfig, base: ModelSpec, args: argparse.Namespace
) -> dict[str, Tally]:
    """One model's contenders on the config's prompts; prints its table, returns its tallies."""
    threads = args.threads or LlamaCppOptions.model_validate(base.options).threads()

    def engine(name: str) -> LlamaCppProvider:
        options = {**base.options, "engine": name, "n_threads": threads}
        options.pop("prefix_cache", None)  # each engine's default
        spec = ModelSpec.model_validate({**base.model_dump(), "options": options})
        return LlamaCppProvider(spec)

    server = engine("server")
    tasks = tasks_for(args.config, base, args.limit, config.execution.seed)
    n = sum(len(t.samples) for t in tasks)
    print(
        f"{base.name} ({base.model}, {server.mode}): {n} prompts from {len(tasks)} tasks, "
        f"{threads} threads, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    through_runner(server)(Task(tasks[0].name, tasks[0].samples[:1], tasks[0].params))  # start
    assert server._server is not None and server._server.server is not None
    ours = server._server.server
    settings = ours.settings
    user = llama_server.LlamaServer(
        settings,
        arguments=[
            *("--model", str(settings.model)),
            *("--threads", str(settings.threads)),
            *("--ctx-size", str(settings.n_ctx)),
        ],
    )
    user.start()
    print(f"llama-server: {ours.binary}; a user's: {' '.join(user.arguments)}")
    contenders: dict[str, Contender] = {
        "bare llama-server": bare_loop(user.base_url, server.mode, {}),
        "bare, llmbench's server": bare_loop(ours.base_url, server.mode, server._server.extra_body),
        "llmbench, engine: server": through_runner(server),
    }
    if args.streamed:
        contenders["openai_compatible, streamed"] = through_runner(
            lambda: streamed_client(server, ours.base_url)
        )
    if not args.skip_in_process:
        contenders["llmbench, engine: in_process"] = through_runner(engine("in_process"))
    try:
        for contender in contenders.values():  # warm-up: first calls, model loads
            contender(Task(tasks[0].name, tasks[0].samples[:1], tasks[0].params))
        tallies = {name: Tally() for name in contenders}
        names = list(contenders)
        for rep in range(args.repeat):
            for index, task in enumerate(tasks):
                shift = (rep + index) % len(names)
                for name in names[shift:] + names[:shift]:
                    started, cpu = time.perf_counter(), time.process_time()
                    answers = contenders[name](task)
                    tally = tallies[name]
                    tally.seconds += time.perf_counter() - started
                    tally.cpu += time.process_time() - cpu
                    tally.requests += len(answers)
                    tally.tokens += sum(tokens for _, tokens, _ in answers)
                    tally.ttft += [t for _, _, t in answers if t is not None]
                    if rep == 0:
                        tally.texts += [text for text, _, _ in answers]
    finally:
        user.stop()
        llama_server.stop_servers()
    reference = tallies["bare llama-server"].rate()
    same_server = tallies["bare, llmbench's server"].rate()
    bare_seconds = tallies["bare llama-server"].seconds
    print(f"{args.repeat} x {n} prompts, one request at a time; ratios of tokens/s and of time:")
    print(
        f"  {'':30s} {'time (s)':>9s} {'out tokens':>11s} {'tokens/s':>9s} "
        f"{'/ bare':>7s} {'/ bare on llmbench server':>26s} {'time: bare / this':>18s} "
        f"{'CPU ms/request':>15s}"
    )
    for name, tally in tallies.items():
        print(
            f"  {name:30s} {tally.seconds:9.1f} {tally.tokens:11d} {tally.rate():9.1f} "
            f"{tally.rate() / reference:7.3f} {tally.rate() / same_server:26.3f} "
            f"{bare_seconds / tally.seconds:18.3f} {tally.cpu / tally.requests * 1000:15.1f}"
        )
    same = tallies["bare, llmbench's server"].texts
    for name in names:
        equal = sum(a == b for a, b in zip(tallies[name].texts, same, strict=True))
        print(f"  answers of {name!r} equal to the bare loop's on llmbench's server: {equal}/{n}")
    ttft = tallies["llmbench, engine: server"].ttft
    print(f"  engine: server, time to first token: median {statistics.median(ttft) * 1000:.0f} ms")
    # The in-process models, freed now: at interpreter exit llama-cpp-python's destructor runs
    # after the module globals it calls are gone, and prints a TypeError.
    for llm in llamacpp._LOADED.values():
        llm.close()
    llamacpp._LOADED.clear()
    return tallies
    llamacpp._LOADED.clear()


if __name__ == "__main__":
    main()
