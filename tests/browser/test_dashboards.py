"""The dashboards as a person uses them, in headless Chromium: MLflow's UI, the ZenML
dashboard and report.html, on one real benchmark run (tests/browser/conftest.py).

Every expected value is read from the run's own files (leaderboard.csv, samples.jsonl),
never from the page. Screenshots go to $LLMBENCH_SCREENSHOTS (docs/images/ has copies).

Three tests check work that lands with other parts of issue 11: trace assessments
(test_mlflow_trace_assessments), the report as a ZenML visualization
(test_zenml_report_visualization) and report.html itself (test_report_html).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.browser.conftest import BenchmarkRun

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
Page, expect = sync_api.Page, sync_api.expect

pytestmark = pytest.mark.slow

MODEL = "175b-verification"
TASK = "gsm8k_replay"
HEADLINE = "exact_match"  # the task's first (headline) metric
SEARCH_CHARS = 24  # enough of a question to find its traces by text


def leaderboard(run: BenchmarkRun) -> dict[str, dict[str, str]]:
    with (run.output_dir / "leaderboard.csv").open() as handle:
        return {row["model"]: row for row in csv.DictReader(handle)}


def shown(value: str) -> str:
    """A metric as MLflow and pandas print it: 0.45, not 0.4500."""
    return f"{float(value):g}"


def open_experiment(page: Page, mlflow_url: str, experiment: str) -> None:
    """From MLflow's home page into the experiment (its GenAI Overview), with the first-visit
    tip and the assistant panel closed so the page is seen whole."""
    page.goto(mlflow_url)
    page.get_by_role("link", name=experiment, exact=True).click()
    page.get_by_role("button", name="Got it").click()
    page.get_by_role("button", name="Close", exact=True).click()


def search_term(prompt: str) -> str:
    """The question's opening words in plain ASCII: MLflow's trace search finds no match for
    a phrase with a typographic apostrophe (GSM8K's "Janet’s ducks")."""
    opening = re.match(r"[A-Za-z0-9 ]+", prompt)
    assert opening, f"no plain words open {prompt!r}"
    return opening.group(0)[:SEARCH_CHARS].strip()


def open_trace(page: Page, run: BenchmarkRun, mlflow_url: str, record: dict[str, object]) -> None:
    """The Traces tab, searched for ``record``'s question, then ``record``'s own trace."""
    open_experiment(page, mlflow_url, run.experiment)
    page.get_by_text("Traces", exact=True).first.click()
    expect(page.get_by_text(re.compile(rf"\bof {len(run.samples())}$"))).to_be_visible()
    term = search_term(str(record["prompt"]))
    page.get_by_placeholder("Search traces by id, input, or output").fill(term)
    page.keyboard.press("Enter")
    matching = [s for s in run.samples() if term in str(s["prompt"]) or term in str(s["output"])]
    expect(page.get_by_text(f"{len(matching)} of {len(run.samples())}")).to_be_visible()
    rows = page.get_by_role("row").filter(has_text="llmbench.model:")
    mine = rows.filter(has_text=f"llmbench.model: {record['model']}")
    mine.get_by_role("link", name=re.compile(r"^Open trace .* input$")).click()
    expect(page.get_by_text(f"{record['model']}: answer", exact=True)).to_be_visible()


def first_correct(run: BenchmarkRun) -> dict[str, object]:
    """The first item ``MODEL`` answered right (its traces carry a score of 1)."""
    return next(
        s
        for s in run.samples()
        if s["model"] == MODEL and s["scores"][HEADLINE] == 1.0  # type: ignore[index]
    )


def test_mlflow_overview_run_and_metric(
    page: Page, mlflow_url: str, benchmark_run: BenchmarkRun, screenshots: Path
) -> None:
    open_experiment(page, mlflow_url, benchmark_run.experiment)
    overview = page.get_by_role("heading", name="Overview")
    expect(overview).to_be_visible()
    # The Usage tab's trace count: one trace per answer.
    expect(page.get_by_text(str(len(benchmark_run.samples())), exact=True).first).to_be_visible()
    page.screenshot(path=screenshots / "mlflow-genai-overview.png")

    page.get_by_text("Model training", exact=True).click()
    parent = page.locator('[role=gridcell][col-id="attributes.`Run Name`"]').filter(
        has_text=benchmark_run.run_name
    )
    parent.get_by_role("button").click()  # expand: the models' runs are its children
    page.get_by_role("link", name=MODEL, exact=True).click()
    expect(page.get_by_role("heading", name=MODEL)).to_be_visible()
    metric = f"{TASK}/{HEADLINE}"
    row = page.get_by_role("row").filter(has=page.get_by_text(metric, exact=True))
    expect(row).to_contain_text(shown(leaderboard(benchmark_run)[MODEL][metric]))
    page.screenshot(path=screenshots / "mlflow-model-run.png")


def test_mlflow_trace(
    page: Page, mlflow_url: str, benchmark_run: BenchmarkRun, screenshots: Path
) -> None:
    record = first_correct(benchmark_run)
    open_trace(page, benchmark_run, mlflow_url, record)
    expect(page.get_by_text(str(record["prompt"]), exact=True).last).to_be_visible()
    page.screenshot(path=screenshots / "mlflow-trace.png")


def test_mlflow_trace_assessments(
    page: Page, mlflow_url: str, benchmark_run: BenchmarkRun, screenshots: Path
) -> None:
    """Needs the assessments logged with each trace (issue 11, MLflow native)."""
    record = first_correct(benchmark_run)
    open_trace(page, benchmark_run, mlflow_url, record)
    page.get_by_role("button", name="Assess").click()
    scores = record["scores"]
    assert isinstance(scores, dict)
    expect(page.get_by_text(f"Feedback ({len(scores)})", exact=True)).to_be_visible()
    # The feedback list: from its heading up to the first block that holds the score's card.
    feedback = page.get_by_text(f"Feedback ({len(scores)})", exact=True).locator(
        f"xpath=ancestor::div[.//*[normalize-space(text())='{HEADLINE}']][1]"
    )
    expect(feedback).to_contain_text(re.compile(rf"{HEADLINE}\s*1(\.0)?(?![0-9.])"))
    page.screenshot(path=screenshots / "mlflow-trace-assessments.png")


def open_zenml_artifact(page: Page, zenml_url: str, run_name: str, node: str) -> None:
    """The run's DAG, fitted to the view (nodes off screen are not drawn), then ``node``'s
    artifact panel on its Visualization tab, past the "Load Preview" button."""
    page.goto(f"{zenml_url}/projects/default/runs")
    page.get_by_role("link", name=re.compile(re.escape(run_name))).first.click()
    page.get_by_role("button", name="Fit view").click()
    page.get_by_role("button", name=node).first.click()
    page.get_by_role("tab", name="Visualization").click()
    page.get_by_role("button", name="Load Preview").click()


def test_zenml_run_and_leaderboard_preview(
    page: Page, zenml_dashboard: str, benchmark_run: BenchmarkRun, screenshots: Path
) -> None:
    page.goto(f"{zenml_dashboard}/projects/default/runs")
    run_link = page.get_by_role("link", name=re.compile(re.escape(benchmark_run.run_name)))
    expect(run_link.first).to_be_visible()
    open_zenml_artifact(page, zenml_dashboard, benchmark_run.run_name, "leaderboard DataFrame")
    # A DataFrame's visualization is its describe(): the best score is the max row's.
    expect(page.get_by_text("describe.csv")).to_be_visible()
    best = max(float(row["score"]) for row in leaderboard(benchmark_run).values())
    max_row = page.get_by_role("row").filter(has=page.get_by_text("max", exact=True))
    expect(max_row).to_contain_text(f"{best:g}")
    page.screenshot(path=screenshots / "zenml-run-leaderboard.png")


def test_zenml_report_visualization(
    page: Page, zenml_dashboard: str, benchmark_run: BenchmarkRun, screenshots: Path
) -> None:
    """Needs the `report` HTMLString artifact (issue 11, report.html)."""
    open_zenml_artifact(page, zenml_dashboard, benchmark_run.run_name, "report HTMLString")
    report = page.frame_locator("iframe").first
    expect(report.locator("#pareto-plot")).to_be_visible()
    expect(report.locator("#leaderboard")).to_contain_text(MODEL)
    page.screenshot(path=screenshots / "zenml-report.png")


def disagreeing_items(run: BenchmarkRun) -> int:
    """Items whose entrants scored differently on the headline metric, or where one failed
    and another answered: counted from samples.jsonl, not from the page."""
    scores: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    for sample in run.samples():
        value = None if sample["error"] else sample["scores"].get(HEADLINE)  # type: ignore[attr-defined]
        scores[(str(sample["task"]), str(sample["sample_id"]))].append(value)
    count = 0
    for values in scores.values():
        known = [v for v in values if v is not None]
        count += bool(known) and (len(known) < len(values) or max(known) != min(known))
    return count


def test_report_html(page: Page, benchmark_run: BenchmarkRun, screenshots: Path) -> None:
    """Needs report.html in the output folder (issue 11, report.html)."""
    report = benchmark_run.output_dir / "report.html"
    assert report.is_file(), f"the run wrote no {report.name} to {benchmark_run.output_dir}"
    page.goto(report.as_uri())
    expect(page.locator("#pareto-plot")).to_be_visible()
    board = page.locator("#leaderboard")
    for model in leaderboard(benchmark_run):
        expect(board).to_contain_text(model)
    page.screenshot(path=screenshots / "report.png", full_page=False)

    browser = page.locator("#sample-browser")
    visible_rows = browser.locator(".sample-row:not([hidden])")
    items = {(s["task"], s["sample_id"]) for s in benchmark_run.samples()}
    expect(visible_rows).to_have_count(len(items))
    expected = disagreeing_items(benchmark_run)
    assert 0 < expected < len(items), "the run must hold items both ways for this check"
    browser.locator('button[data-filter="disagree"]').click()
    expect(visible_rows).to_have_count(expected)
    browser.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "report-disagreements.png")
    browser.locator('button[data-filter="all"]').click()
    expect(visible_rows).to_have_count(len(items))
