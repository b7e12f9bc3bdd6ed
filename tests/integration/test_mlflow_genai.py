"""A judged benchmark through run.py as MLflow's GenAI views and ZenML's run page read it:
a trace per answer with its scores as assessments (CODE, LLM_JUDGE with the rationale,
HUMAN), each task as a dataset input, prompts in the registry (not re-versioned by an
unchanged rerun), runs timed by the pipeline, and the ZenML run's headline metadata with
the MLflow run's link. The judge's API key appears in none of it."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.genai.datasets import search_datasets

from llmbench import config as cfg
from llmbench.schema import StrategySpec
from llmbench.tracking.prompts import register_prompts
from tests.cli_runs import isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer
from tests.integration.test_judge_e2e import KEY, QUESTIONS, judge_reply, write_bench

pytestmark = pytest.mark.slow

ZENML_VIEW = """
import json, sys
from zenml.client import Client
run = Client().get_pipeline_run(sys.argv[1])
def ms(t):
    from llmbench.tracking.run_summary import epoch_ms
    return epoch_ms(t) if t else None
print(json.dumps({
    "start": ms(run.start_time),
    "steps": {n: [ms(s.start_time), ms(s.end_time)] for n, s in run.steps.items()},
    "metadata": {k: [type(v).__name__, v] for k, v in run.run_metadata.items()},
}, default=str))
"""


def zenml_view(env: dict[str, str], run_name: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", ZENML_VIEW, run_name],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    view: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return view


def traces_of(client: mlflow.MlflowClient, experiment_id: str, run_id: str) -> list[Any]:
    return list(client.search_traces(locations=[experiment_id], run_id=run_id, max_results=500))


@pytest.fixture
def judged_run(server: ProviderServer, tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """The judged benchmark with human labels for every answer of the graded task."""
    server.default = judge_reply
    labels = tmp_path / "labels.csv"
    labels.write_text(
        # No model named: each label applies to every model's answer.
        "model,sample_id,human_label\n"
        + "".join(f",{i},{i % 9 + 1}\n" for i in range(len(QUESTIONS)))
    )
    config = write_bench(tmp_path, server, labels=labels)
    env = isolated_env(tmp_path, JUDGE_KEY=KEY)
    return config, env, tmp_path


def test_genai_views_and_zenml_run_page(
    judged_run: tuple[Path, dict[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path, env, folder = judged_run
    first = run_cli(folder, env, "--config", str(config_path), "--run-name", "genai-1")
    samples = [
        json.loads(line) for line in (folder / "results" / "genai-1" / "samples.jsonl").open()
    ]
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    # register_prompts below uses the process's tracking URI: this store's, for this test.
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("judged-e2e")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("llmbench.kind") == "benchmark"]
    children = {
        r.data.tags["llmbench.model"]: r
        for r in runs
        if r.data.tags.get("llmbench.kind") == "model"
    }
    assert sorted(children) == ["strong", "weak"] and len(runs) == 3
    assert "zenml" in parent.data.tags  # still the tracker's run to ZenML

    # Every answer a trace on its model's run, every score an assessment on it.
    for model, child in children.items():
        traces = traces_of(client, experiment.experiment_id, child.info.run_id)
        mine = {(s["task"], s["sample_id"]): s for s in samples if s["model"] == model}
        assert len(traces) == len(mine) == 2 * len(QUESTIONS)
        for trace in traces:
            meta = trace.info.trace_metadata
            sample = mine[meta["llmbench.task"], meta["llmbench.sample_id"]]
            assert trace.info.tags["llmbench.model"] == model
            assert trace.info.tags["llmbench.run"] == "genai-1"
            assert trace.info.request_time == child.info.start_time  # its generation's start
            (llm,) = [s for s in trace.data.spans if s.span_type == "LLM"]
            assert llm.attributes["mlflow.llm.model"] == model
            assert llm.attributes["mlflow.llm.provider"] == "recorded"
            assert "mlflow.chat.tokenUsage" in llm.attributes
            found = {a.name: a for a in trace.info.assessments}
            for metric, score in sample["scores"].items():
                if score is None:
                    continue
                assert found[metric].value == pytest.approx(score), metric
                kind = "LLM_JUDGE" if metric in ("judge", "win_rate") else "CODE"
                assert found[metric].source.source_type == kind
            if sample["task"] == "graded":
                assert found["judge"].rationale == "grader: checked"
                assert found["judge/grader"].source.source_id == "grader"
                assert found["human_label"].source.source_type == "HUMAN"
                assert found["human_label"].value == float(sample["human_label"])
            else:
                opponent = "weak" if model == "strong" else "strong"
                verdict = found[f"pairwise/grader/vs/{opponent}"]
                assert verdict.value == sample["judgments"][0]["verdict"]
                assert verdict.source.source_type == "LLM_JUDGE"

    # Each task a dataset input, the same digest on every run.
    digests = set()
    for run in (parent, *children.values()):
        inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
        assert sorted(inputs) == ["graded", "versus"]
        digests.add(tuple(sorted(inputs.items())))
    assert len(digests) == 1 and all(len(d) for _, d in digests.pop())

    # Prompts registered once; linked to the run.
    names = ("llmbench.task.graded", "llmbench.judge.reference", "llmbench.judge.pairwise")
    for name in names:
        assert parent.data.params[f"prompt.{name}"] == "1"
        assert len(client.search_prompt_versions(name)) == 1

    # The runs span the benchmark: from the pipeline's start, each model's run over its
    # generation steps, not the ~second of the logging step.
    zenml = zenml_view(env, "genai-1")
    assert parent.info.start_time == zenml["start"]
    track_start = zenml["steps"]["track"][0]
    assert parent.info.start_time < track_start <= parent.info.end_time
    for model, child in children.items():
        windows = [t for n, t in zenml["steps"].items() if n.startswith(f"generate__{model}__")]
        assert len(windows) == 2
        assert child.info.start_time == min(t[0] for t in windows)
        assert child.info.end_time == max(t[1] for t in windows)

    # The ZenML run page: leaders, cost, the MLflow run as a link.
    metadata = zenml["metadata"]
    url = metadata["mlflow_run"][1]
    assert url.endswith(f"/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}")
    assert metadata["leaders"][1]["graded"] == {
        "best": "strong",
        "metric": "exact_match",
        "score": 0.75,
    }
    assert metadata["cost_usd"][1] == pytest.approx(parent.data.metrics["judge_cost_usd"])
    (store,) = (folder / "zenml").rglob("zenml.db")
    with contextlib.closing(sqlite3.connect(store)) as db:
        types = dict(db.execute("SELECT key, type FROM run_metadata"))
        # The tracker's own step metadata names the parent run: ZenML ended that one.
        tracked = dict(db.execute("SELECT key, value FROM run_metadata"))["mlflow_run_id"]
    assert types["mlflow_run"] == "Uri"  # ZenML renders it as a link
    assert json.loads(tracked) == parent.info.run_id

    # Each task's items an evaluation dataset on the experiment's Datasets page.
    def datasets() -> dict[str, list[str]]:
        versions: dict[str, list[str]] = {}
        for found in search_datasets(experiment_ids=experiment.experiment_id, max_results=100):
            versions.setdefault(found.name, []).append(found.tags["llmbench_version"])
        return versions

    assert datasets() == {"graded": ["1"], "versus": ["1"]}
    assert parent.data.params["dataset.graded"] == "1"

    # An unchanged rerun logs a new benchmark run but no new prompt version or dataset.
    run_cli(folder, env, "--config", str(config_path), "--run-name", "genai-2")
    for name in names:
        assert len(client.search_prompt_versions(name)) == 1
    assert datasets() == {"graded": ["1"], "versus": ["1"]}
    parents = client.search_runs([experiment.experiment_id], "tags.`llmbench.kind` = 'benchmark'")
    assert len(parents) == 2

    # A changed template is a new version, and only that prompt gets one.
    bench = cfg.load(config_path)
    reworded = bench.tasks[0].model_copy(update={"template": "Question: {{ q }}"})
    bench = bench.model_copy(update={"tasks": [reworded, *bench.tasks[1:]]})
    assert register_prompts(bench, [])["llmbench.task.graded"] == 2
    assert len(client.search_prompt_versions("llmbench.judge.reference")) == 1

    # A strategy's prompts are registered beside them, by its name and option: the file's
    # text, a new version when the file is reworded.
    verifier = folder / "verify.j2"
    verifier.write_text("Right? {{ prompt }} {{ answer }}\n")
    checked = StrategySpec(
        name="checked",
        kind="cascade",
        members={"first": "weak", "last": "strong", "checker": "strong"},
        options={"escalate_on": ["low_grade"], "verifier": "checker"},
    )
    bench = bench.model_copy(update={"strategies": [checked]})
    name = "llmbench.strategy.checked.verifier_prompt"
    assert register_prompts(bench, [parent.info.run_id])[name] == 1
    registered = client.get_prompt_version(name, 1)
    assert registered.template.startswith("Is this answer to the question correct?")
    assert registered.tags["llmbench.strategy"] == "checked"
    options = {**checked.options, "verifier_prompt": {"file": str(verifier)}}
    bench = bench.model_copy(
        update={"strategies": [checked.model_copy(update={"options": options})]}
    )
    assert register_prompts(bench, [])[name] == 2
    assert client.get_prompt_version(name, 2).template == "Right? {{ prompt }} {{ answer }}"
    assert register_prompts(bench, [])[name] == 2

    # The judge's key is nowhere: not in the output, the MLflow store or ZenML's.
    assert KEY not in first.stdout + first.stderr
    for path in [*(folder / "mlruns").rglob("*"), *(folder / "zenml").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
