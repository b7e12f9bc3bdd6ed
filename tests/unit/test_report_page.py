"""report.html's parts from scored results: the Vellum-style leaderboard columns, the Pareto
plot's data, the sample browser's flags, the hooks the browser test clicks, and a page that
fetches nothing."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from rich.console import Console

from llmbench import config as cfg
from llmbench import stages
from llmbench.config import BenchConfig
from llmbench.report import statistics
from llmbench.report.browser import sample_browser
from llmbench.report.html import dollars, render_report
from llmbench.report.leaderboard import build_leaderboard
from llmbench.report.output import print_leaderboard
from llmbench.report.plots import frontier_line, pareto_points
from llmbench.scoring.judge import PAIR_COLUMNS
from llmbench.scoring.judged import pairwise_columns
from llmbench.tables import completions_to_frame
from llmbench.types import Completion

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 8
PRICE = {
    "input_per_1m": 1.0,
    "output_per_1m": 4.0,
    "context_window": 16384,
    "source": "test",
    "date": "2026-12-01",
}


def load_config(tmp_path: Path) -> BenchConfig:
    raw = {
        "name": "page",
        "models": [
            {
                "name": "right-model-name",
                "provider": "recorded",
                "model": "x.jsonl",
                "price": PRICE,
            },
            {
                "name": "wrong-model-name",
                "provider": "recorded",
                "model": "x.jsonl",
                "price": PRICE,
            },
            {
                "name": "local-model",
                "provider": "recorded",
                "model": "x.jsonl",
                "price": {"per_hour": 0.5, "source": "test", "date": "2026-12-01"},
            },
        ],
        "tasks": [str(ROOT / "configs" / "tasks" / "arithmetic.yaml")],
        "execution": {"limit": ITEMS},
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return cfg.load(path)


def completion(text: str, **fields: Any) -> Completion:
    return Completion(text=text, input_tokens=100, output_tokens=20, latency_s=2.0, **fields)


def scored(config: BenchConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """right-model-name answers every item right (streamed: TTFT 0.5 s); wrong-model-name and
    local-model only the first half, and wrong-model-name fails the last item."""
    (task,) = config.tasks
    samples = stages.load_task(task, ITEMS)
    ids = samples["sample_id"].tolist()
    answers = dict(zip(ids, samples["references"].map(lambda r: r[0]), strict=True))
    made = {
        "right-model-name": [completion(answers[i], ttft_s=0.5) for i in ids],
        "wrong-model-name": [
            completion(answers[i] if n < ITEMS // 2 else "-1")
            if n < ITEMS - 1
            else Completion(error="HTTP 500: upstream failed")
            for n, i in enumerate(ids)
        ],
        "local-model": [
            completion(answers[i] if n < ITEMS // 2 else "-1") for n, i in enumerate(ids)
        ],
    }
    results, aggregates = [], []
    for model in config.models:
        r, a = stages.score(model, task, samples, completions_to_frame(ids, made[model.name]))
        results.append(r)
        aggregates.append(a)
    return pd.concat(results, ignore_index=True), pd.concat(aggregates, ignore_index=True)


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report]:
    config = load_config(tmp_path_factory.mktemp("page"))
    results, aggregates = scored(config)
    report = statistics.build_report(config, results, statistics.concat_verdicts([]))
    board = build_leaderboard(config, results, aggregates, report.intervals)
    return config, board, results, report


def test_leaderboard_has_prices_speed_ttft_and_cost_per_right_answer(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report],
) -> None:
    _, board, _, _ = run
    rows = board.set_index("model")
    right, wrong, local = (
        rows.loc[m] for m in ("right-model-name", "wrong-model-name", "local-model")
    )
    # Price snapshot figures.
    assert right["price_input_per_1m_usd"] == 1.0 and right["price_output_per_1m_usd"] == 4.0
    assert right["context_window"] == 16384 and pd.isna(right["price_per_hour_usd"])
    assert local["price_per_hour_usd"] == 0.5 and pd.isna(local["price_input_per_1m_usd"])
    # How each cost was computed, said beside it.
    assert right["cost_basis"] == "tokens x the price per 1M"
    assert local["cost_basis"].startswith("each request's wall time x $/hour")
    # 100 in + 20 out at $1 / $4 per 1M: $0.00018 an answer.
    assert right["cost_usd"] == pytest.approx(ITEMS * 0.00018)
    assert right["cost_per_correct_usd"] == pytest.approx(0.00018)  # every answer right
    assert wrong["cost_per_correct_usd"] == pytest.approx(7 * 0.00018 / (ITEMS // 2))
    assert local["cost_per_correct_usd"] == pytest.approx(local["cost_usd"] / (ITEMS // 2))
    # Speed after the first token where it was streamed, over the whole request otherwise.
    assert right["ttft_p50_s"] == 0.5 and pd.isna(wrong["ttft_p50_s"])
    assert right["output_tokens_per_s"] == pytest.approx(20 / 1.5)
    assert wrong["output_tokens_per_s"] == pytest.approx(20 / 2.0)


def test_pareto_points_mark_the_frontier_with_ci(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report],
) -> None:
    config, board, _, _ = run
    points = pareto_points(config, board).set_index("model")
    assert list(points.index) == [m.name for m in config.entrants]
    assert (points["low"] <= points["score"]).all() and (points["score"] <= points["high"]).all()
    local_cost = points.loc["local-model", "cost_usd"]  # 8 x 2 s at $0.5/h
    assert local_cost == pytest.approx(ITEMS * 2.0 * 0.5 / 3600)
    # wrong-model-name is cheapest (its failed request cost nothing), right-model-name the
    # best; local-model scores as wrong-model-name does at a higher cost.
    assert points["pareto"].to_dict() == {
        "right-model-name": True,
        "wrong-model-name": True,
        "local-model": False,
    }
    assert frontier_line(points.reset_index())["model"].tolist() == [
        "wrong-model-name",
        "right-model-name",
    ]


def test_browser_flags_errors_disagreements_and_judge_orders(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report],
) -> None:
    config, _, results, _ = run
    browser = sample_browser(config, results)
    assert browser.total == ITEMS and len(browser.items) == ITEMS
    # The first half: every entrant right; the second: right-model-name alone.
    half = ITEMS // 2
    assert [item.flags["disagree"] for item in browser.items] == [False] * half + [True] * half
    assert [item.flags["errors"] for item in browser.items] == [False] * (ITEMS - 1) + [True]
    assert browser.counts() == {"errors": 1, "disagree": half, "judge-order": 0}
    failed = browser.items[-1].answers[1]
    assert failed.entrant == "wrong-model-name" and failed.error.startswith("HTTP 500")

    # A pairwise judge whose two orders disagree on one item; the other says the same twice.
    results = results.copy()
    judgments: list[object] = [[] for _ in range(len(results))]
    first = results.index[(results["model"] == "right-model-name")][0]
    second = results.index[(results["model"] == "right-model-name")][1]
    judgments[first] = [
        {
            "judge": "j",
            "opponent": "local-model",
            "forward": "win",
            "swapped": "loss",
            "verdict": "tie",
        }
    ]
    judgments[second] = [
        {
            "judge": "j",
            "opponent": "local-model",
            "forward": "win",
            "swapped": "win",
            "verdict": "win",
        }
    ]
    results["judgments"] = judgments
    flagged = [i.sample_id for i in sample_browser(config, results).items if i.flags["judge-order"]]
    assert flagged == [results.loc[first, "sample_id"]]


def test_browser_keeps_flagged_items_first_within_its_limit(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report],
) -> None:
    config, _, results, _ = run
    everything = sample_browser(config, results).items
    browser = sample_browser(config, results, limit=3)
    assert browser.total == ITEMS and len(browser.items) == 3
    # The flagged second half first (in the run's order), the unflagged first half left out.
    assert [i.key for i in browser.items] == [i.key for i in everything[ITEMS // 2 :][:3]]


def test_page_has_the_hooks_every_entrant_and_no_url(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report],
) -> None:
    config, board, results, report = run
    page = render_report(config, board, results, report, run_name="page-1")
    for hook in ('id="leaderboard"', 'id="pareto-plot"', 'id="sample-browser"'):
        assert page.count(hook) == 1
    for name in ("all", "errors", "disagree", "judge-order"):
        assert page.count(f'data-filter="{name}"') == 1
    rows = re.findall(
        r'<article class="sample-row" data-sample-id="([^"]+)" data-flags="([^"]*)"', page
    )
    assert len(rows) == ITEMS
    assert [flags.split() for _, flags in rows][-1] == ["errors", "disagree"]
    for entrant in config.entrants:
        assert page.count(f'<div class="who">{entrant.name}</div>') == ITEMS
    leaderboard = page[
        page.index('id="leaderboard"') : page.index("</table>", page.index('id="leaderboard"'))
    ]
    for header in (
        "$ / right answer",
        "$ / 1M input",
        "$ / 1M output",
        "context window",
        "TTFT p50 s",
        "output tok/s",
    ):
        assert header in leaderboard
    assert "16,384" in leaderboard and "$0.00018" in leaderboard
    assert re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:|//)|@import|url\(", page) is None
    assert page.count('src="data:image/png;base64,') == 2


def test_page_escapes_model_text(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report],
) -> None:
    config, board, results, report = run
    results = results.copy()
    results.loc[0, "output"] = '<script src="https://evil.example/x.js"></script>'
    page = render_report(config, board, results, report)
    assert "evil.example" in page and '<script src="https' not in page
    assert "&lt;script src=&#34;https://evil.example/x.js&#34;&gt;" in page


def test_console_leaderboard_fits_80_columns_with_whole_names(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report],
) -> None:
    config, board, _, _ = run
    # Four tasks' headline columns: the full table is far wider than 80 columns.
    wide = config.model_copy(update={"tasks": config.tasks * 4})
    board = board.copy()
    for n in range(1, 4):
        wide.tasks[n] = wide.tasks[n].model_copy(update={"name": f"arithmetic_copy_{n}"})
        for column in ("exact_match", "rank"):
            board[f"arithmetic_copy_{n}/{column}"] = board[f"arithmetic/{column}"]
    out = io.StringIO()
    print_leaderboard(wide, board, "llmbench leaderboard — page-1", Console(file=out, width=80))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for entrant in config.entrants:
        # Whole on its lines: in the overview and in each per-task table.
        assert len(re.findall(rf"\b{entrant.name}\b", text)) >= 2, text
    assert "arithmetic_copy_3" in text and "…" not in text
    # Figures whole too, not folded over lines: right-model-name's score, CI and cost.
    line = next(line for line in text.splitlines() if "right-model-name" in line)
    assert "1.000" in line and "$0.00144" in line, text


def test_judge_order_flag_reads_the_pairwise_judge_columns(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report],
) -> None:
    """The flag from the judgments :func:`pairwise_columns` writes (the judge code's own
    format): one item whose verdict flips with the order, one judged the same both ways."""
    config, _, results, _ = run
    ids = results.loc[results["model"] == "right-model-name", "sample_id"].tolist()
    verdicts = pd.DataFrame(
        [
            {
                "task": "arithmetic",
                "sample_id": ids[0],
                "judge": "j",
                "model_a": "right-model-name",
                "model_b": "local-model",
                "forward": "a",
                "swapped": "b",
                "winner": "tie",
                "consistent": False,
                "a_failed": False,
                "b_failed": False,
                "judge_error": None,
                "judge_cost_usd": 0.0,
                "judge_latency_s": 1.0,
                "judge_input_tokens": 10,
                "judge_output_tokens": 2,
                "judge_cached_tokens": 0,
            },
            {
                "task": "arithmetic",
                "sample_id": ids[1],
                "judge": "j",
                "model_a": "right-model-name",
                "model_b": "local-model",
                "forward": "a",
                "swapped": "a",
                "winner": "a",
                "consistent": True,
                "a_failed": False,
                "b_failed": False,
                "judge_error": None,
                "judge_cost_usd": 0.0,
                "judge_latency_s": 1.0,
                "judge_input_tokens": 10,
                "judge_output_tokens": 2,
                "judge_cached_tokens": 0,
            },
        ],
        columns=PAIR_COLUMNS,
    )
    results = results.copy()
    results["judgments"] = [[] for _ in range(len(results))]
    for model in ("right-model-name", "local-model"):
        columns, _ = pairwise_columns(model, ids, [verdicts])
        rows = results.index[results["model"] == model]
        results.loc[rows, "judgments"] = pd.Series(columns["judgments"].tolist(), index=rows)
    browser = sample_browser(config, results)
    assert [i.sample_id for i in browser.items if i.flags["judge-order"]] == [ids[0]]
    page = render_report(config, run[1], results, run[3])
    assert "vs local-model: tie (one order: win, the other: loss)" in page
    assert "vs right-model-name: tie (one order: loss, the other: win)" in page


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (6.8347e-05, "$0.0000683"),
        (0.0035296, "$0.00353"),
        (0.00018, "$0.000180"),
        (4.5612, "$4.56"),
        (1234.5, "$1,234.50"),
        (0.0, "$0"),
    ],
)
def test_dollars_keep_three_significant_digits_without_an_exponent(value: float, text: str) -> None:
    assert dollars(value) == text


def test_statistics_tables_show_dollars_and_seconds_by_column_name() -> None:
    """A cost per item of $0.0000418 to 3 decimals reads 0.000: ``*_usd`` columns are dollars."""
    from llmbench.report.html import frame_view

    frame = pd.DataFrame(
        {
            "model": ["vote"],
            "quality": [0.25],
            "mean_cost_usd": [0.0000418],
            "mean_latency_s": [1.234],
        }
    )
    [row] = frame_view("rounds", frame).rows
    assert [cell.text for cell in row] == ["vote", "0.250", "$0.0000418", "1.23"]


def test_round_and_draw_plots_have_a_panel_per_task_and_one_legend_below() -> None:
    """Legends inside the axes covered the lines they named; one colour per strategy across
    the tasks' panels, each strategy named once."""
    from llmbench.report.plots import draws_figure, rounds_figure

    rounds = pd.DataFrame(
        [
            {
                "model": m,
                "task": t,
                "round": r,
                "quality": 0.2,
                "low": 0.1,
                "high": 0.3,
                "mean_cost_usd": 0.0001 * (r + 1),
            }
            for m in ("refine", "moa")
            for t in ("arith", "mc")
            for r in (0, 1)
        ]
    )
    figure = rounds_figure(rounds, 0.95)
    assert len(figure.axes) == 4  # quality and cost, per task
    [legend] = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["refine", "moa"]
    assert all(axes.get_legend() is None for axes in figure.axes)
    draws = pd.DataFrame(
        [
            {
                "model": m,
                "task": t,
                "k": k,
                "pass_at_k": 0.3,
                "pass_low": 0.2,
                "pass_high": 0.4,
                "maj_at_k": 0.2,
                "maj_low": 0.1,
                "maj_high": 0.3,
            }
            for m in ("x3", "two")
            for t in ("arith", "mc", "qa")
            for k in (1, 2)
        ]
    )
    figure = draws_figure(draws, 0.95)
    assert sum(axes.get_visible() for axes in figure.axes) == 3
    [legend] = figure.legends
    assert len(legend.get_texts()) == 4  # pass@k and maj@k of each vote, once


@pytest.mark.parametrize("width", [200, 80])
def test_an_undefined_overall_score_prints_a_dash_not_nan(
    run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame, statistics.Report], width: int
) -> None:
    """A task with nothing scored leaves the overall score and its interval undefined."""
    config, board, _, _ = run
    board = board.copy()
    board.loc[board["model"] == "local-model", ["score", "score_ci_low", "score_ci_high"]] = float(
        "nan"
    )
    out = io.StringIO()
    print_leaderboard(config, board, "t", Console(file=out, width=width))
    assert "nan" not in out.getvalue()
