"""Process settings that keep a run offline and quiet; applied before ZenML/MLflow import.

Values already set by the user win, except where noted.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os

DEFAULTS = {
    "ZENML_ANALYTICS_OPT_IN": "false",  # no analytics calls (the global config alone is not enough)
    "ZENML_LOGGING_VERBOSITY": "WARN",  # no per-step banners; our own output says what happens
    "ZENML_ENABLE_RICH_TRACEBACK": "false",
    "ZENML_LOGGING_COLORS_DISABLED": "true",
    "AUTO_OPEN_DASHBOARD": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_EVALUATE_OFFLINE": "1",  # metrics are local modules; never look them up on the Hub
    "TOKENIZERS_PARALLELISM": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}


def configure_environment() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    # An empty catalog URI stops MLflow from fetching its model catalog over the network.
    os.environ["MLFLOW_MODEL_CATALOG_URI"] = os.environ.get("MLFLOW_MODEL_CATALOG_URI", "")
    # ZenML's MLflow tracker warns on every run that it cannot disable autologging for
    # frameworks that are not installed (fastai): noise, not a problem.
    logging.getLogger(
        "zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker"
    ).setLevel(logging.ERROR)
    _memoize_package_scan()


def _memoize_package_scan() -> None:
    """ZenML calls ``packages_distributions()`` (a scan of every installed package) for each
    DataFrame artifact it saves: ~1 s per step here. The answer cannot change during a run."""
    scan = importlib.metadata.packages_distributions
    if not hasattr(scan, "cache_info"):
        importlib.metadata.packages_distributions = functools.lru_cache(maxsize=None)(scan)  # type: ignore[assignment]
