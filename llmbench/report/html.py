"""report.html: one self-contained page per run (styles, script and plots inlined, no URL
to fetch), so it opens from ``file://``, in MLflow's artifact view and in the ZenML
dashboard, whose content security policy blocks CDN scripts and web fonts."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from llmbench.report.browser import FILTERS, Browser, sample_browser
from llmbench.report.leaderboard import answer_speeds, partial_note
from llmbench.report.plots import (
    data_uri,
    draws_figure,
    latency_figure,
    pareto_figure,
    pareto_points,
    png_bytes,
    rounds_figure,
)
from llmbench.report.statistics import OVERALL, Report, headline, score_keys
from llmbench.schema import BenchConfig, StrategySpec

REPORT_FILE = "report.html"
PARETO_PNG = "pareto.png"
LATENCY_PNG = "latency.png"
ROUNDS_PNG = "rounds.png"
DRAWS_PNG = "draws.png"
# Counts that are blank where they do not apply (a score that is not right or wrong).
COUNTS = {"wrong_to_right": "Int64", "right_to_wrong": "Int64"}
MISSING = "—"
# Pipeline steps are threads of one process and matplotlib promises no thread safety: the
# report and track steps draw one at a time.
_DRAWING = threading.Lock()


@dataclass(frozen=True)
class Cell:
    text: str
    sort: float | None = None  # what a numeric column sorts by; None sorts last


@dataclass(frozen=True)
class HtmlTable:
    id: str
    headers: list[str]
    numeric: list[bool]
    rows: list[list[Cell]]


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def dollars(value: float) -> str:
    """USD to three significant digits without an exponent ($0.0000683, $0.0123, $4.56),
    whole cents from $1 up."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    decimals = 2 - math.floor(math.log10(abs(value)))
    return f"${value:.{decimals}f}"


def formatted(value: Any, kind: str) -> Cell:
    """A figure as the report shows it: dollars to 3 significant digits (4 decimals for
    prices), seconds to 2 decimals, counts whole, scores to 3 decimals; missing as a dash."""
    number = _number(value)
    if number is None:
        return Cell(MISSING if kind != "text" or value is None else str(value))
    if kind == "usd":
        return Cell(dollars(number), number)
    if kind == "price":
        return Cell(f"${number:,.4g}", number)
    if kind == "s":
        return Cell(f"{number:.2f}", number)
    if kind == "int":
        return Cell(f"{number:,.0f}", number)
    if kind == "rate":
        return Cell(f"{number:.1f}", number)
    if kind == "p":
        return Cell(f"{number:.2g}" if number < 0.001 else f"{number:.3f}", number)
    return Cell(f"{number:.3f}", number)


def _ci(low: Any, high: Any) -> Cell:
    lo, hi = _number(low), _number(high)
    if lo is None or hi is None:
        return Cell(MISSING)
    return Cell(f"{lo:.3f} – {hi:.3f}", lo)


def leaderboard_view(config: BenchConfig, leaderboard: pd.DataFrame) -> HtmlTable:
    """Quality with its CI and rank, cost and cost per right answer, prices and context
    window from the price snapshot, latency and speed: every figure from leaderboard.csv."""
    tasks = [(f"{t.name}/{headline(t).key}", f"{t.name} {headline(t).key}") for t in config.tasks]
    columns: list[tuple[str, str, str]] = [
        ("rank", "rank", "int"),
        ("model", "entrant", "text"),
        ("kind", "kind", "text"),
        ("score", "score", "score"),
        ("score_ci", f"{config.stats.confidence:.0%} CI", "ci"),
        *((key, label, "score") for key, label in tasks),
        ("cost_usd", "cost", "usd"),
        ("cost_per_correct_usd", "$ / right answer", "usd"),
        ("price_input_per_1m_usd", "$ / 1M input", "price"),
        ("price_output_per_1m_usd", "$ / 1M output", "price"),
        ("price_per_hour_usd", "$ / hour", "price"),
        ("context_window", "context window", "int"),
        ("cost_basis", "cost from", "text"),
        ("latency_p50_s", "p50 s", "s"),
        ("latency_p95_s", "p95 s", "s"),
        ("ttft_p50_s", "TTFT p50 s", "s"),
        ("output_tokens_per_s", "output tok/s", "rate"),
        ("errors", "errors", "int"),
    ]
    if any(t.judge for t in config.tasks):
        columns.append(("judge_cost_usd", "judge cost", "usd"))
    kinds = {
        e.name: "strategy" if isinstance(e, StrategySpec) else "model" for e in config.entrants
    }
    rows = []
    for record in leaderboard.to_dict("records"):
        record["kind"] = kinds.get(str(record["model"]), "model")
        if config.partial(str(record["model"])):  # the footnote says why: no overall score
            mine = config.tasks_of(str(record["model"]))
            record["kind"] += f" ({len(mine)} of {len(config.tasks)} tasks)"
        row = []
        for key, _, kind in columns:
            if kind == "ci":
                row.append(_ci(record.get("score_ci_low"), record.get("score_ci_high")))
            elif kind == "text":
                row.append(Cell(str(record.get(key, MISSING))))
            else:
                row.append(formatted(record.get(key), kind))
        rows.append(row)
    return HtmlTable(
        "leaderboard",
        [label for _, label, _ in columns],
        [kind != "text" for _, _, kind in columns],
        rows,
    )


def task_views(config: BenchConfig, leaderboard: pd.DataFrame, report: Report) -> list[HtmlTable]:
    """Per task: each entrant's rank and every score with its CI."""
    views = []
    cis = {
        (str(r["model"]), str(r["task"]), str(r["metric"])): r
        for r in report.intervals.to_dict("records")
    }
    for n, task in enumerate(config.tasks):
        keys = score_keys(task)
        rows = []
        for record in leaderboard.to_dict("records"):
            model = str(record["model"])
            if not config.runs_on(model, task.name):  # a strategy on other tasks only
                continue
            row = [formatted(record.get(f"{task.name}/rank"), "int"), Cell(model)]
            for key in keys:
                row.append(formatted(record.get(f"{task.name}/{key}"), "score"))
                ci = cis.get((model, task.name, key))
                row.append(_ci(ci["low"], ci["high"]) if ci else Cell(MISSING))
            rows.append(row)
        headers = ["rank", "entrant", *(h for key in keys for h in (key, f"{key} CI"))]
        numeric = [True, False, *(True for _ in keys for _ in range(2))]
        views.append(HtmlTable(f"task-{n}", headers, numeric, rows))
    return views


def latency_view(
    config: BenchConfig, leaderboard: pd.DataFrame, results: pd.DataFrame
) -> HtmlTable:
    """Per entrant: latency percentiles, time to first token and output speed."""
    board = leaderboard.set_index("model")
    live = results[results["error"].isna()]
    rows = []
    for entrant in config.entrants:
        mine = live[live["model"] == entrant.name]
        rate = answer_speeds(mine)
        record = board.loc[entrant.name] if entrant.name in board.index else pd.Series()
        rows.append(
            [
                Cell(entrant.name),
                formatted(len(mine), "int"),
                formatted(record.get("latency_p50_s"), "s"),
                formatted(record.get("latency_p95_s"), "s"),
                formatted(record.get("ttft_p50_s"), "s"),
                formatted(rate.median() if len(rate) else None, "rate"),
                formatted(rate.quantile(0.05) if len(rate) else None, "rate"),
            ]
        )
    headers = [
        "entrant",
        "answers",
        "latency p50 s",
        "latency p95 s",
        "TTFT p50 s",
        "output tok/s p50",
        "output tok/s p5",
    ]
    return HtmlTable("latency", headers, [h != "entrant" for h in headers], rows)


def comparison_view(report: Report) -> HtmlTable:
    """The paired tests behind the ranks: difference with its CI, p-values, significance."""
    headers = [
        "task",
        "metric",
        "A",
        "B",
        "A − B",
        "CI",
        "p",
        "p (Holm)",
        "test",
        "n",
        "significant",
        "better",
    ]
    rows = []
    for r in report.comparisons.to_dict("records"):
        rows.append(
            [
                Cell("overall" if r["task"] == OVERALL else str(r["task"])),
                Cell(str(r["metric"])),
                Cell(str(r["model_a"])),
                Cell(str(r["model_b"])),
                formatted(r["difference"], "score"),
                _ci(r["low"], r["high"]),
                formatted(r["p_value"], "p"),
                formatted(r["p_holm"], "p"),
                Cell(str(r["method"])),
                formatted(r["n"], "int"),
                Cell("yes" if bool(r["significant"]) else "no"),
                Cell(r["better"] if isinstance(r["better"], str) else ""),
            ]
        )
    numeric = [h in ("A − B", "CI", "p", "p (Holm)", "n") for h in headers]
    return HtmlTable("comparisons", headers, numeric, rows)


def _column_kind(name: str, column: pd.Series) -> str:
    """How a statistics column's numbers read: dollars by ``*_usd`` (to 3 decimals a cost
    per item of $0.00004 reads as 0), seconds by ``*_s``, counts whole, the rest as scores."""
    if name.endswith("_usd"):
        return "usd"
    if name.endswith("_s"):
        return "s"
    return "int" if pd.api.types.is_integer_dtype(column) else "score"


def frame_view(table_id: str, frame: pd.DataFrame) -> HtmlTable:
    """Any statistics table as it is: dollars as dollars, seconds to 2 decimals, scores to
    3, text as text."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool for c in frame]
    kinds = [_column_kind(str(c), frame[c]) for c in frame]
    rows = [
        [
            formatted(v, kind) if is_number else Cell(MISSING if v is None else str(v))
            for v, is_number, kind in zip(record, numeric, kinds, strict=True)
        ]
        for record in frame.itertuples(index=False)
    ]
    return HtmlTable(table_id, [str(c) for c in frame.columns], numeric, rows)


def same_spend_view(report: Report) -> HtmlTable:
    """What each multi-step strategy buys: against its best member, and against that member
    given the same money per item (its n votes, or on a judged task its USC pick of n
    draws), each with its paired test."""
    headers = [
        "strategy",
        "task",
        "score",
        "best member",
        "its score",
        "vs member",
        "p",
        "cost ×",
        "same-spend baseline",
        "its score",
        "vs baseline",
        "p",
        "$ / item",
        "baseline $ / item",
    ]
    rows = []
    for r in report.same_spend.to_dict("records"):
        rows.append(
            [
                Cell(str(r["model"])),
                Cell(str(r["task"])),
                formatted(r["score"], "score"),
                Cell(str(r["best_member"])),
                formatted(r["member_score"], "score"),
                formatted(r["vs_member"], "score"),
                formatted(r["vs_member_p"], "p"),
                formatted(r["cost_ratio"], "rate"),
                Cell(r["baseline"] if isinstance(r["baseline"], str) else MISSING),
                formatted(r["baseline_score"], "score"),
                formatted(r["vs_baseline"], "score"),
                formatted(r["vs_baseline_p"], "p"),
                formatted(r["cost_per_item_usd"], "usd"),
                formatted(r["baseline_cost_per_item_usd"], "usd"),
            ]
        )
    numeric = [h not in ("strategy", "task", "best member", "same-spend baseline") for h in headers]
    return HtmlTable("same-spend", headers, numeric, rows)


def report_figures(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    results: pd.DataFrame,
    report: Report | None = None,
) -> dict[str, bytes]:
    """The report's plots as PNG files by name: what is inlined and what MLflow gets (the
    strategies' by-round and by-draw plots where the run has them)."""
    points = pareto_points(config, leaderboard)
    confidence = config.stats.confidence
    with _DRAWING:
        figures = {
            PARETO_PNG: png_bytes(pareto_figure(points, confidence)),
            LATENCY_PNG: png_bytes(latency_figure(config, results)),
        }
        if report is not None and not report.rounds.empty:
            figures[ROUNDS_PNG] = png_bytes(rounds_figure(report.rounds, confidence))
        if report is not None and not report.draws.empty:
            figures[DRAWS_PNG] = png_bytes(draws_figure(report.draws, confidence))
        return figures


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("llmbench.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_report(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    results: pd.DataFrame,
    report: Report | None = None,
    *,
    run_name: str = "",
    figures: dict[str, bytes] | None = None,
) -> str:
    """The page's HTML. ``figures`` (from :func:`report_figures`) when already drawn."""
    figures = (
        figures if figures is not None else report_figures(config, leaderboard, results, report)
    )
    browser: Browser = sample_browser(config, results)
    points = pareto_points(config, leaderboard)
    context = {
        "config": config,
        "run_name": run_name,
        "leaderboard": leaderboard_view(config, leaderboard),
        "partial_notes": [
            note for name in leaderboard["model"] if (note := partial_note(config, str(name)))
        ],
        "frontier": [str(m) for m in points.loc[points["pareto"], "model"]],
        "pareto_png": data_uri(figures[PARETO_PNG]),
        "latency_png": data_uri(figures[LATENCY_PNG]),
        "latency": latency_view(config, leaderboard, results),
        "tasks": list(zip(config.tasks, task_views(config, leaderboard, report), strict=True))
        if report is not None
        else [],
        "comparisons": comparison_view(report) if report is not None else None,
        "ratings": frame_view("ratings", report.ratings)
        if report is not None and not report.ratings.empty
        else None,
        "judges": frame_view("judges", report.judges.dropna(axis=1, how="all"))
        if report is not None and not report.judges.empty
        else None,
        "same_spend": same_spend_view(report)
        if report is not None and not report.same_spend.empty
        else None,
        "same_spend_lines": [str(x) for x in report.same_spend["summary"]]
        if report is not None
        else [],
        "rounds": frame_view("rounds", report.rounds.astype(COUNTS))
        if report is not None and not report.rounds.empty
        else None,
        "rounds_png": data_uri(figures[ROUNDS_PNG]) if ROUNDS_PNG in figures else None,
        "draws": frame_view("draws", report.draws)
        if report is not None and not report.draws.empty
        else None,
        "draws_png": data_uri(figures[DRAWS_PNG]) if DRAWS_PNG in figures else None,
        "browser": browser,
        "counts": browser.counts(),
        "filters": FILTERS,
        "entrants": [e.name for e in config.entrants],
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    results: pd.DataFrame,
    report: Report | None,
    output_dir: Path,
    *,
    run_name: str = "",
    page: str | None = None,
) -> Path:
    """report.html in ``output_dir``: ``page`` as given (already rendered), else rendered."""
    path = output_dir / REPORT_FILE
    if page is None:
        page = render_report(config, leaderboard, results, report, run_name=run_name)
    path.write_text(page, encoding="utf-8")
    return path
