"""The embedded llama.cpp model against a bare llama-cpp-python loop (not a test).

    python benchmarks/local_model.py [--model smollm2-135m] [--limit 20] [--repeat 3]
                                     [--config bench.yaml] [--n-threads-batch N] [--no-zenml]
                                     [--bare-llama-defaults] [--skip-before] [--skip-any]

On the prompts of the config's tasks (the first ``--limit`` of each, with each task's
sampling settings) it compares:

- ``bare``: a plain ``llama_cpp.Llama`` with the provider's settings (context, batch, threads;
  ``--bare-llama-defaults``: llama-cpp-python's thread defaults), ``create_chat_completion``
  (``create_completion`` for a completion-mode model) in a loop, as a user would write it;
  llama-cpp-python reuses whatever prompt prefix the previous call left in the KV cache;
- ``llmbench``: the provider through the runner (``run_samples``, one call per task, as a
  generate step runs it: asyncio, the worker thread, the lock, Completion rows);
- ``llmbench, prefix_cache: off``: the provider as it was before (KV cache reset and the
  whole prompt in one batch per request), unless ``--skip-before``;
- ``llmbench, prefix_cache: any``: the provider with llama-cpp-python's own prefix reuse (as
  the bare loop; answers may depend on request order), unless ``--skip-any``.

Per-request tokens/s is output tokens / the request's own generation time (the time around
the llama.cpp call: the provider's ``latency_s``, the bare loop's own clock); "loop" is output
tokens / the wall time of the whole loop (runner and thread hops included); "CPU" is output
tokens / CPU seconds of this process (robust to other processes on the machine). Contenders
alternate in each repetition (ABC, CBA, ...) and medians are reported.

Then the step's fixed cost: building the provider, loading the model (llama.cpp init), the
GGUF digest (the cache key), the first request's extra time, and writing the step's
completions artifact the way ZenML does (its pandas materializer, metadata and
visualisations, in a throw-away ZenML config; ``--no-zenml`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
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

FIGURES = ("per_request", "aggregate", "loop", "cpu")


@dataclass
class Task:
    name: str
    samples: list[Sample]
    params: GenerationParams


@dataclass
class Pass:
    """One contender over every prompt once."""

    tokens: list[int] = field(default_factory=list)  # output tokens per request
    seconds: list[float] = field(default_factory=list)  # generation time per request
    texts: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def per_request(self) -> float:
        """Median over requests of output tokens / that request's generation time."""
        return statistics.median(t / s for t, s in zip(self.tokens, self.seconds, strict=True))

    def aggregate(self) -> float:
        return sum(self.tokens) / sum(self.seconds)

    def loop(self) -> float:
        return sum(self.tokens) / self.wall_s

    def cpu(self) -> float:
        return sum(self.tokens) / self.cpu_s


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


def bare_pass(llm: Any, mode: str, tasks: list[Task]) -> Pass:
    result = Pass()
    started, cpu = time.perf_counter(), time.process_time()
    for task in tasks:
        p = task.params
        kwargs: dict[str, Any] = {
            "temperature": p.temperature,
            "max_tokens": p.max_tokens,
            "stop": list(p.stop) or None,
            "seed": p.seed,
        }
        if p.top_p is not None:
            kwargs["top_p"] = p.top_p
        for sample in task.samples:
            messages = sample.messages()
            clock = time.perf_counter()
            if mode == "chat":
                chat = [{"role": m.role, "content": m.content} for m in messages]
                response = llm.create_chat_completion(messages=chat, **kwargs)
                text = response["choices"][0]["message"]["content"] or ""
            else:
                prompt = llamacpp.LlamaCppProvider.completion_prompt(messages)
                response = llm.create_completion(prompt, **kwargs)
                text = response["choices"][0]["text"]
            result.seconds.append(time.perf_counter() - clock)
            result.tokens.append(response["usage"]["completion_tokens"])
            result.texts.append(text)
    result.wall_s, result.cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return result


def provider_pass(spec: ModelSpec, tasks: list[Task], concurrency: int) -> Pass:
    result = Pass()
    started, cpu = time.perf_counter(), time.process_time()
    for task in tasks:
        provider = build_provider(spec)  # what a generate step does; the Llama is shared
        progress = GenerationProgress(task.name, len(task.samples), live=False)
        completions: list[Completion] = asyncio.run(
            run_samples(
                provider,
                task.samples,
                task.params,
                price=spec.price,  # type: ignore[arg-type]
                progress=progress,
                settings=RunSettings(concurrency=concurrency),
            )
        )
        for completion in completions:
            assert completion.error is None, completion.error
            result.tokens.append(completion.output_tokens)
            result.seconds.append(completion.latency_s)
            result.texts.append(completion.text)
    result.wall_s, result.cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return result


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
        completions.append(asyncio.run(provider.generate(sample.messages(), task.params)))
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
    """Save a step's completions as ZenML does: pandas materializer, metadata, visualisations."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZENML_CONFIG_PATH"] = home  # a throw-away ZenML config and local store
        from zenml.client import Client
        from zenml.materializers.pandas_materializer import PandasMaterializer

        store = Client().active_stack.artifact_store
        started = time.perf_counter()
        frame = completions_to_frame(sample_ids, completions)
        uri = os.path.join(store.path, "benchmark", "completions")
        store.makedirs(uri)
        materializer = PandasMaterializer(uri=uri, artifact_store=store)
        materializer.save(frame)
        materializer.save_visualizations(frame)
        materializer.extract_full_metadata(frame)
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

    def variant(mode: str) -> ModelSpec:
        return spec.model_copy(update={"options": {**spec.options, "prefix_cache": mode}})

    contenders: dict[str, Any] = {
        "bare": lambda: bare_pass(bare, provider.mode, tasks),
        "llmbench": lambda: provider_pass(spec, tasks, config.execution.concurrency),
    }
    if not args.skip_before:
        contenders["llmbench, prefix_cache: off"] = lambda: provider_pass(
            variant("off"), tasks, config.execution.concurrency
        )
    if not args.skip_any:
        contenders["llmbench, prefix_cache: any"] = lambda: provider_pass(
            variant("any"), tasks, config.execution.concurrency
        )
    llm = provider._load()[0]
    for go in contenders.values():  # warm-up: caches, page cache, first-call costs
        go()
    passes: dict[str, list[Pass]] = {name: [] for name in contenders}
    kept = evaluated = 0
    for repeat in range(args.repeat):
        names = list(contenders) if repeat % 2 == 0 else list(contenders)[::-1]
        for name in names:
            if name == "llmbench":
                k0, e0 = llm.prompt_tokens_kept, llm.prompt_tokens_evaluated
            passes[name].append(contenders[name]())
            if name == "llmbench":
                kept += llm.prompt_tokens_kept - k0
                evaluated += llm.prompt_tokens_evaluated - e0

    def median(name: str, figure: str) -> float:
        return statistics.median(getattr(p, figure)() for p in passes[name])

    print(f"tokens/s, median of {args.repeat} passes over {n} prompts:")
    print(f"  {'':32s} {'per request':>12s} {'aggregate':>10s} {'loop':>8s} {'CPU':>8s}")
    for name in passes:
        print(
            f"  {name:32s} {median(name, 'per_request'):12.1f} {median(name, 'aggregate'):10.1f} "
            f"{median(name, 'loop'):8.1f} {median(name, 'cpu'):8.1f}"
        )
    for name in passes:
        if name == "bare":
            continue
        ratios = {f: median(name, f) / median("bare", f) for f in FIGURES}
        print(
            f"  {name} / bare: per request {ratios['per_request']:.3f}, "
            f"aggregate {ratios['aggregate']:.3f}, loop {ratios['loop']:.3f}, "
            f"CPU {ratios['cpu']:.3f}"
        )
    total = kept + evaluated
    print(
        f"  llmbench prompt tokens: {evaluated} evaluated, {kept} kept from the KV cache "
        f"({kept / max(total, 1):.0%})"
    )
    ours = passes["llmbench"]
    stable = all(p.texts == ours[0].texts for p in ours)
    differ = sum(a != b for a, b in zip(ours[0].texts, passes["bare"][0].texts, strict=True))
    print(
        f"  llmbench answers identical across passes: {stable}; "
        f"answers that differ from the bare loop's: {differ} of {n}"
    )


if __name__ == "__main__":
    main()
