"""The embedded llama.cpp model against a bare llama-cpp-python loop (not a test).

    python benchmarks/local_model.py [--model smollm2-135m] [--limit 20] [--repeat 3]
                                     [--config bench.yaml] [--n-threads-batch N] [--no-zenml]
                                     [--bare-llama-defaults] [--skip-before] [--skip-any]

On the prompts of the config's tasks (the first ``--limit`` of each, with each task's
sampling settings) it compares, prompt by prompt:

- ``bare``: a plain ``llama_cpp.Llama`` of its own with the provider's settings (context,
  batch, threads; ``--bare-llama-defaults``: llama-cpp-python's thread defaults) and
  ``create_chat_completion`` (``create_completion`` for a completion-mode model) in a loop,
  as a user would write it: llama-cpp-python reuses whatever prompt prefix the previous call
  left in its KV cache;
- ``llmbench``: the provider, each sample through the runner (``run_samples``: asyncio, the
  worker thread, the lock, the Completion row), with its default ``prefix_cache: lines``;
- then the same against ``prefix_cache: off`` (reset per request, each prompt in one batch:
  the provider before; ``--skip-before`` skips it) and ``prefix_cache: any``
  (llama-cpp-python's reuse, as the bare loop; ``--skip-any``).

Both answer each prompt back to back (which goes first alternates), ``--repeat`` times, so
that what other processes on the machine do to one is done to the other next to it.
Per-request tokens/s is output tokens / the request's generation time (the clock around the
llama.cpp call: the provider's ``latency_s``, the bare loop's own), as a median over requests
and as the median of the per-prompt ratios; "aggregate" is all output tokens / all those
times; "CPU" is output tokens / this process's CPU seconds for the whole calls (runner
included; robust to other processes). The prompt tokens the provider evaluated and kept
from its KV cache are counted, and whether its answers were the same in every repetition.

Then the step's fixed cost: building the provider, loading the model (llama.cpp init), the
GGUF digest (the cache key), the first request's extra time, and saving the step's
completions artifact with ``zenml.save_artifact`` (materializer, metadata, visualisation,
the artifact version in the store) in a throw-away ZenML config (``--no-zenml`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script, not a test: make llmbench importable

from llmbench.config import ModelSpec, load  # noqa: E402
from llmbench.environment import configure_environment  # noqa: E402
from llmbench.providers import llamacpp  # noqa: E402
from llmbench.providers.registry import build_provider  # noqa: E402
from llmbench.runtime.progress import GenerationProgress  # noqa: E402
from llmbench.runtime.runner import RunSettings, request_params, run_samples  # noqa: E402
from llmbench.tables import completions_to_frame  # noqa: E402
from llmbench.tasks.build import build_samples  # noqa: E402
from llmbench.types import Completion, GenerationParams, Sample  # noqa: E402


@dataclass
class Task:
    name: str
    samples: list[Sample]
    params: GenerationParams


@dataclass
class Request:
    """One prompt's answer by one contender."""

    tokens: int  # output tokens
    seconds: float  # generation time: around the llama.cpp call
    text: str
    cpu_s: float  # this process's CPU time for the whole call (runner included)


@dataclass
class Tally:
    requests: list[Request] = field(default_factory=list)

    def per_request(self) -> float:
        """Median over requests of output tokens / that request's generation time."""
        return statistics.median(r.tokens / r.seconds for r in self.requests)

    def aggregate(self) -> float:
        return sum(r.tokens for r in self.requests) / sum(r.seconds for r in self.requests)

    def cpu(self) -> float:
        return sum(r.tokens for r in self.requests) / sum(r.cpu_s for r in self.requests)


def tasks_for(config_path: Path, model: ModelSpec, limit: int, seed: int) -> list[Task]:
    config = load(config_path)
    return [
        Task(t.name, build_samples(t.sample_spec(), limit), request_params(model, t, seed))
        for t in config.tasks
    ]


def llama_settings(spec: ModelSpec, llama_defaults: bool) -> dict[str, Any]:
    """The provider's effective Llama settings; with ``llama_defaults``, llama-cpp-python's
    own thread counts instead (prompt evaluation on every core)."""
    options = llamacpp.LlamaCppOptions.model_validate(spec.options)
    threads = options.n_threads or llamacpp._threads()
    return {
        "n_ctx": options.n_ctx,
        "n_threads": None if llama_defaults else threads,
        "n_threads_batch": None if llama_defaults else options.n_threads_batch or threads,
        "n_batch": options.n_batch,
    }


def bare_call(llm: Any, mode: str, sample: Sample, p: GenerationParams) -> Request:
    kwargs: dict[str, Any] = {
        "temperature": p.temperature,
        "max_tokens": p.max_tokens,
        "stop": list(p.stop) or None,
        "seed": p.seed,
    }
    if p.top_p is not None:
        kwargs["top_p"] = p.top_p
    messages = sample.messages()
    cpu, clock = time.process_time(), time.perf_counter()
    if mode == "chat":
        chat = [{"role": m.role, "content": m.content} for m in messages]
        response = llm.create_chat_completion(messages=chat, **kwargs)
        text = response["choices"][0]["message"]["content"] or ""
    else:
        prompt = llamacpp.LlamaCppProvider.completion_prompt(messages)
        response = llm.create_completion(prompt, **kwargs)
        text = response["choices"][0]["text"]
    seconds = time.perf_counter() - clock
    tokens = response["usage"]["completion_tokens"]
    return Request(tokens, seconds, text, time.process_time() - cpu)


def provider_call(provider: Any, sample: Sample, p: GenerationParams) -> Request:
    """One sample through the runner, as a generate step sends it (asyncio, the worker
    thread, the lock, the Completion row)."""
    cpu = time.process_time()
    [completion] = asyncio.run(
        run_samples(
            provider,
            [sample],
            p,
            price=provider.spec.price,
            progress=GenerationProgress("benchmark", 1, live=False),
            settings=RunSettings(concurrency=1),
        )
    )
    assert completion.error is None, completion.error
    return Request(
        completion.output_tokens, completion.latency_s, completion.text, time.process_time() - cpu
    )


def compare(
    contenders: dict[str, Callable[[Sample, GenerationParams], Request]],
    tasks: list[Task],
    repeat: int,
) -> dict[str, Tally]:
    """Every prompt by every contender back to back (order rotating), ``repeat`` times: what
    disturbs one contender's request disturbs the other's next to it."""
    tallies = {name: Tally() for name in contenders}
    names = list(contenders)
    for task in tasks[:1]:  # warm-up: the first calls of each
        for name in names:
            contenders[name](task.samples[0], task.params)
    for rep in range(repeat):
        turn = 0
        for task in tasks:
            for sample in task.samples:
                order = names if (turn + rep) % 2 == 0 else names[::-1]
                for name in order:
                    tallies[name].requests.append(contenders[name](sample, task.params))
                turn += 1
    return tallies


def fixed_costs(spec: ModelSpec, tasks: list[Task], zenml: bool) -> None:
    """The step's costs that do not grow with its samples, measured cold in this process."""
    started = time.perf_counter()
    provider = build_provider(spec)
    built = time.perf_counter() - started
    assert isinstance(provider, llamacpp.LlamaCppProvider)
    started = time.perf_counter()
    provider._load()
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    llamacpp._DIGESTS.clear()
    llamacpp.file_digest(provider.path)
    digest = time.perf_counter() - started
    size_mib = provider.path.stat().st_size / 2**20
    task = tasks[0]
    times: list[float] = []
    completions: list[Completion] = []
    for sample in task.samples[:6]:
        clock = time.perf_counter()
        completions.append(asyncio.run(provider.generate(sample.request(task.params))))
        times.append(time.perf_counter() - clock)
    first_extra = times[0] - statistics.median(times[1:])
    print(f"fixed cost of a generate step ({spec.name}):")
    print(f"  provider built (model file resolved):   {built:6.3f} s")
    print(f"  model load (llama.cpp init, cold):      {loaded:6.3f} s  (once per process)")
    print(
        f"  GGUF digest for the cache key:          {digest:6.3f} s  ({size_mib:.0f} MiB; memoised)"
    )
    print(f"  first request's extra time:             {first_extra:6.3f} s")
    if zenml:
        n = len(task.samples)
        rows = (completions * (n // len(completions) + 1))[:n]
        write = zenml_artifact_write([s.sample_id for s in task.samples], rows)
        print(f"  completions artifact, {n} rows (ZenML): {write:6.3f} s  (per step)")


def zenml_artifact_write(sample_ids: list[str], completions: list[Completion]) -> float:
    """Save a step's completions as a ZenML step output is saved: ``zenml.save_artifact``
    (pandas materializer, metadata, visualisation, the version in the store); the second
    save, after the store's one-time set-up."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZENML_CONFIG_PATH"] = home  # a throw-away ZenML config and local store
        import zenml
        from zenml.integrations.pandas.materializers.pandas_materializer import (
            PandasMaterializer,  # what a step returning a DataFrame gets
        )

        frame = completions_to_frame(sample_ids, completions)
        zenml.save_artifact(frame, name="warm_up", materializer=PandasMaterializer)
        started = time.perf_counter()
        frame = completions_to_frame(sample_ids, completions)
        zenml.save_artifact(frame, name="completions", materializer=PandasMaterializer)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "bench.yaml")
    parser.add_argument("--model", default="smollm2-135m", help="a model name in the config")
    parser.add_argument("--limit", type=int, default=20, help="prompts per task")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-threads-batch", type=int, help="for both contenders")
    parser.add_argument(
        "--bare-llama-defaults",
        action="store_true",
        help="the bare loop with llama-cpp-python's thread defaults, not the provider's",
    )
    parser.add_argument("--skip-before", action="store_true", help="skip prefix_cache: off")
    parser.add_argument("--skip-any", action="store_true", help="skip prefix_cache: any")
    parser.add_argument("--no-zenml", action="store_true", help="skip the artifact write")
    args = parser.parse_args()
    configure_environment()
    config = load(args.config)
    spec = next(m for m in config.models if m.name == args.model)
    if args.n_threads_batch:
        spec = spec.model_copy(
            update={"options": {**spec.options, "n_threads_batch": args.n_threads_batch}}
        )
    tasks = tasks_for(args.config, spec, args.limit, config.execution.seed)
    n = sum(len(t.samples) for t in tasks)
    print(
        f"{spec.name} ({spec.model}): {n} prompts from {len(tasks)} tasks, "
        f"{os.cpu_count()} CPUs, load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )

    fixed_costs(spec, tasks, zenml=not args.no_zenml)

    from llama_cpp import Llama

    provider = build_provider(spec)
    assert isinstance(provider, llamacpp.LlamaCppProvider)
    started = time.perf_counter()
    bare = Llama(
        model_path=str(provider.path),
        verbose=False,
        **llama_settings(spec, args.bare_llama_defaults),
    )
    print(f"  (bare Llama load: {time.perf_counter() - started:.3f} s)")

    def variant(mode: str) -> Any:
        return build_provider(
            spec.model_copy(update={"options": {**spec.options, "prefix_cache": mode}})
        )

    mode = provider.mode
    llm = provider._load()[0]
    bare_run = partial(bare_call, bare, mode)
    modes = ["lines"] + ([] if args.skip_before else ["off"]) + ([] if args.skip_any else ["any"])
    label = {"lines": "llmbench", "off": "prefix_cache: off", "any": "prefix_cache: any"}
    n_runs = args.repeat * n
    print(f"tokens/s, each contender against the bare loop prompt by prompt ({args.repeat} x {n}):")
    print(f"  {'':22s} {'per request':>12s} {'aggregate':>10s} {'CPU':>8s}   ratio to bare")
    for mode_name in modes:
        ours = variant(mode_name)
        kept0, evaluated0 = llm.prompt_tokens_kept, llm.prompt_tokens_evaluated
        tallies = compare(
            {"bare": bare_run, "ours": partial(provider_call, ours)}, tasks, args.repeat
        )
        kept = llm.prompt_tokens_kept - kept0
        evaluated = llm.prompt_tokens_evaluated - evaluated0
        bare_t, ours_t = tallies["bare"], tallies["ours"]
        pairs = [
            (o.tokens / o.seconds) / (b.tokens / b.seconds)
            for o, b in zip(ours_t.requests, bare_t.requests, strict=True)
        ]
        for name, tally in (("bare", bare_t), (label[mode_name], ours_t)):
            print(
                f"  {name:22s} {tally.per_request():12.1f} {tally.aggregate():10.1f} "
                f"{tally.cpu():8.1f}"
            )
        print(
            f"  {label[mode_name]} / bare: per request "
            f"{ours_t.per_request() / bare_t.per_request():.3f}"
            f" (median of the {n_runs} per-prompt ratios: {statistics.median(pairs):.3f}), "
            f"aggregate {ours_t.aggregate() / bare_t.aggregate():.3f}, "
            f"CPU {ours_t.cpu() / bare_t.cpu():.3f}; prompt tokens: {evaluated} evaluated, "
            f"{kept} kept from the KV cache ({kept / max(kept + evaluated, 1):.0%})"
        )
        texts = [r.text for r in ours_t.requests]
        stable = all(texts[i] == texts[i % n] for i in range(len(texts)))
        differ = sum(
            o.text != b.text for o, b in zip(ours_t.requests[:n], bare_t.requests[:n], strict=True)
        )
        print(
            f"    answers identical in every repetition: {stable}; "
            f"differing from the bare loop's: {differ} of {n}"
        )


if __name__ == "__main__":
    main()
