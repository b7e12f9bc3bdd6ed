"""The regression gate's baseline, read back from a real MLflow store: the newest finished
benchmark run other than the current one, with its entrants' per-sample tables as
mlflow_log.py writes them (references back as lists, ids that look like numbers as text)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from llmbench.tracking.mlflow_log import _loggable
from llmbench.tracking.previous import SAMPLES_ARTIFACT, previous_run


def log_run(experiment_id: str, name: str, rows: pd.DataFrame, status: str = "FINISHED") -> str:
    """A parent run tagged as log_benchmark tags it, one child per model with samples.json."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as parent:
        mlflow.set_tags({"llmbench.kind": "benchmark", "llmbench.run_name": name})
        for model, mine in rows.groupby("model"):
            with mlflow.start_run(experiment_id=experiment_id, run_name=str(model), nested=True):
                mlflow.set_tags({"llmbench.kind": "model", "llmbench.model": str(model)})
                mlflow.log_table(_loggable(mine), artifact_file=SAMPLES_ARTIFACT)
    if status != "FINISHED":
        mlflow.tracking.MlflowClient().set_terminated(parent.info.run_id, status=status)
    return str(parent.info.run_id)


def rows(score: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "task": ["t", "t", "t"],
            "sample_id": ["1", "2", "1"],
            "answer": ["x", "y", "x"],
            "references": [["x"], ["y", "z"], ["x"]],
            "score.exact_match": [score, 1.0, score],
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("gates", artifact_location=str(tmp_path / "artifacts"))
    yield uri, experiment
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def test_the_baseline_is_the_newest_finished_run_but_this_one(store: tuple[str, str]) -> None:
    uri, experiment = store
    assert previous_run(uri, "gates", "none") is None
    older = log_run(experiment, "older", rows(0.0))
    newer = log_run(experiment, "newer", rows(1.0))
    log_run(experiment, "failed", rows(0.5), status="FAILED")
    current = log_run(experiment, "current", rows(0.0))

    baseline = previous_run(uri, "gates", current)
    assert baseline is not None
    assert (baseline.run_id, baseline.run_name) == (newer, "newer")
    table = baseline.results.sort_values(["model", "sample_id"]).reset_index(drop=True)
    assert table["sample_id"].tolist() == ["1", "2", "1"]
    assert table["references"].tolist() == [["x"], ["y", "z"], ["x"]]
    assert table["score.exact_match"].tolist() == [1.0, 1.0, 1.0]
    # Seen from an earlier run, the baseline is the one before that (a failed one never is).
    earlier = previous_run(uri, "gates", newer)
    assert earlier is not None and earlier.run_id == older
    assert previous_run(uri, "gates", older) is None
    assert previous_run(uri, "no-such-experiment", current) is None
