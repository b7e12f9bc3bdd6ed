"""Each task's items as an MLflow evaluation dataset in a real (sqlite) MLflow store: inputs
and expectations per item, found again by an unchanged rerun (no new dataset), a new
version only when the items change, and usable by ``mlflow.genai`` as a DataFrame."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.genai.datasets import search_datasets

from llmbench.tables import samples_to_frame
from llmbench.tracking.datasets import (
    DIGEST_TAG,
    VERSION_TAG,
    evaluation_records,
    register_evaluation_datasets,
)
from llmbench.types import Message, Sample, Tool


@pytest.fixture
def experiment(tmp_path: Path) -> Iterator[str]:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield mlflow.create_experiment("datasets", artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def results(task: str, samples: list[Sample], models: tuple[str, ...] = ("a", "b")) -> pd.DataFrame:
    """Rows as the tracking step gets them: one per model and sample, choices dropped."""
    items = samples_to_frame(samples).drop(columns=["choices"])
    frames = [items.assign(task=task, model=m, output="x") for m in models]
    return pd.concat(frames, ignore_index=True)


ARITHMETIC = [
    Sample(sample_id="1", prompt="2+2?", references=("4",)),
    Sample(
        sample_id="2",
        prompt="Capital of France?",
        system="Be brief.",
        references=("Paris", "paris"),
    ),
]
WEATHER = Tool(name="get_weather", parameters={"type": "object", "properties": {"city": {}}})
CALLING = [
    Sample(
        sample_id="c1",
        prompt="Weather in Oslo?",
        references=(),
        conversation=(Message(role="user", content="Weather in Oslo?"),),
        tools=(WEATHER,),
        expected=[{"get_weather": {"city": ["Oslo"]}}],
    )
]


def test_records_split_what_was_asked_from_what_is_right() -> None:
    first, second = evaluation_records(ARITHMETIC)
    assert first == {
        "inputs": {"sample_id": "1", "prompt": "2+2?"},
        "expectations": {"references": ["4"], "expected_response": "4"},
    }
    assert second["inputs"]["system"] == "Be brief."
    assert second["expectations"] == {"references": ["Paris", "paris"]}
    (call,) = evaluation_records(CALLING)
    assert call["inputs"]["tools"][0]["name"] == "get_weather"
    assert call["inputs"]["conversation"] == [
        {"role": "user", "content": "Weather in Oslo?", "tool_calls": [], "tool_call_id": None}
    ]
    assert call["expectations"] == {"expected": [{"get_weather": {"city": ["Oslo"]}}]}


def test_one_dataset_per_task_and_content_versioned_by_llmbench(experiment: str) -> None:
    frame = pd.concat([results("arithmetic", ARITHMETIC), results("calling", CALLING)])
    assert register_evaluation_datasets(frame, experiment) == {"arithmetic": 1, "calling": 1}
    (dataset,) = search_datasets(filter_string="name = 'arithmetic'")
    assert experiment in dataset.experiment_ids
    rows = dataset.to_df()
    assert len(rows) == 2  # one record per item, not per model
    assert sorted(r["prompt"] for r in rows["inputs"]) == ["2+2?", "Capital of France?"]
    digest = dataset.tags[DIGEST_TAG]

    # An unchanged rerun finds it: nothing new.
    assert register_evaluation_datasets(frame, experiment) == {"arithmetic": 1, "calling": 1}
    assert len(search_datasets(filter_string="name = 'arithmetic'")) == 1

    # A changed item makes version 2 beside version 1, which stays as it was.
    changed = [ARITHMETIC[0].model_copy(update={"references": ("four",)}), ARITHMETIC[1]]
    assert register_evaluation_datasets(results("arithmetic", changed), experiment) == {
        "arithmetic": 2
    }
    both = search_datasets(filter_string="name = 'arithmetic'")
    by_version = {d.tags[VERSION_TAG]: d for d in both}
    assert sorted(by_version) == ["1", "2"]
    assert by_version["1"].tags[DIGEST_TAG] == digest != by_version["2"].tags[DIGEST_TAG]
    expected = {r.get("expected_response") for r in by_version["2"].to_df()["expectations"]}
    assert expected == {"four", None}
