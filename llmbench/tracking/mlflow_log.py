"""Log a finished benchmark to MLflow: a parent run, one child run per model.

Called once, from the pipeline's last step: ZenML's MLflow tracker is not safe with
parallel steps, and one writer keeps the runs consistent. Besides params, metrics and
tables, the runs get what MLflow's GenAI views read: a trace per answer with its scores as
assessments, each task's items as a dataset input, the prompts from the Prompt Registry;
and start and end times spanning the benchmark, not the logging step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import subprocess
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from llmbench.report.leaderboard import cost_basis, partial_note, spend_of
from llmbench.report.routing import routing_table, sweep_curves
from llmbench.report.statistics import Report
from llmbench.report.strategies import strategy_table
from llmbench.schema import PROJECT_ROOT, BenchConfig, Entrant, StrategySpec
from llmbench.tracking.datasets import log_datasets, register_evaluation_datasets, task_datasets
from llmbench.tracking.mlflow_report import log_report_page
from llmbench.tracking.prompts import register_prompts
from llmbench.tracking.traces import log_traces

logger = logging.getLogger("llmbench")

TRACKED_PACKAGES = (
    "llmbench",
    "zenml",
    "mlflow",
    "llama-cpp-python",
    "datasets",
    "evaluate",
    "openai",
    "anthropic",
    "google-genai",
    "ollama",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def ensure_experiment(config: BenchConfig) -> str:
    """Create the experiment with the configured artifact location if it does not exist."""
    import mlflow

    assert config.tracking.uri, "load() always resolves the tracking URI"
    mlflow.set_tracking_uri(config.tracking.uri)
    experiment = mlflow.get_experiment_by_name(config.tracking.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(
        mlflow.create_experiment(
            config.tracking.experiment, artifact_location=config.tracking.artifact_location
        )
    )


def price_snapshot(config: BenchConfig) -> dict[str, Any]:
    return {
        m.model: m.price.model_dump(exclude_none=True) for m in config.models if m.price is not None
    }


def _entrant_params(entrant: Entrant) -> dict[str, str]:
    if isinstance(entrant, StrategySpec):
        return {
            "cost_basis": cost_basis(entrant),
            "model": entrant.name,
            "provider": entrant.provider,
            "kind": entrant.kind,
            "members": json.dumps(entrant.members, sort_keys=True),
            "options": json.dumps(entrant.options, sort_keys=True),
        }
    return {
        "cost_basis": cost_basis(entrant),
        "model": entrant.name,
        "provider": entrant.provider,
        "model_id": entrant.model,
        "params": json.dumps(entrant.params.model_dump(mode="json"), sort_keys=True),
        "options": json.dumps(entrant.options, sort_keys=True),
        "price": json.dumps(
            entrant.price.model_dump(exclude_none=True) if entrant.price else {}, sort_keys=True
        ),
    }


def _log_answer_traces(
    config: BenchConfig,
    results: pd.DataFrame,
    parent: Any,
    run_ids: dict[str, str],
    *,
    started_ms: int,
    run_name: str,
    windows: Mapping[str, tuple[int, int]],
) -> None:
    """Every answer as a trace on the experiment's GenAI side. A failure here is reported
    and counted, never allowed to lose the run's results, which are already logged."""
    import mlflow

    models = (*config.models, *config.judges)
    prices = {m.name: m.price for m in models if m.price is not None}
    providers = {m.name: m.provider for m in models}
    providers.update({s.name: s.provider for s in config.strategies})
    try:
        ids = log_traces(
            results,
            parent.info.experiment_id,
            run_ids,
            prices,
            providers,
            started_ms=started_ms,
            run_name=run_name,
            model_started_ms={model: window[0] for model, window in windows.items()},
        )
    except Exception as exc:  # the answers are in the runs' tables and samples.jsonl
        logger.warning("MLflow traces were not logged: %s: %s", type(exc).__name__, exc)
        ids = []
    mlflow.log_metric("traces_logged", len(ids))


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics with a value: a blank (an unranked entrant's rank, NaN or NA) is left
    out, never logged as NaN."""
    return {k: float(v) for k, v in metrics.items() if not pd.isna(v)}


def _model_metrics(board_row: pd.Series) -> dict[str, float]:
    skip = {"model", "provider", "model_id", "cost_basis"}  # text: the run's params say it
    return _finite({k: v for k, v in board_row.items() if k not in skip})


def _listed(value: Any) -> Any:
    """A nested array (a judgment's turn grades after parquet) as a list, else its text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _loggable(frame: pd.DataFrame) -> pd.DataFrame:
    """Nested and mixed-type columns as JSON text, which MLflow tables can hold."""
    table = frame.dropna(axis=1, how="all").copy()
    for column in ("references", "judgments", "human_label"):
        if column in table:
            table[column] = table[column].map(
                lambda v: json.dumps(v.tolist() if hasattr(v, "tolist") else v, default=_listed)
            )
    return table


def _log_report(report: Report) -> None:
    import mlflow

    for name in ("intervals", "comparisons", "ratings", "judges", "draws", "rounds", "same_spend"):
        table = getattr(report, name)
        if not table.empty:
            mlflow.log_table(_loggable(table), artifact_file=f"statistics/{name}.json")
    metrics: dict[str, float] = {}
    for row in report.judges.to_dict("records"):
        prefix = f"judge/{row['task']}/{row['judge']}"
        for key in (
            "cost_usd",
            "unscored",
            "position_consistency",
            "panel_agreement",
            "human_accuracy",
            "human_kappa",
            "human_spearman",
        ):
            metrics[f"{prefix}/{key}"] = row[key]
    for row in report.comparisons.to_dict("records"):
        prefix = f"paired/{row['task']}/{row['model_a']}_vs_{row['model_b']}"
        metrics[f"{prefix}/difference"] = row["difference"]
        metrics[f"{prefix}/p_value"] = row["p_value"]
    for row in report.same_spend.to_dict("records"):
        prefix = f"same_spend/{row['task']}/{row['model']}"
        for key in (
            "vs_member",
            "vs_member_p",
            "cost_ratio",
            "draws",
            "vs_baseline",
            "vs_baseline_p",
        ):
            metrics[f"{prefix}/{key}"] = row[key]
    mlflow.log_metrics(_finite(metrics))


def _log_strategy(report: Report, model: str) -> None:
    """On a strategy's own run: the line saying what it buys (a tag), and its quality, cost
    and latency by round as metrics whose step is the round (MLflow draws them as curves)."""
    import mlflow

    lines = [str(x) for x in report.same_spend.loc[report.same_spend["model"] == model, "summary"]]
    if lines:
        mlflow.set_tag("llmbench.same_spend", "; ".join(lines)[:5000])
    for row in report.rounds[report.rounds["model"] == model].to_dict("records"):
        for key in ("quality", "low", "high", "mean_cost_usd", "mean_latency_s"):
            value = row[key]
            if value is not None and not math.isnan(float(value)):
                mlflow.log_metric(
                    f"rounds/{row['task']}/{key}", float(value), step=int(row["round"])
                )


def _report_metrics(report: Report, model: str) -> dict[str, float]:
    """This model's CI bounds for every metric, and its pairwise ratings."""
    metrics: dict[str, float] = {}
    for row in report.intervals[report.intervals["model"] == model].to_dict("records"):
        metrics[f"{row['task']}/{row['metric']}_ci_low"] = row["low"]
        metrics[f"{row['task']}/{row['metric']}_ci_high"] = row["high"]
    for row in report.ratings[report.ratings["model"] == model].to_dict("records"):
        for key in ("rating", "low", "high", "win_rate"):
            metrics[f"{row['task']}/bt_{key}"] = row[key]
    return _finite(metrics)


def _parent_run(experiment_id: str, run_name: str, started_ms: int | None) -> Any:
    """The benchmark's parent run, started at ``started_ms``, as the active run.

    ZenML's experiment tracker starts a run for the step; MLflow cannot move a run's
    start time, so that run is replaced by one created with the benchmark's start (its
    tags kept, so ZenML still ends it and records its id) and deleted if it holds nothing.
    Returns a context manager that ends the run only when ZenML does not."""
    import mlflow

    active = mlflow.active_run()
    if started_ms is None:
        if active is not None:
            return contextlib.nullcontext(active)
        return mlflow.start_run(experiment_id=experiment_id, run_name=run_name)
    client = mlflow.MlflowClient()
    tags = {}
    if active is not None:
        tags = {k: v for k, v in active.data.tags.items() if not k.startswith("mlflow.")}
        placeholder = client.get_run(active.info.run_id)
        mlflow.end_run()
        if not (placeholder.data.params or placeholder.data.metrics) and not any(
            k.startswith("llmbench.") for k in placeholder.data.tags
        ):
            client.delete_run(placeholder.info.run_id)
    created = client.create_run(experiment_id, start_time=started_ms, tags=tags, run_name=run_name)
    run = mlflow.start_run(run_id=created.info.run_id)
    return contextlib.nullcontext(run) if active is not None else run


def log_benchmark(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    results: pd.DataFrame,
    *,
    run_name: str,
    report: Report | None = None,
    extra_params: dict[str, str] | None = None,
    started_at_ms: int | None = None,
    entrant_windows: Mapping[str, tuple[int, int]] | None = None,
    page: str | None = None,
    figures: Mapping[str, bytes] | None = None,
) -> str:
    """Log everything; returns the parent run id. Without ``started_at_ms`` an active run
    (ZenML's tracker starts one for the step) is the parent, as it is.

    The statistics ``report`` lands as tables on the parent run (intervals, paired
    comparisons, ratings, judges) and as CI / rating metrics on each model's run.
    ``started_at_ms`` (the pipeline run's start, epoch ms) starts the parent run and the
    traces; ``entrant_windows`` maps an entrant to the (start, end) of its generation, its
    run's times (else the benchmark's start and now). ``page`` and ``figures``, when the
    report is already rendered (the pipeline's report step), are logged as they are."""
    import mlflow

    experiment_id = ensure_experiment(config)
    parent_ctx = _parent_run(experiment_id, run_name, started_at_ms)
    client = mlflow.MlflowClient()
    windows = dict(entrant_windows or {})
    versions = package_versions()
    with parent_ctx as parent, tempfile.TemporaryDirectory() as tmp:
        params = {
            "config_hash": config.fingerprint(),
            "config_name": config.name,
            "models": ",".join(m.name for m in config.models),
            "strategies": ",".join(s.name for s in config.strategies),
            "model_ids": ",".join(m.model for m in config.models),
            "tasks": ",".join(t.name for t in config.tasks),
            "limit": str(config.execution.limit),
            "seed": str(config.execution.seed),
            "git_sha": git_sha(),
            **{f"version.{k}": v for k, v in versions.items()},
            **(extra_params or {}),
        }
        mlflow.log_params(params)
        mlflow.set_tags({"llmbench.kind": "benchmark", "llmbench.run_name": run_name})
        folder = Path(tmp)
        leaderboard.to_csv(folder / "leaderboard.csv", index=False)
        (folder / "config.resolved.yaml").write_text(
            yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
        )
        (folder / "prices.snapshot.yaml").write_text(
            yaml.safe_dump(price_snapshot(config), sort_keys=True)
        )
        for name in ("leaderboard.csv", "config.resolved.yaml", "prices.snapshot.yaml"):
            mlflow.log_artifact(str(folder / name))
        cached = results["cached"].astype(bool)
        mlflow.log_metrics(
            {
                "cost_usd": float(results["cost_usd"].sum()),
                "spend_usd": spend_of(results),
                "saved_usd": float(results.loc[cached, "cost_usd"].sum()),
                "cache_hits": int(cached.sum()),
                "cache_misses": int((~cached).sum()),
                "errors": int(results["error"].notna().sum()),
                "judge_cost_usd": float(results["judge_cost_usd"].sum())
                if "judge_cost_usd" in results
                else 0.0,
            }
        )
        if report is not None:
            _log_report(report)
        log_report_page(config, leaderboard, results, report, run_name, page=page, figures=figures)
        if config.strategies:
            table = strategy_table(config, leaderboard, results)
            mlflow.log_table(_loggable(table), artifact_file="statistics/strategies.json")
            routing = routing_table(config, results)
            if not routing.empty:
                mlflow.log_table(_loggable(routing), artifact_file="statistics/routing.json")
                curves = sweep_curves(config, results)
                mlflow.log_table(_loggable(curves), artifact_file="statistics/sweeps.json")
                for row in routing.to_dict("records"):
                    prefix = f"routing/{row['task']}/{row['model']}"
                    mlflow.log_metrics(
                        _finite({f"{prefix}/{k}": row[k] for k in ("apgr", "cpt_50", "cpt_80")})
                    )
        run_ids: dict[str, str] = {}
        started_ms = int(parent.info.start_time)
        for model in config.entrants:
            board_row = leaderboard[leaderboard["model"] == model.name].iloc[0]
            mine = results[results["model"] == model.name]
            window = windows.get(model.name)
            created = client.create_run(
                parent.info.experiment_id,
                start_time=window[0] if window else started_ms,
                tags={"mlflow.parentRunId": parent.info.run_id},
                run_name=model.name,
            )
            with mlflow.start_run(run_id=created.info.run_id, nested=True) as child:
                run_ids[model.name] = child.info.run_id
                versions_seen = sorted(set(mine["model_version"].dropna()))
                mlflow.log_params(
                    {
                        **_entrant_params(model),
                        "model_version": ",".join(versions_seen) or "unknown",
                    }
                )
                router_file = (
                    (model.options.get("threshold") or {}).get("path")
                    if isinstance(model, StrategySpec)
                    else None
                )
                if isinstance(router_file, str) and Path(router_file).is_file():
                    mlflow.log_artifact(router_file, artifact_path="router")  # this run's version
                kind = "strategy" if isinstance(model, StrategySpec) else "model"
                mlflow.set_tags({"llmbench.kind": kind, "llmbench.model": model.name})
                note = partial_note(config, model.name)
                if note:  # no overall score, rank or interval is logged for it
                    mlflow.set_tags(
                        {
                            "llmbench.tasks": ",".join(config.tasks_of(model.name)),
                            "llmbench.note": note,
                        }
                    )
                mlflow.log_metrics(_model_metrics(board_row))
                if report is not None:
                    mlflow.log_metrics(_report_metrics(report, model.name))
                    if isinstance(model, StrategySpec):
                        _log_strategy(report, model.name)
                mlflow.log_table(_loggable(mine), artifact_file="samples.json")
            if window:  # the run ended when its generation did, not when it was logged
                client.set_terminated(child.info.run_id, end_time=window[1])
        all_runs = [parent.info.run_id, *run_ids.values()]
        _log_genai_inputs(config, results, all_runs)
        _log_answer_traces(
            config,
            results,
            parent,
            run_ids,
            started_ms=started_ms,
            run_name=run_name,
            windows=windows,
        )
        return str(parent.info.run_id)


def _log_genai_inputs(config: BenchConfig, results: pd.DataFrame, run_ids: list[str]) -> None:
    """Datasets and prompts: reported and skipped on failure, like the traces."""
    import mlflow

    try:
        log_datasets(task_datasets(results), run_ids)
    except Exception as exc:  # the items are in samples.jsonl and the runs' tables
        logger.warning("MLflow datasets were not logged: %s: %s", type(exc).__name__, exc)
    try:
        experiment_id = mlflow.get_run(run_ids[0]).info.experiment_id
        versions = register_evaluation_datasets(results, experiment_id)
        mlflow.log_params({f"dataset.{task}": str(v) for task, v in versions.items()})
    except Exception as exc:  # a file store has none; the items are in samples.jsonl
        logger.warning(
            "MLflow evaluation datasets were not registered: %s: %s", type(exc).__name__, exc
        )
    try:
        versions = register_prompts(config, run_ids[:1])  # linked to the parent run
        mlflow.log_params({f"prompt.{name}": str(v) for name, v in versions.items()})
    except Exception as exc:  # the templates are in config.resolved.yaml
        logger.warning("MLflow prompts were not registered: %s: %s", type(exc).__name__, exc)
