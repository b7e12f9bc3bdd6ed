"""Run the benchmark pipeline on the local stack and collect what it produced."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import pandas as pd
from zenml.config.schedule import Schedule
from zenml.enums import ExecutionStatus
from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import (
    MLFlowExperimentTracker,
)
from zenml.integrations.registry import integration_registry

from llmbench.errors import ConfigError
from llmbench.providers.keys import forget_keys
from llmbench.providers.llama_server import stop_servers
from llmbench.providers.registry import provider_class
from llmbench.providers.remote import RemoteProvider
from llmbench.report.statistics import Report
from llmbench.runtime.workers import import_sdks
from llmbench.schema import BenchConfig
from llmbench.tracking.mlflow_log import ensure_experiment
from pipelines.benchmark import benchmark
from pipelines.stack import (
    check_schedulable,
    ensure_local_stack,
    remote_docker_settings,
    use_stack,
)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    run_name: str
    leaderboard: pd.DataFrame
    results: pd.DataFrame
    report: Report
    page: str  # report.html as the report step rendered it
    mlflow_run_id: str
    generations: int
    generations_cached: int
    judgings: int = 0
    judgings_cached: int = 0


# ZenML's integrations whose activation only registers materializers for model and tensor
# types: llmbench's artifacts are DataFrames, dicts and text, and never one of these.
UNUSED_INTEGRATIONS = (
    "huggingface",
    "lightgbm",
    "pytorch",
    "pytorch_lightning",
    "sklearn",
    "tensorflow",
    "xgboost",
)
# The frameworks whose MLflow autologging ZenML's MLflow tracker turns off after its step,
# by the module each needs imported.
AUTOLOG_FRAMEWORKS = {
    "tensorflow": "tensorflow",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "statsmodels": "statsmodels",
    "spark": "pyspark",
    "sklearn": "sklearn",
    "fastai": "fastai",
    "pytorch": "torch",
}


def skip_unused_frameworks() -> None:
    """Keep ML frameworks llmbench never uses out of this process (~2.5 s of imports per run
    with scikit-learn and torch installed; torch comes with sentence-transformers).

    ZenML imports them twice over: it activates every installed integration before it
    compiles a run (importing its materializers), and its MLflow tracker turns off MLflow
    autologging after the track step for eight frameworks by importing each. Here the
    integrations above activate as nothing, any other (pandas, MLflow, a remote stack's) as
    before, and autologging is turned off for the frameworks this process imported: for any
    other it was never on (nothing here turns it on)."""
    for name in UNUSED_INTEGRATIONS:
        integration = integration_registry.integrations.get(name)
        if integration is not None:
            integration.activate = classmethod(lambda cls: None)  # type: ignore[method-assign,assignment]
    MLFlowExperimentTracker.disable_autologging = _disable_imported_autologging  # type: ignore[method-assign,assignment]


def _disable_imported_autologging(tracker: MLFlowExperimentTracker) -> None:
    for framework, module in AUTOLOG_FRAMEWORKS.items():
        if module in sys.modules:
            try:
                importlib.import_module(f"mlflow.{framework}").autolog(disable=True)
            except Exception:  # as ZenML's own: a framework MLflow cannot handle is left alone
                continue


def check_secrets(config: BenchConfig) -> None:
    """Every ZenML secret a model names exists and holds its key variable."""
    from zenml.client import Client

    client = Client()
    for model in (*config.models, *config.judges):
        if not model.secret:
            continue
        cls = provider_class(model.provider)
        try:
            secret = client.get_secret(model.secret)
        except KeyError:
            raise ConfigError(
                f"ZenML secret {model.secret!r} not found",
                field=f"models.{model.name}.secret",
                hint=f"zenml secret create {model.secret} --<KEY_VARIABLE>=<value>",
            ) from None
        variables = cls.key_variables(model) if issubclass(cls, RemoteProvider) else ()
        present = set(secret.secret_values)
        if variables and not present & set(variables):
            raise ConfigError(
                f"ZenML secret {model.secret!r} has no {' or '.join(variables)}",
                field=f"models.{model.name}.secret",
                hint=f"zenml secret update {model.secret} --{variables[0]}=<value>",
            )


def select_stack(config: BenchConfig, stack: str | None) -> str:
    """The named stack, or the local one (created or updated); returns its id."""
    return use_stack(stack) if stack else ensure_local_stack(config.tracking.uri or "")


def schedule_benchmark(
    config: BenchConfig, fingerprints: dict[str, str], cron: str, stack: str | None
) -> None:
    """Register the benchmark to run on ``cron`` with the stack's orchestrator (each run is
    named <config name>-<date>-<time>); exit 2 if the orchestrator cannot schedule."""
    check_schedulable(select_stack(config, stack))
    skip_unused_frameworks()
    check_secrets(config)
    ensure_experiment(config)
    name = f"{config.name}-{{date}}-{{time}}"
    benchmark.with_options(
        run_name=name,
        schedule=Schedule(name=f"{config.name}-schedule", cron_expression=cron),
        settings={"docker": remote_docker_settings()},
    )(config=config.model_dump(mode="json"), fingerprints=fingerprints, run_name=name)


def run_benchmark(
    config: BenchConfig,
    fingerprints: dict[str, str],
    run_name: str,
    *,
    use_cache: bool = True,
    refresh: bool = False,
    stack: str | None = None,
) -> RunOutcome:
    select_stack(config, stack)
    skip_unused_frameworks()
    check_secrets(config)
    ensure_experiment(config)
    import_sdks(config.models)
    pipeline = benchmark.with_options(
        run_name=run_name,
        enable_cache=use_cache,
        settings={"docker": remote_docker_settings()} if stack else None,
    )
    try:
        run = pipeline(
            config=config.model_dump(mode="json"),
            fingerprints=fingerprints,
            run_name=run_name,
            refresh=refresh,
        )
    finally:
        stop_servers()  # the local models' llama-servers end with the run that needed them
        forget_keys()  # the secrets its steps gave their models end with it too
    assert run is not None
    steps = run.steps
    generations = [s for name, s in steps.items() if name.startswith(("generate__", "answer__"))]
    judgings = [s for name, s in steps.items() if name.startswith(("grade__", "compare__"))]
    board_step = steps["leaderboard"]
    return RunOutcome(
        run_id=str(run.id),
        run_name=run.name,
        leaderboard=board_step.outputs["leaderboard"][0].load(),
        results=board_step.outputs["all_results"][0].load(),
        report=Report.from_frame(board_step.outputs["statistics"][0].load()),
        page=str(steps["report"].outputs["report"][0].load()),
        mlflow_run_id=str(steps["track"].outputs["mlflow_run_id"][0].load()),
        generations=len(generations),
        generations_cached=sum(s.status == ExecutionStatus.CACHED for s in generations),
        judgings=len(judgings),
        judgings_cached=sum(s.status == ExecutionStatus.CACHED for s in judgings),
    )
