"""llama.cpp per operation, in-process against llama-server, interleaved (not a test).

    python benchmarks/engine_ops.py [--model smollm2-135m-instruct] [--prompt 200]
                                    [--generate 64] [--repeat 3]

Whether the in-process binding itself is slower than llama.cpp's own server, apart from how
each reuses prompts: one model, the same token ids, the same threads and flash attention,
llama-server with one slot and no prompt reuse (``cache_prompt: false``). Each repetition
asks the server, then the in-process ``Llama``, to evaluate a ``--prompt``-token prompt and
generate ``--generate`` tokens (ignoring end-of-sequence), back to back, so what other
processes do to one is done to the other next to it. Both sides' times are llama.cpp's own
(the server's ``timings``; in-process ``llama_perf_context``), so neither includes its client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script, not a test: make llmbench importable

from llmbench.providers import llama_server, llamacpp  # noqa: E402
from llmbench.providers.llamacpp import LlamaCppOptions  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog, and the dog does not mind at all. " * 80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="built-in name or path")
    parser.add_argument("--prompt", type=int, default=200, help="prompt tokens")
    parser.add_argument("--generate", type=int, default=64, help="generated tokens")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import llama_cpp

    options = LlamaCppOptions()
    threads = options.threads()
    path = llamacpp.resolve_model_file(args.model)
    llamacpp.quiet_llama_logs()
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=options.n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=options.n_batch,
        flash_attn=options.flash_attn,
        verbose=False,
    )
    tokens = llm.tokenize(TEXT.encode())[: args.prompt]
    if len(tokens) < args.prompt:
        sys.exit(f"--prompt {args.prompt}: the text has only {len(tokens)} tokens")
    settings = llama_server.ServerSettings(
        model=path,
        n_ctx=options.n_ctx,
        threads=threads,
        threads_batch=threads,
        n_batch=options.n_batch,
        flash_attn=options.flash_attn,
    )
    server = llama_server.LlamaServer(settings)
    server.start()
    client = httpx.Client(base_url=server.base_url, timeout=600)
    rows: dict[str, list[tuple[float, float]]] = {"llama-server": [], "in-process": []}
    try:
        for _ in range(args.repeat):
            timings = client.post(
                "/completion",
                json={
                    "prompt": tokens,
                    "n_predict": args.generate,
                    "cache_prompt": False,
                    "ignore_eos": True,
                    "temperature": 0,
                },
            ).json()["timings"]
            rows["llama-server"].append(
                (timings["prompt_per_token_ms"], timings["predicted_per_token_ms"])
            )
            llm.reset()  # type: ignore[no-untyped-call]
            llm._ctx.kv_cache_clear()  # type: ignore[no-untyped-call]
            before = llama_cpp.llama_perf_context(llm._ctx.ctx)
            for _token in llm.generate(tokens, temp=0.0):
                if llm.n_tokens >= len(tokens) + args.generate:
                    break
            after = llama_cpp.llama_perf_context(llm._ctx.ctx)
            rows["in-process"].append(
                (
                    (after.t_p_eval_ms - before.t_p_eval_ms) / (after.n_p_eval - before.n_p_eval),
                    (after.t_eval_ms - before.t_eval_ms) / (after.n_eval - before.n_eval),
                )
            )
    finally:
        server.stop()
        llm.close()
    print(
        f"{path.name}: {args.prompt}-token prompt, {args.generate} generated tokens, "
        f"{threads} threads, flash attention {'on' if options.flash_attn else 'off'}, "
        f"{args.repeat} interleaved repetitions (ms per token: median, range)"
    )
    for name, values in rows.items():
        prompt = [p for p, _ in values]
        generated = [g for _, g in values]
        print(
            f"  {name:12s} prompt {statistics.median(prompt):6.2f} "
            f"({min(prompt):.2f}-{max(prompt):.2f})   generated "
            f"{statistics.median(generated):6.2f} ({min(generated):.2f}-{max(generated):.2f})"
        )


if __name__ == "__main__":
    main()
