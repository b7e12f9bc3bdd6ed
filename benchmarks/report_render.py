"""How long report.html takes to render, and how big it is, on a real full-size run: the
GSM8K replay (four recorded GPT-3 variants x 1319 items, ../shared/data), scored as the
pipeline scores it, without ZenML. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/report_render.py [--repeat 3]

The report is rendered once per run, in the ZenML ``report`` step (the MLflow ``track`` step
and the output folder reuse its page and plots), and it should stay at a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmbench import config as cfg  # noqa: E402
from llmbench import stages  # noqa: E402
from llmbench.report import statistics  # noqa: E402
from llmbench.report.browser import sample_browser  # noqa: E402
from llmbench.report.html import render_report, report_figures  # noqa: E402
from llmbench.report.leaderboard import build_leaderboard  # noqa: E402
from llmbench.runtime import runner  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    solutions = ROOT.parent / "shared" / "data" / "gsm8k" / "example_model_solutions.jsonl"
    if not solutions.is_file():
        print(f"shared benchmark data not found at {solutions}", file=sys.stderr)
        return 2
    bench = cfg.load(ROOT / "configs" / "gsm8k_replay.yaml")
    (task,) = bench.tasks
    samples = stages.load_task(task, None)
    results, aggregates = [], []
    for model in bench.models:
        completions = stages.generate(
            model,
            samples,
            runner.request_params(model, task, bench.execution.seed),
            settings=runner.RunSettings(),
            label=model.name,
        )
        scored, aggregate = stages.score(model, task, samples, completions)
        results.append(scored)
        aggregates.append(aggregate)
    frame = pd.concat(results, ignore_index=True)
    report = statistics.build_report(bench, frame, statistics.concat_verdicts([]))
    board = build_leaderboard(
        bench, frame, pd.concat(aggregates, ignore_index=True), report.intervals
    )
    print(f"{len(frame)} result rows, {len(bench.entrants)} entrants")
    for _ in range(args.repeat):
        started = time.perf_counter()
        browser = sample_browser(bench, frame)
        browsed = time.perf_counter()
        figures = report_figures(bench, board, frame)
        drawn = time.perf_counter()
        page = render_report(bench, board, frame, report, figures=figures)
        done = time.perf_counter()
        print(
            f"sample browser {browsed - started:.2f} s ({len(browser.items)} of {browser.total}"
            f" items), plots {drawn - browsed:.2f} s, page {done - drawn:.2f} s; total "
            f"{done - started:.2f} s, {len(page) / 1e6:.2f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
