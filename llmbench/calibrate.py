"""Human calibration of an LLM judge: export answers for people to rate, blind.

    python -m llmbench.calibrate export results/latest --task mt_bench --n 50 -o ratings.csv

writes a CSV of randomly chosen judged answers (question, reference, answer) with an empty
``human_label`` column and *without* the judge's grade, so raters are not anchored by it.
Fill in the labels (a grade on the task's scale, or PASS/FAIL), then point the task's
``judge.human_labels.path`` at the file and run the benchmark again: generation and judging
stay cached, only scoring reruns, and the judges table reports the judge's agreement with the
people (accuracy, Cohen's kappa, Spearman's rho).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from llmbench.errors import BenchError, DatasetError

EXPORT_COLUMNS = ["task", "model", "sample_id", "prompt", "reference", "output", "human_label"]


def read_samples(path: Path) -> pd.DataFrame:
    """samples.jsonl of a run, given the file or the run's output folder."""
    file = path / "samples.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise DatasetError(
            "no samples.jsonl here",
            source=str(file),
            hint="pass a run's output folder (e.g. results/latest) or its samples.jsonl",
        )
    try:
        return pd.read_json(file, lines=True, dtype={"sample_id": str})
    except ValueError as exc:
        raise DatasetError(f"cannot read samples: {exc}", source=str(file)) from None


def rating_sheet(samples: pd.DataFrame, task: str, n: int, seed: int) -> pd.DataFrame:
    """``n`` judged, answered samples of ``task`` drawn at random (all when fewer)."""
    if "task" not in samples or task not in set(samples["task"]):
        known = ", ".join(sorted(set(samples.get("task", pd.Series(dtype=str))))) or "none"
        raise DatasetError(
            f"no samples of task {task!r} (tasks in this run: {known})", field="--task"
        )
    mine = samples[samples["task"] == task]
    if "judgments" in mine:
        mine = mine[mine["judgments"].map(lambda j: isinstance(j, list) and len(j) > 0)]
    if "error" in mine:
        mine = mine[mine["error"].isna()]
    if mine.empty:
        raise DatasetError(
            f"task {task!r} has no judged answers in this run",
            field="--task",
            hint="export from a run where the task has a rubric or reference judge",
        )
    chosen = mine.sample(n=min(n, len(mine)), random_state=seed)
    references = chosen["references"] if "references" in chosen else [[]] * len(chosen)
    return pd.DataFrame(
        {
            "task": chosen["task"].to_numpy(),
            "model": chosen["model"].to_numpy(),
            "sample_id": chosen["sample_id"].astype(str).to_numpy(),
            "prompt": chosen["prompt"].to_numpy(),
            "reference": [json.dumps(r) if len(r) > 1 else (r[0] if r else "") for r in references],
            "output": chosen["output"].to_numpy(),
            "human_label": "",
        },
        columns=EXPORT_COLUMNS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmbench.calibrate", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write a CSV of answers for people to rate")
    export.add_argument("run", type=Path, help="a run's output folder or its samples.jsonl")
    export.add_argument("--task", required=True, help="the judged task to sample")
    export.add_argument("--n", type=int, default=50, help="how many answers (default 50)")
    export.add_argument("--seed", type=int, default=0, help="which answers (default 0)")
    export.add_argument("-o", "--output", type=Path, required=True, help="the CSV to write")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    try:
        sheet = rating_sheet(read_samples(args.run), args.task, args.n, args.seed)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.output.exists():
        print(
            f"error: {args.output} exists; choose another file (ratings are never overwritten)",
            file=sys.stderr,
        )
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.to_csv(args.output, index=False)
    print(
        f"Wrote {len(sheet)} answers of task {args.task!r} to {args.output}. Fill in the "
        "human_label column, then set the task's judge.human_labels.path to this file and "
        "run the benchmark again (only scoring reruns)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
