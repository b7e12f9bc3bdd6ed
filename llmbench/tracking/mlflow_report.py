"""report.html and its plots on the MLflow parent run, where the artifact view shows them."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from llmbench.report.html import REPORT_FILE, render_report, report_figures
from llmbench.report.statistics import Report
from llmbench.schema import BenchConfig

logger = logging.getLogger("llmbench")
PLOTS_FOLDER = "plots"


def log_report_page(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    results: pd.DataFrame,
    report: Report | None,
    run_name: str,
    *,
    page: str | None = None,
    figures: Mapping[str, bytes] | None = None,
) -> None:
    """report.html at the artifact root and the plots as PNGs under plots/, on the active
    run: ``page`` and ``figures`` as given (rendered once, by the report step), else drawn
    here. A failure is reported, never allowed to lose the run's results, which are already
    logged (and report.html is also in the output folder)."""
    import mlflow

    try:
        if figures is None:
            figures = report_figures(config, leaderboard, results, report)
        if page is None:
            page = render_report(
                config, leaderboard, results, report, run_name=run_name, figures=dict(figures)
            )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / REPORT_FILE).write_text(page, encoding="utf-8")
            mlflow.log_artifact(str(folder / REPORT_FILE))
            for name, png in figures.items():
                (folder / name).write_bytes(png)
                mlflow.log_artifact(str(folder / name), artifact_path=PLOTS_FOLDER)
    except Exception as exc:  # the numbers are logged; only the page is missing
        logger.warning("report.html was not logged to MLflow: %s: %s", type(exc).__name__, exc)
