"""Pairwise order resolution, panel aggregation and judge config validation."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from llmbench import config as cfg
from llmbench.errors import ConfigError
from llmbench.scoring.judge import (
    combine_grades,
    combine_verdicts,
    model_pairs,
    resolve_orders,
    verdict_schema,
)


@pytest.mark.parametrize(
    ("forward", "swapped", "winner", "consistent"),
    [
        ("a", "a", "a", True),
        ("b", "b", "b", True),
        ("tie", "tie", "tie", True),
        ("a", "b", "tie", False),  # the preference followed the position
        ("a", "tie", "tie", False),
        ("a", None, None, None),  # one order unparsed: unscored
        (None, None, None, None),
    ],
)
def test_both_orders_must_agree(
    forward: str | None, swapped: str | None, winner: str | None, consistent: bool | None
) -> None:
    assert resolve_orders(forward, swapped) == (winner, consistent)


def test_model_pairs_all_or_against_a_baseline() -> None:
    assert model_pairs(["a", "b", "c"], None) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert model_pairs(["a", "b", "c"], "b") == [("b", "a"), ("b", "c")]


def test_panel_grades_mean_and_majority() -> None:
    grades = pd.DataFrame(
        {
            "sample_id": ["1", "1", "1", "2", "2", "2", "3", "3", "3"],
            "judge": ["x", "y", "z"] * 3,
            "grade": [1.0, 1.0, 0.0, 1.0, math.nan, 0.0, math.nan, math.nan, math.nan],
        }
    )
    mean = combine_grades(grades, "mean")
    assert mean["1"] == pytest.approx(2 / 3)
    assert mean["2"] == 0.5  # NaN left out, not counted as 0
    assert math.isnan(mean["3"])
    majority = combine_grades(grades, "majority")
    assert majority["1"] == 1.0
    assert math.isnan(majority["2"])  # an even split is unscored
    assert math.isnan(majority["3"])


def test_panel_verdicts_majority_split_is_a_tie() -> None:
    verdicts = pd.DataFrame(
        {
            "task": "t",
            "model_a": "a",
            "model_b": "b",
            "sample_id": ["1", "1", "1", "2", "2", "3"],
            "judge": ["x", "y", "z", "x", "y", "x"],
            "winner": ["a", "a", "b", "a", "b", None],
        }
    )
    combined = combine_verdicts(verdicts).set_index("sample_id")["winner"]
    assert combined["1"] == "a"
    assert combined["2"] == "tie"
    assert pd.isna(combined["3"])  # unscored


def test_verdict_schema_follows_the_scale() -> None:
    rubric = verdict_schema(cfg.JudgeSpec(mode="rubric", panel=["j"], scale=(1, 5)))
    assert rubric["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]
    assert list(rubric["properties"]) == ["explanation", "score"]  # reasoning before verdict
    pairwise = verdict_schema(cfg.JudgeSpec(mode="pairwise", panel=["j"]))
    assert pairwise["properties"]["verdict"]["enum"] == ["A", "B", "tie"]


BENCH = """
models:
  - name: m1
    provider: recorded
    model: outputs.jsonl
  - name: m2
    provider: recorded
    model: outputs.jsonl
judges:
  - name: j1
    provider: llamacpp
    model: smollm2-135m-instruct
    price: {per_hour: 0.1, source: test, date: "2026-01-01"}
tasks:
  - name: t1
    source: {path: data.jsonl}
    template: "{{ question }}"
    judge: JUDGE
"""


def load(tmp_path: Path, judge: str) -> cfg.BenchConfig:
    (tmp_path / "data.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    path = tmp_path / "bench.yaml"
    path.write_text(BENCH.replace("JUDGE", judge))
    return cfg.load(path)


def test_a_judged_task_needs_no_metrics_or_target(tmp_path: Path) -> None:
    config = load(tmp_path, "{mode: rubric, panel: [j1]}")
    assert config.tasks[0].judge is not None
    assert config.models[0].model == str(tmp_path / "outputs.jsonl")  # resolved like data
    assert config.models[0].price is not None  # recorded outputs cost nothing further


@pytest.mark.parametrize(
    ("judge", "field", "message"),
    [
        ("{mode: rubric, panel: [nobody]}", "", "no judge or model named 'nobody'"),
        ("{mode: reference, panel: [j1]}", "", "set 'target'"),
        ("{mode: rubric, panel: [j1], scale: [5, 1]}", "judge", "must be below"),
        ("{mode: pairwise, panel: [j1], pass_fail: true}", "judge", "rubric and reference"),
        ("{mode: pairwise, panel: [j1], baseline: m9}", "", "no model or strategy named 'm9'"),
        ("{mode: rubric, panel: [j1, j1]}", "judge", "listed twice"),
        ("{mode: rubric, panel: [j1], temperature: 0}", "judge.temperature", "unknown"),
    ],
)
def test_bad_judge_configs_are_named(tmp_path: Path, judge: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, judge)
    assert message in info.value.message
    if field:
        assert info.value.field == field


def test_human_labels_are_read_and_checked(tmp_path: Path) -> None:
    from llmbench.errors import DatasetError
    from llmbench.scoring.judged import labels_for, read_human_labels

    sheet = tmp_path / "ratings.csv"
    sheet.write_text(
        "task,model,sample_id,output,human_label\n"
        "t,a,1,x,7\nt,a,2,y,\nt,b,1,z,PASS\nt,b,007,w,fail\n"
    )
    spec = cfg.HumanLabelsSpec(path=str(sheet))
    labels = read_human_labels(spec, "t")
    assert labels_for(labels, "a") == {"1": 7.0}  # the blank label is not a rating
    assert labels_for(labels, "b") == {"1": 1.0, "007": 0.0}  # ids stay text

    with pytest.raises(DatasetError, match="human labels file not found"):
        read_human_labels(cfg.HumanLabelsSpec(path=str(tmp_path / "none.csv")), "t")
    with pytest.raises(DatasetError, match="no column 'rating'") as info:
        read_human_labels(cfg.HumanLabelsSpec(path=str(sheet), label="rating"), "t")
    assert info.value.field == "tasks.t.judge.human_labels"


@pytest.mark.parametrize("bad", ["7/10", "n/a", "11"])
def test_a_bad_human_label_names_its_row(tmp_path: Path, bad: str) -> None:
    from llmbench.errors import DatasetError
    from llmbench.scoring.judged import read_human_labels

    sheet = tmp_path / "ratings.csv"
    sheet.write_text(f"model,sample_id,human_label\na,1,7\na,2,{bad}\n,3,4\n")
    spec = cfg.HumanLabelsSpec(path=str(sheet))
    with pytest.raises(DatasetError, match=f"row 3: human label '?{bad}'? is not a grade"):
        read_human_labels(spec, "t", (1.0, 10.0))
    sheet.write_text("model,sample_id,human_label\na,1,7\n,3,4\n")
    labels = read_human_labels(spec, "t", (1.0, 10.0))
    assert labels_for_all(labels) == {"1": 7.0, "3": 4.0}  # a blank model: every model's


def labels_for_all(labels: pd.DataFrame) -> dict[str, float]:
    from llmbench.scoring.judged import labels_for

    return labels_for(labels, "a")


def test_pairwise_needs_two_models_even_after_select(tmp_path: Path) -> None:
    config = load(tmp_path, "{mode: pairwise, panel: [j1], baseline: m2}")
    with pytest.raises(ConfigError, match="two or more models") as info:
        config.select(["m1"], None)  # --models m1: the pairwise task has no pair left
    assert "--models / --tasks" in (info.value.hint or "")
    assert config.select(["m2", "m1"], None).models[0].name == "m2"
