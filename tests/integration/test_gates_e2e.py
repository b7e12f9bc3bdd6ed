"""Gates as CI runs them: run.py twice on the same recorded outputs passes, a third run on
worse recorded outputs fails the regression gate with exit code 3; bad gate flags and a
schedule on the local orchestrator exit 2 before anything runs."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.cli_runs import ROOT, isolated_env

SOLUTIONS = ROOT.parent / "shared" / "data" / "gsm8k" / "example_model_solutions.jsonl"
# The same questions answered well (56% on the full set) and badly (22%): one model name, so
# the second config is "candidate got worse".
GOOD, BAD = "175b_verification", "6b_finetuning"


def write_config(folder: Path, output_field: str) -> Path:
    raw = {
        "name": "gates",
        "models": [
            {
                "name": "candidate",
                "provider": "recorded",
                "model": str(SOLUTIONS),
                "options": {"prompt_field": "question", "output_field": output_field},
            }
        ],
        "tasks": [str(ROOT / "configs" / "tasks" / "gsm8k_replay.yaml")],
        "tracking": {"experiment": "gates"},
    }
    path = folder / f"{output_field}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=folder,
        env=isolated_env(folder),
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    if not SOLUTIONS.is_file():
        pytest.skip(f"shared benchmark data not found at {SOLUTIONS}")
    return tmp_path


@pytest.mark.slow
def test_a_planted_regression_exits_3_and_an_unchanged_rerun_0(folder: Path) -> None:
    good, bad = write_config(folder, GOOD), write_config(folder, BAD)
    gates = [
        "--limit",
        "40",
        "--fail-on-regression",
        "--fail-under",
        "gsm8k_replay/exact_match=0.1",
    ]

    first = run(folder, "--config", str(good), "--output-dir", "first", *gates)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no previous run in experiment 'gates'" in first.stdout

    again = run(folder, "--config", str(good), "--output-dir", "again", *gates)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "All 2 quality gate check(s) passed" in again.stdout
    summary = (folder / "again" / "summary.md").read_text()
    assert "all 2 gate checks passed" in summary and "mcnemar on 40 paired items" in summary

    worse = run(folder, "--config", str(bad), "--output-dir", "worse", *gates)
    assert worse.returncode == 3, worse.stdout + worse.stderr
    assert "Quality gates failed" in worse.stdout and "regression" in worse.stdout
    suite = next(ET.parse(folder / "worse" / "gates.xml").getroot().iter("testsuite"))
    failed = [case.get("name") for case in suite if case.find("failure") is not None]
    assert failed == ["regression candidate gsm8k_replay/exact_match"]
    assert "**1 of 2 gate checks failed**" in (folder / "worse" / "summary.md").read_text()


def test_an_unknown_gate_metric_exits_2_listing_the_valid_ones(folder: Path) -> None:
    config = write_config(folder, GOOD)
    result = run(folder, "--config", str(config), "--fail-under", "gsm8k_replay/accuracy=0.5")
    assert result.returncode == 2
    assert "--fail-under" in result.stderr
    assert "use one of: gsm8k_replay/exact_match" in result.stderr
    assert not (folder / "results").exists()


def test_a_bad_cron_expression_exits_2(folder: Path) -> None:
    config = write_config(folder, GOOD)
    result = run(folder, "--config", str(config), "--schedule", "every night")
    assert result.returncode == 2
    assert "--schedule" in result.stderr and "five fields" in result.stderr


@pytest.mark.slow
def test_a_schedule_on_the_local_orchestrator_names_those_that_can(folder: Path) -> None:
    config = write_config(folder, GOOD)
    result = run(folder, "--config", str(config), "--schedule", "0 3 * * *")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'local' orchestrator, which cannot run pipelines on a schedule" in result.stderr
    for flavor in ("kubernetes", "vertex", "sagemaker"):
        assert flavor in result.stderr
    assert "generating" not in result.stderr  # nothing ran
