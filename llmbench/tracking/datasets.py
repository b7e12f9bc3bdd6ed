"""Each task's items as an MLflow dataset, logged as an input of the runs that used it.

The dataset holds what every entrant was asked (sample id, prompt, references); MLflow's
digest of it tells at a glance whether two runs were scored on the same items.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

CONTEXT = "benchmark"


def _references(value: Any) -> str:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return json.dumps(value, default=str, ensure_ascii=False)


def task_datasets(results: pd.DataFrame) -> list[Any]:
    """One ``mlflow.data`` pandas dataset per task, its rows in sample order."""
    from mlflow.data.pandas_dataset import from_pandas

    out = []
    for task, rows in results.groupby("task", sort=True):
        first = rows.drop_duplicates("sample_id")
        items = first[["sample_id", "prompt"]].copy()
        # A conversation's later user turns are part of its item (other tasks' digests stay).
        if "follow_ups" in first:
            turns = first["follow_ups"].map(lambda v: json.loads(v) if isinstance(v, str) else [])
            if turns.map(bool).any():
                items["follow_ups"] = turns.map(lambda t: json.dumps(t, ensure_ascii=False))
        if "references" in rows:
            items["references"] = first["references"].map(_references)
        items = items.astype(str).reset_index(drop=True)
        out.append(from_pandas(items, name=str(task)))
    return out


def log_datasets(datasets: list[Any], run_ids: list[str]) -> None:
    """Every dataset as an input of every run, one call per run."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = [
        DatasetInput(d._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, CONTEXT)])
        for d in datasets
    ]
    client = mlflow.MlflowClient()
    for run_id in run_ids:
        client.log_inputs(run_id, datasets=inputs)
