"""The previous benchmark run of an experiment, read back from MLflow for the regression gate.

A benchmark's parent run carries the tag ``llmbench.kind=benchmark`` and each entrant's child
run the per-sample table ``samples.json`` (see mlflow_log.py): enough to rebuild the scores
item by item, so the paired tests can compare the two runs on the same items.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from llmbench.errors import BenchError

SAMPLES_ARTIFACT = "samples.json"
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@dataclass(frozen=True)
class PreviousRun:
    run_id: str
    run_name: str
    results: pd.DataFrame  # the per-sample rows of every entrant, as this run's results


def _decoded(value: Any) -> Any:
    """References were logged as JSON text (MLflow tables hold no lists)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return [value]
    return value


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow's download progress bar would land in the middle of the run's summary."""
    before = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = before


def read_table(path: str) -> pd.DataFrame:
    """A table as mlflow.log_table wrote it, values as written (ids that look like numbers
    stay text, nothing becomes a date)."""
    return pd.read_json(path, orient="split", dtype=False, convert_dates=False)


def previous_run(tracking_uri: str, experiment: str, current_run_id: str) -> PreviousRun | None:
    """The newest finished benchmark run of ``experiment`` started before ``current_run_id``,
    with its entrants' per-sample results; None when there is none."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    experiment_id = found.experiment_id
    wanted = "tags.`llmbench.kind` = 'benchmark' and attributes.status = 'FINISHED'"
    try:  # runs started before this one: a run finishing alongside is not its baseline
        started = client.get_run(current_run_id).info.start_time
        wanted += f" and attributes.start_time < {int(started)}"
    except MlflowException:
        pass
    candidates = client.search_runs(
        [experiment_id],
        filter_string=wanted,
        order_by=["attributes.start_time DESC"],
        max_results=2,
    )
    parent = next((run for run in candidates if run.info.run_id != current_run_id), None)
    if parent is None:
        return None
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    name = parent.data.tags.get("llmbench.run_name") or parent.info.run_name or parent.info.run_id
    frames = []
    for child in children:
        try:
            with tempfile.TemporaryDirectory() as folder, _no_progress_bar():
                # Downloaded with this client: mlflow.load_table would read the global URI.
                path = client.download_artifacts(child.info.run_id, SAMPLES_ARTIFACT, folder)
                frames.append(read_table(path))
        except MlflowException as exc:
            raise BenchError(
                f"the previous run {name} ({parent.info.run_id}) has no readable "
                f"{SAMPLES_ARTIFACT} on its child run {child.info.run_name}: {exc.message}",
                field="--fail-on-regression",
                hint="rerun without --fail-on-regression once, so the next run has a baseline",
            ) from None
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "references" in results:
        results["references"] = results["references"].map(_decoded)
    return PreviousRun(parent.info.run_id, str(name), results)
