"""report.html from a real run: the shipped RouteLLM replay (two recorded models and a
router, so a strategy is on the plot) through run.py, ZenML (isolated store) and MLflow."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest

from tests.cli_runs import isolated_env, run_cli
from tests.integration.test_real_judged import shipped

pytestmark = pytest.mark.slow

LIMIT = 40
ENTRANTS = ("mixtral-8x7b-instruct", "gpt-4-1106-preview", "random-router")
# Anything the page would fetch: a URL in src/href (absolute or protocol-relative), a CSS
# import or a url() to a server.
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)|@import|url\(\s*["']?\s*(?:https?:|//)""",
    re.IGNORECASE,
)


def zenml_report_artifact(folder: Path, env: dict[str, str], run_name: str) -> dict[str, Any]:
    """The run's ``report`` artifact, read back from the run's ZenML store (from a script
    file: loading an artifact needs a main module with a file)."""
    script = folder / "read_report.py"
    script.write_text(
        "import json\n"
        "from zenml.client import Client\n"
        f"run = Client().get_pipeline_run({run_name!r})\n"
        "artifact = run.steps['report'].outputs['report'][0]\n"
        "page = artifact.load()\n"
        "print(json.dumps({'name': artifact.name, 'type': type(page).__name__,\n"
        "    'visualizations': [str(v.type.value) for v in artifact.visualizations or []],\n"
        "    'page': str(page)}))\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_run_writes_logs_and_visualizes_its_report(tmp_path: Path, shared_data: Path) -> None:
    env = isolated_env(tmp_path)
    result = run_cli(
        tmp_path,
        env,
        "--config",
        str(shipped("routellm_gsm8k.yaml", tmp_path)),
        "--limit",
        str(LIMIT),
        "--output-dir",
        "out",
        "--run-name",
        "report-e2e",
    )
    # The console table (120 columns when not a terminal) never cuts a name.
    for name in ENTRANTS:
        assert name in result.stdout
    assert "report.html" in result.stdout

    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert EXTERNAL.search(page) is None, EXTERNAL.search(page)
    for hook in ('id="leaderboard"', 'id="pareto-plot"', 'id="sample-browser"'):
        assert hook in page, hook
    for name in ("all", "errors", "disagree", "judge-order"):
        assert f'data-filter="{name}"' in page
    assert page.count('class="sample-row"') == LIMIT  # one per item, every entrant in it
    assert len(set(re.findall(r'data-sample-id="([^"]+)"', page))) == LIMIT
    assert 'data-flags="disagree ' in page  # the weak and strong model differ somewhere
    for name in ENTRANTS:
        assert page.count(f'<div class="who">{name}</div>') == LIMIT
    assert page.count("data:image/png;base64,") == 2  # the Pareto and latency plots

    board = {r["model"]: r for r in csv.DictReader((tmp_path / "out" / "leaderboard.csv").open())}
    assert set(board) == set(ENTRANTS)
    mixtral = board["mixtral-8x7b-instruct"]
    assert float(mixtral["price_input_per_1m_usd"]) == 0.60
    assert float(mixtral["context_window"]) == 32768
    right = float(mixtral["routellm_gsm8k/exact_match"]) * LIMIT
    assert float(mixtral["cost_per_correct_usd"]) == pytest.approx(
        float(mixtral["cost_usd"]) / right
    )
    assert board["random-router"]["price_input_per_1m_usd"] == ""  # a strategy has no price
    for column in ("output_tokens_per_s", "ttft_p50_s", "price_output_per_1m_usd"):
        assert column in mixtral

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("routellm-gsm8k")
    assert experiment is not None
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`llmbench.kind` = 'benchmark'")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "report.html" in artifacts
    plots = {a.path: a.file_size for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert set(plots) == {"plots/pareto.png", "plots/latency.png"}
    assert all(size and size > 10_000 for size in plots.values())
    logged = Path(client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path)))
    assert logged.read_text(encoding="utf-8").count('class="sample-row"') == LIMIT

    artifact = zenml_report_artifact(tmp_path, env, "report-e2e")
    assert artifact["name"] == "report" and artifact["type"] == "HTMLString"
    assert artifact["visualizations"] == ["html"]  # what the dashboard shows for the run
    assert artifact["page"] == page
