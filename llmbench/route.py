"""Train a learned router from an earlier run's per-item results:

    python -m llmbench.route train results/<run> --task T --weak W --strong S -o router.joblib

The router learns, from the prompt's text (TF-IDF words and word pairs, logistic
regression), whether the strong model is needed: the label is "the strong model scored
higher than the weak one on this item" (RouteLLM's win label on a 0/1 or graded metric).
It is trained on the ``train`` part of a seeded split of the items by sample id and reports
its APGR on the ``test`` part, which is where a config should score it
(``subset: {share, seed, part: test}`` on the task).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from llmbench.errors import BenchError, ConfigError, DatasetError
from llmbench.report.routing import apgr, cpt, sweep
from llmbench.strategies.learned import FORMAT
from llmbench.tasks.split import in_train


def _rows(run_dir: Path, task: str) -> list[dict[str, Any]]:
    path = run_dir / "samples.jsonl"
    if not path.is_file():
        raise DatasetError(
            "no samples.jsonl in the run folder",
            source=str(run_dir),
            hint="give the folder of a finished run, e.g. results/latest",
        )
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    mine = [r for r in rows if r.get("task") == task]
    if not mine:
        tasks = sorted({str(r.get("task")) for r in rows})
        raise ConfigError(
            f"the run has no task {task!r}", field="--task", hint=f"tasks: {', '.join(tasks)}"
        )
    return mine


def _scores(rows: list[dict[str, Any]], model: str, metric: str | None) -> dict[str, float]:
    mine = [r for r in rows if r["model"] == model]
    if not mine:
        models = sorted({str(r["model"]) for r in rows})
        raise ConfigError(
            f"the run has no model {model!r} on this task", hint=f"models: {', '.join(models)}"
        )
    key = metric or next(iter(mine[0]["scores"]))
    return {
        str(r["sample_id"]): float(r["scores"][key])
        for r in mine
        if r["scores"].get(key) is not None
    }


def train(
    run_dir: Path,
    *,
    task: str,
    weak: str,
    strong: str,
    output: Path,
    metric: str | None = None,
    share: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit, evaluate on the held-out part, save; returns what it reports."""
    import joblib
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rows = _rows(run_dir, task)
    weak_scores, strong_scores = _scores(rows, weak, metric), _scores(rows, strong, metric)
    prompts = {str(r["sample_id"]): str(r["prompt"]) for r in rows if r["model"] == weak}
    ids = sorted(set(weak_scores) & set(strong_scores) & set(prompts))
    train_ids = [i for i in ids if in_train(i, share, seed)]
    test_ids = [i for i in ids if not in_train(i, share, seed)]
    labels = np.array([strong_scores[i] > weak_scores[i] for i in train_ids], dtype=int)
    if len(set(labels.tolist())) < 2:
        raise DatasetError(
            "the training items have one label only: the strong model is never (or always) "
            "better, so there is nothing to learn",
            source=str(run_dir),
        )
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed),
    )
    pipeline.fit([prompts[i] for i in train_ids], labels)
    report: dict[str, Any] = {
        "task": task,
        "weak": weak,
        "strong": strong,
        "metric": metric,
        "train_items": len(train_ids),
        "test_items": len(test_ids),
    }
    if test_ids:
        w = np.array([weak_scores[i] for i in test_ids])
        s = np.array([strong_scores[i] for i in test_ids])
        score = pipeline.predict_proba([prompts[i] for i in test_ids])[:, 1]
        quality = sweep(w, s, score)
        report.update(
            {
                "test_apgr": apgr(quality, float(w.mean()), float(s.mean())),
                "test_cpt_50": cpt(quality, float(w.mean()), float(s.mean()), 0.5),
                "test_cpt_80": cpt(quality, float(w.mean()), float(s.mean()), 0.8),
            }
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(
        {
            "format": FORMAT,
            "pipeline": pipeline,
            "train_ids": train_ids,
            "subset": {"share": share, "seed": seed},
            "trained_on": str(run_dir.resolve()),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sklearn": sklearn.__version__,
            **report,
        },
        output,
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmbench.route", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="train a learned router from a run's results")
    fit.add_argument("run_dir", type=Path, help="a finished run's folder (has samples.jsonl)")
    fit.add_argument("--task", required=True)
    fit.add_argument("--weak", required=True, help="the cheaper model's name in the run")
    fit.add_argument("--strong", required=True, help="the better model's name in the run")
    fit.add_argument("--metric", help="the score to compare (default: the task's first)")
    fit.add_argument("--share", type=float, default=0.5, help="share of items to train on")
    fit.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    fit.add_argument("-o", "--output", type=Path, required=True, help="the router file")
    args = parser.parse_args(argv)
    if not 0.0 < args.share < 1.0:
        print("llmbench: --share must be between 0 and 1", file=sys.stderr)
        return 2
    try:
        report = train(
            args.run_dir,
            task=args.task,
            weak=args.weak,
            strong=args.strong,
            output=args.output,
            metric=args.metric,
            share=args.share,
            seed=args.seed,
        )
    except BenchError as exc:
        print(f"llmbench: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(report, indent=2))
    print(
        f"Router saved to {args.output}. Score it on items it never saw: set the task's "
        f"subset to {{share: {args.share}, seed: {args.seed}, part: test}}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
