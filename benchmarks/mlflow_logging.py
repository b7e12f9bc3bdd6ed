"""How long the tracking step takes to log a big run to MLflow (not a test).

    python benchmarks/mlflow_logging.py [--samples 10000] [--models 3]

Builds a result frame of SAMPLES items x MODELS models as the score steps produce it (one
model call per answer, an exact-match score, a judge's grade with its rationale, a human
label) and logs it with ``log_benchmark`` into a fresh local sqlite MLflow store in a
temporary folder: the runs, the datasets, the prompts, a trace per answer with an LLM span
and every score as an assessment. Prints the time of the whole call and of its parts, and
the rows MLflow holds afterwards (traces, assessments) so a fast but empty log shows.
Wall time needs an idle machine; on a shared one read the CPU time beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from pathlib import Path

import pandas as pd

TASK = """
name: synthetic
source: {path: data.jsonl}
target: answer
template: "Q: {{ question }}"
metrics: [exact_match]
"""


def write_config(folder: Path, models: int) -> Path:
    (folder / "data.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    (folder / "task.yaml").write_text(TASK)
    lines = ["models:"]
    for n in range(models):
        lines += [
            f"  - name: model-{n}",
            "    provider: openai",
            f"    model: gpt-test-{n}",
            "    price: {input_per_1m: 0.5, output_per_1m: 1.5, source: test, date: '2026'}",
        ]
    lines += ["tasks: [task.yaml]", "tracking: {experiment: mlflow-logging-benchmark}"]
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")
    return folder / "bench.yaml"


def result_frame(samples: int, models: int, seed: int = 0) -> pd.DataFrame:
    """SAMPLES x MODELS rows shaped as the score step's output."""
    rng = random.Random(seed)
    rows = []
    for n in range(models):
        model = f"model-{n}"
        for i in range(samples):
            answer = str(rng.randint(0, 99))
            tokens_in, tokens_out = rng.randint(20, 400), rng.randint(5, 200)
            latency = rng.uniform(0.05, 2.0)
            call = {"model": model, "output": f"The answer is {answer}.", "latency_s": latency}
            call |= {"input_tokens": tokens_in, "output_tokens": tokens_out, "attempts": 1}
            grade = float(rng.randint(1, 10))
            rows.append(
                {
                    "model": model,
                    "task": "synthetic",
                    "sample_id": str(i),
                    "prompt": f"Q: what is {i} + {answer}?",
                    "references": [answer],
                    "output": call["output"],
                    "answer": answer,
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cost_usd": (0.5 * tokens_in + 1.5 * tokens_out) / 1e6,
                    "latency_s": latency,
                    "error": None,
                    "cached": False,
                    "model_version": "v1",
                    "trace": json.dumps([call]),
                    "score.exact_match": float(rng.random() < 0.6),
                    "score.judge": grade,
                    "judgments": [
                        {
                            "judge": "judge-model",
                            "grade": grade,
                            "explanation": "Correct and concise. [[" + str(int(grade)) + "]]",
                            "error": None,
                            "cost_usd": 1e-5,
                            "latency_s": 0.3,
                        }
                    ],
                    "judge_cost_usd": 1e-5,
                    "judge_latency_s": 0.3,
                    "human_label": float(rng.randint(1, 10)),
                }
            )
    return pd.DataFrame(rows)


def leaderboard_of(results: pd.DataFrame) -> pd.DataFrame:
    board = results.groupby("model", as_index=False).agg(
        score=("score.exact_match", "mean"), cost_usd=("cost_usd", "sum")
    )
    board["synthetic/exact_match"] = board["score"]
    board["provider"], board["model_id"] = "openai", board["model"]
    return board


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    import mlflow

    from llmbench import config as cfg
    from llmbench.tracking.mlflow_log import log_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = cfg.load(write_config(folder, args.models))
        results = result_frame(args.samples, args.models)
        board = leaderboard_of(results)
        mlflow.set_tracking_uri(config.tracking.uri)
        mlflow.MlflowClient().search_experiments()  # create the store's tables, untimed
        began, cpu = time.perf_counter(), time.process_time()
        run_id = log_benchmark(
            config,
            board,
            results,
            run_name="benchmark",
            started_at_ms=int(time.time() * 1000) - 3_600_000,
        )
        took, cpu = time.perf_counter() - began, time.process_time() - cpu
        client = mlflow.MlflowClient()
        experiment_id = client.get_run(run_id).info.experiment_id
        total = len(results)
        print(f"logged {total} answers ({args.samples} samples x {args.models} models)")
        print(f"log_benchmark: {took:.1f} s wall, {cpu:.1f} s CPU ({total / took:.0f} answers/s)")
        children = client.search_runs([experiment_id], "tags.`llmbench.kind` = 'model'")
        found = assessments = 0
        for child in children:
            traces = mlflow.search_traces(
                locations=[experiment_id],
                run_id=child.info.run_id,
                include_spans=False,
                return_type="list",
            )
            found += len(traces)
            assessments += sum(len(t.info.assessments) for t in traces)
        print(
            f"in the store: {found} traces linked to {len(children)} runs, "
            f"{assessments} assessments"
        )


if __name__ == "__main__":
    main()
