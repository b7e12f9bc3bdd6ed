"""The rating-sheet export: blind, sampled, and never overwriting a sheet."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llmbench import calibrate


def samples_file(folder: Path) -> Path:
    rows = [
        {
            "model": model,
            "task": "t",
            "sample_id": str(i),
            "prompt": f"q{i}",
            "references": [f"r{i}"],
            "output": f"{model} answer {i}",
            "error": "boom" if i == 0 else None,
            "judgments": [{"judge": "j", "grade": 7.0}],
            "scores": {"judge": 7.0},
        }
        for model in ("a", "b")
        for i in range(10)
    ]
    rows.append({"model": "a", "task": "plain", "sample_id": "0", "prompt": "x", "output": "y"})
    path = folder / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_export_is_blind_and_sampled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples_file(tmp_path)
    out = tmp_path / "sheet.csv"
    code = calibrate.main(["export", str(tmp_path), "--task", "t", "--n", "5", "-o", str(out)])
    assert code == 0
    sheet = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(sheet.columns) == calibrate.EXPORT_COLUMNS  # no judge grade: raters are blind
    assert len(sheet) == 5 and set(sheet["human_label"]) == {""}
    assert "0" not in set(sheet["sample_id"])  # failed requests are not rated
    again = tmp_path / "again.csv"
    calibrate.main(["export", str(tmp_path), "--task", "t", "--n", "5", "-o", str(again)])
    assert pd.read_csv(again, dtype=str).equals(pd.read_csv(out, dtype=str))  # seeded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "no samples of task 'nope' (tasks in this run: plain, t)"),
        (["--task", "plain"], "task 'plain' has no judged answers"),
    ],
)
def test_export_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    samples_file(tmp_path)
    assert calibrate.main(["export", str(tmp_path), *args, "-o", str(tmp_path / "s.csv")]) == 2
    assert message in capsys.readouterr().err


def test_missing_run_and_existing_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert calibrate.main(["export", str(tmp_path / "none"), "--task", "t", "-o", "x.csv"]) == 2
    assert "no samples.jsonl here" in capsys.readouterr().err
    samples_file(tmp_path)
    sheet = tmp_path / "ratings.csv"
    sheet.write_text("human ratings, hours of work\n")
    assert calibrate.main(["export", str(tmp_path), "--task", "t", "-o", str(sheet)]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert sheet.read_text() == "human ratings, hours of work\n"
