"""A strategy's ``tasks:``: validated at load, honoured by --tasks, the plan and the dry run,
and a strategy on some tasks only is unranked overall, with per-task figures as usual."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from rich.console import Console

from llmbench import config as cfg
from llmbench import stages
from llmbench.config import BenchConfig
from llmbench.errors import ConfigError
from llmbench.estimate import estimate
from llmbench.plan import plan
from llmbench.report import statistics
from llmbench.report.html import render_report
from llmbench.report.leaderboard import build_leaderboard
from llmbench.report.output import print_leaderboard
from llmbench.report.plots import pareto_points
from llmbench.report.strategies import strategy_table
from llmbench.strategies.build import identity
from llmbench.tables import completions_to_frame
from llmbench.types import Completion

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 6
PRICE = {"input_per_1m": 1.0, "output_per_1m": 4.0, "source": "test", "date": "2026-12-01"}


def write(tmp_path: Path, strategies: list[dict[str, Any]]) -> Path:
    """Two tasks (arithmetic, and the same items again as ``sums``), two models."""
    (tmp_path / "sums.yaml").write_text(
        f"include: {ROOT / 'configs' / 'tasks' / 'arithmetic.yaml'}\nname: sums\n"
    )
    raw = {
        "name": "partial",
        "models": [
            {"name": m, "provider": "recorded", "model": "x.jsonl", "price": PRICE}
            for m in ("good", "poor")
        ],
        "strategies": strategies,
        "tasks": [str(ROOT / "configs" / "tasks" / "arithmetic.yaml"), "sums.yaml"],
        "execution": {"limit": ITEMS},
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cascade(name: str = "cascade", tasks: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "kind": "cascade",
        "members": {"first": "poor", "then": "good"},
        **extra,
    }
    if tasks is not None:
        spec["tasks"] = tasks
    return spec


def load_error(tmp_path: Path, strategies: list[dict[str, Any]]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg.load(write(tmp_path, strategies))
    return info.value


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (["arithmetc"], "no task named 'arithmetc'; did you mean 'arithmetic'?"),
        ([], "empty"),
        (["sums", "sums"], "'sums' is listed twice"),
    ],
)
def test_bad_strategy_tasks_name_the_file_field_and_the_tasks(
    tmp_path: Path, tasks: list[str], message: str
) -> None:
    error = load_error(tmp_path, [cascade(tasks=tasks)])
    text = str(error)
    assert str(tmp_path / "bench.yaml") in text
    assert "strategies.0.tasks" in text and message in text
    assert "the tasks are: arithmetic, sums" in text


def test_a_strategy_member_must_run_wherever_its_user_does(tmp_path: Path) -> None:
    outer = {"name": "outer", "kind": "cascade", "members": {"first": "inner", "then": "good"}}
    error = load_error(tmp_path, [cascade("inner", tasks=["arithmetic"]), outer])
    assert "strategies.1.tasks: runs on sums, where its member first='inner' does not" in str(error)
    # On a subset of the inner strategy's tasks: valid.
    config = cfg.load(
        write(
            tmp_path, [cascade("inner", tasks=["arithmetic"]), {**outer, "tasks": ["arithmetic"]}]
        )
    )
    assert config.tasks_of("outer") == ["arithmetic"]


def test_tasks_do_not_change_a_strategys_identity(tmp_path: Path) -> None:
    """Where it runs is not how it answers: its cached steps stay valid."""
    every = cfg.load(write(tmp_path, [cascade()]))
    some = cfg.load(write(tmp_path, [cascade(tasks=["sums"])]))
    models = {m.name: m for m in every.models}

    def ident(config: BenchConfig) -> dict[str, object]:
        return identity(config.strategies[0], models, {s.name: s for s in config.strategies})

    assert ident(every) == ident(some)


# --- --tasks, the plan, the dry run ---------------------------------------------------------


def test_tasks_filter_narrows_and_drops_strategies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = cfg.load(write(tmp_path, [cascade(tasks=["arithmetic"]), cascade("both", tasks=None)]))
    logger = logging.getLogger("llmbench")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="llmbench"):
            only_sums = config.select(None, ["sums"])
            kept = config.select(None, ["arithmetic"])
    finally:
        logger.removeHandler(caplog.handler)
    assert [s.name for s in only_sums.strategies] == ["both"]
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert set(left_out) == {
        "strategy cascade left out: it runs on arithmetic, not on --tasks sums"
    }
    assert [s.name for s in kept.strategies] == ["cascade", "both"]
    assert not kept.partial("cascade")  # on every task of the selected run


def test_plan_and_dry_run_count_a_strategy_on_its_tasks_only(tmp_path: Path) -> None:
    config = cfg.load(write(tmp_path, [cascade(tasks=["arithmetic"])]))
    steps = plan(config, {})
    answers = [g.id for g in steps.generations if g.kind == "strategy"]
    assert answers == ["answer__cascade__arithmetic"]
    scorings = {s.task: s.entrants for s in steps.scorings}
    assert scorings == {"arithmetic": ("good", "poor", "cascade"), "sums": ("good", "poor")}
    assert [(b.task, b.strategies) for b in steps.same_spend] == [("arithmetic", ("cascade",))]

    rows = {row.model: row for row in estimate(config)}
    assert rows["good"].samples == 2 * ITEMS
    assert rows["cascade"].samples == ITEMS
    assert rows["cascade.same-spend"].samples == ITEMS
    # Its worst case is its members' on arithmetic: both members' prompts, once each.
    assert rows["cascade"].prompt_tokens == rows["good"].prompt_tokens


# --- the leaderboard ----------------------------------------------------------------------


def scored(config: BenchConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """good answers every item right, poor the first half; the cascade (arithmetic only)
    every item."""
    results, aggregates = [], []
    for task in config.tasks:
        samples = stages.load_task(task, ITEMS)
        ids = samples["sample_id"].tolist()
        right = samples["references"].map(lambda r: r[0]).tolist()
        made = {
            "good": right,
            "poor": [r if n < ITEMS // 2 else "-1" for n, r in enumerate(right)],
            "cascade": right,
        }
        for entrant in config.entrants_on(task.name):
            completions = [
                Completion(text=t, input_tokens=100, output_tokens=20, latency_s=1.0)
                for t in made[entrant.name]
            ]
            prices = {m.name: m.price for m in config.models if m.price is not None}
            r, a = stages.score(
                entrant.name, task, samples, completions_to_frame(ids, completions), prices=prices
            )
            results.append(r)
            aggregates.append(a)
    return pd.concat(results, ignore_index=True), pd.concat(aggregates, ignore_index=True)


@pytest.fixture
def partial_run(tmp_path: Path) -> tuple[BenchConfig, pd.DataFrame, pd.DataFrame]:
    config = cfg.load(write(tmp_path, [cascade(tasks=["arithmetic"])]))
    results, aggregates = scored(config)
    report = statistics.build_report(config, results, statistics.concat_verdicts([]))
    board = build_leaderboard(config, results, aggregates, report.intervals)
    return config, board, results


def test_a_partial_entrant_is_unranked_overall_and_listed_last(
    partial_run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame],
) -> None:
    _, board, _ = partial_run
    assert board["model"].tolist() == ["good", "poor", "cascade"]
    rows = board.set_index("model")
    assert rows.loc["good", "rank"] == 1 and rows.loc["poor", "rank"] == 2
    mine = rows.loc["cascade"]
    assert pd.isna(mine["rank"])
    assert math.isnan(mine["score"])
    assert math.isnan(mine["score_ci_low"]) and math.isnan(mine["score_ci_high"])
    # Per task: ranked where it ran, blank where it did not.
    assert mine["arithmetic/exact_match"] == 1.0 and mine["arithmetic/rank"] == 1
    assert pd.isna(mine["sums/rank"]) and math.isnan(mine["sums/exact_match"])
    assert mine["tasks_run"] == 1 and mine["samples"] == ITEMS
    # Ranks stay whole numbers beside a blank.
    assert board["sums/rank"].dtype == "Int64" and board["rank"].dtype == "Int64"
    assert rows.loc["poor", "sums/rank"] in (1, 2)
    text = board.to_csv(index=False).splitlines()
    assert text[3].startswith(",cascade,strategy:cascade,")  # rank and score empty


def test_console_and_strategy_table_say_why(
    partial_run: tuple[BenchConfig, pd.DataFrame, pd.DataFrame],
) -> None:
    config, board, results = partial_run
    console = Console(width=300, record=True)
    print_leaderboard(config, board, "partial", console)
    out = console.export_text()
    line = next(row for row in out.splitlines() if " cascade " in row)
    assert line.split("│")[1].strip() == "-"  # rank
    assert "None" not in out and "nan" not in out
    assert (
        "cascade ran on 1 of 2 tasks (arithmetic): no overall score or rank; its cost and "
        "latency are over those tasks only"
    ) in out
    # The page: the same note; the per-task table of the task it skipped leaves it out;
    # the overall cost-vs-quality plot has no point for it.
    report = statistics.build_report(config, results, statistics.concat_verdicts([]))
    page = render_report(config, board, results, report)
    assert "cascade ran on 1 of 2 tasks (arithmetic): no overall score or rank" in page
    assert "strategy (1 of 2 tasks)" in page
    sums = page[page.index('id="task-1"') :]
    assert "cascade" not in sums[: sums.index("</table>")]
    points = pareto_points(config, board).set_index("model")
    assert math.isnan(points.loc["cascade", "score"]) and not points.loc["cascade", "pareto"]
    table = strategy_table(config, board, results).set_index("model")
    assert table.loc["cascade", "summary"].startswith(
        "cascade (on arithmetic only) reaches 100% of good's score there"
    )
