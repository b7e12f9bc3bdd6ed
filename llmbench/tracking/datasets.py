"""Each task's items in MLflow, twice over: as a dataset input of the runs that used it
(MLflow's digest tells at a glance whether two runs were scored on the same items), and as
an MLflow evaluation dataset (inputs and expectations per item) on the experiment's
Datasets page, where ``mlflow.genai.evaluate`` and its scorers can use it again.

Evaluation datasets have no versions outside Databricks, so llmbench versions them itself:
one dataset per task and content, tagged with its items' digest and a version number; an
unchanged rerun finds its dataset by digest and creates nothing, changed items make the next
version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from llmbench.tables import frame_to_samples
from llmbench.types import Sample

CONTEXT = "benchmark"
DIGEST_TAG = "llmbench_items_digest"
VERSION_TAG = "llmbench_version"
TASK_TAG = "llmbench_task"


def _references(value: Any) -> str:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return json.dumps(value, default=str, ensure_ascii=False)


def task_datasets(results: pd.DataFrame) -> list[Any]:
    """One ``mlflow.data`` pandas dataset per task, its rows in sample order."""
    from mlflow.data.pandas_dataset import from_pandas

    out = []
    for task, rows in results.groupby("task", sort=True):
        items = rows.drop_duplicates("sample_id")[["sample_id", "prompt"]].copy()
        if "references" in rows:
            items["references"] = rows.drop_duplicates("sample_id")["references"].map(_references)
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


def _is_expectation(field: str) -> bool:
    extra = Sample.model_fields[field].json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("expectation"))


def _empty(value: Any) -> bool:
    return value is None or value == () or value == [] or value == ""


def evaluation_records(samples: list[Sample]) -> list[dict[str, Any]]:
    """One record per item: what the entrant was asked (``inputs``) and what a right answer
    is (``expectations``; a single reference is also MLflow's ``expected_response``, which
    its Correctness scorer reads). Fields left at their empty default are omitted."""
    records = []
    for sample in samples:
        dumped = sample.model_dump(mode="json")
        inputs = {k: v for k, v in dumped.items() if not _is_expectation(k) and not _empty(v)}
        expectations = {k: v for k, v in dumped.items() if _is_expectation(k) and not _empty(v)}
        if len(sample.references) == 1:
            expectations["expected_response"] = sample.references[0]
        records.append({"inputs": inputs, "expectations": expectations})
    return records


def records_digest(records: list[dict[str, Any]]) -> str:
    """The items' identity: equal digests, equal items (order included)."""
    text = json.dumps(records, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def register_evaluation_datasets(results: pd.DataFrame, experiment_id: str) -> dict[str, int]:
    """Each task's items as an evaluation dataset of ``experiment_id``; returns the version
    of each (an existing one when its items are unchanged)."""
    from mlflow.genai.datasets import add_dataset_to_experiments, create_dataset, search_datasets

    versions: dict[str, int] = {}
    for task, rows in results.groupby("task", sort=True):
        name = str(task)
        records = evaluation_records(frame_to_samples(rows.drop_duplicates("sample_id")))
        digest = records_digest(records)
        # Dotted or underscored tag keys cannot be filtered on server-side: match by name.
        existing = search_datasets(filter_string=f"name = '{_quoted(name)}'", max_results=1000)
        mine = [(d, d.tags or {}) for d in existing if (d.tags or {}).get(TASK_TAG) == name]
        same = [(d, t) for d, t in mine if t.get(DIGEST_TAG) == digest]
        if same:
            found, found_tags = same[0]
            if experiment_id not in found.experiment_ids:
                add_dataset_to_experiments(found.dataset_id, [experiment_id])
            versions[name] = int(found_tags[VERSION_TAG])
            continue
        version = 1 + max((int(t.get(VERSION_TAG, 0)) for _, t in mine), default=0)
        tags = {TASK_TAG: name, DIGEST_TAG: digest, VERSION_TAG: str(version)}
        dataset = create_dataset(name=name, experiment_id=experiment_id, tags=tags)
        dataset.merge_records(records)
        versions[name] = version
    return versions


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")
