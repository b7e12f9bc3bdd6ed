"""Files a run leaves in its output folder, and the leaderboard as a terminal table."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from llmbench.estimate import Estimate
from llmbench.report.agents import agent_table
from llmbench.report.html import dollars, write_report
from llmbench.report.leaderboard import (
    JUDGE_RESULT_COLUMNS,
    RESULT_COLUMNS,
    partial_note,
    rank_text,
)
from llmbench.report.routing import routing_table, sweep_curves
from llmbench.report.statistics import Report, score_keys
from llmbench.report.statistics import headline as headline_of
from llmbench.report.strategies import strategy_table
from llmbench.schema import BenchConfig
from llmbench.tables import JSON_SAMPLE_COLUMNS
from llmbench.tracking.mlflow_log import price_snapshot

# The sample's structured fields that are not result columns of their own (follow_ups is).
STRUCTURED = [c for c in JSON_SAMPLE_COLUMNS if c not in RESULT_COLUMNS]


def _jsonable(value: Any) -> Any:
    """A cell as JSON: arrays (a parquet round trip's lists, nested ones too) as lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


JUDGE_ONLY = frozenset(JUDGE_RESULT_COLUMNS)


def _missing(value: Any) -> bool:
    """A column another task has but this row's task does not (NaN after the concat)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def task_score_keys(config: BenchConfig) -> dict[str, list[str]]:
    return {task.name: score_keys(task) for task in config.tasks}


def write_outputs(
    config: BenchConfig,
    leaderboard: pd.DataFrame,
    results: pd.DataFrame,
    output_dir: Path,
    *,
    report: Report | None = None,
    page: str | None = None,
    latest_link: Path | None = None,
    run_name: str = "",
) -> None:
    """leaderboard.csv, samples.jsonl, statistics/*.csv, report.html (``page`` when the
    pipeline already rendered it), the resolved config and price snapshot.

    ``latest_link``, when given, is pointed at ``output_dir`` (atomically)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    leaderboard.to_csv(output_dir / "leaderboard.csv", index=False)
    keys = task_score_keys(config)
    # Scores a task has beyond its fixed keys (a conversation's per-turn grades): every row
    # of the task lists them, null where unscored.
    for task, rows in results.groupby("task") if "task" in results else ():
        found = [c.removeprefix("score.") for c in rows if c.startswith("score.")]
        extra = [k for k in found if k not in keys[str(task)] and rows[f"score.{k}"].notna().any()]
        keys[str(task)] = [*keys[str(task)], *extra]
    with (output_dir / "samples.jsonl").open("w", encoding="utf-8") as handle:
        for record in results.to_dict("records"):
            row = {k: _jsonable(v) for k, v in record.items() if not k.startswith("score.")}
            row["scores"] = {k: _jsonable(record.get(f"score.{k}")) for k in keys[record["task"]]}
            # JSON text between steps, lists here
            for column in ("trace", "tool_calls", "follow_ups", "turn_answers"):
                if isinstance(row.get(column), str):
                    row[column] = json.loads(row[column])
            for column in STRUCTURED:  # the sample's other structured fields, where set
                value = row.pop(column, None)
                decoded = json.loads(value) if isinstance(value, str) else value
                if decoded not in (None, [], {}):
                    row[column] = decoded
            # Judge columns belong to judged tasks only; other rows leave them out.
            row = {k: v for k, v in row.items() if k not in JUDGE_ONLY or not _missing(v)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    if report is not None:
        folder = output_dir / "statistics"
        folder.mkdir(exist_ok=True)
        for name in report.TABLES:
            getattr(report, name).to_csv(folder / f"{name}.csv", index=False)
    if config.strategies:
        folder = output_dir / "statistics"
        folder.mkdir(exist_ok=True)
        strategy_table(config, leaderboard, results).to_csv(folder / "strategies.csv", index=False)
        routing = routing_table(config, results)
        if not routing.empty:
            routing.to_csv(folder / "routing.csv", index=False)
            sweep_curves(config, results).to_csv(folder / "sweeps.csv", index=False)
    agents = agent_table(config, results)
    if not agents.empty:
        folder = output_dir / "statistics"
        folder.mkdir(exist_ok=True)
        agents.to_csv(folder / "agents.csv", index=False)
    write_report(config, leaderboard, results, report, output_dir, run_name=run_name, page=page)
    (output_dir / "config.resolved.yaml").write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    )
    (output_dir / "prices.snapshot.yaml").write_text(yaml.safe_dump(price_snapshot(config)))
    if latest_link is not None and (latest_link.is_symlink() or not latest_link.exists()):
        tmp = latest_link.with_name(f".{latest_link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(output_dir.resolve(), latest_link.parent.resolve()))
        os.replace(tmp, latest_link)


def _fmt(value: Any, column: str) -> str:
    if column == "rank" or column.endswith("/rank"):
        return rank_text(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if column in ("cost_usd", "judge_cost_usd"):
            return f"${value:.6f}"
        if column.endswith("_s"):
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def _columns_table(
    title: str | None, columns: list[tuple[str, str]], longest: int, **options: Any
) -> Table:
    """A table whose model column is never cut (other columns fold instead)."""
    table = Table(title=title, **options)
    for name, header in columns:
        if name == "model":
            table.add_column(header, justify="left", no_wrap=True, min_width=longest)
        else:
            table.add_column(header, justify="right", overflow="fold")
    return table


def _longest_name(leaderboard: pd.DataFrame) -> int:
    return max((len(str(m)) for m in leaderboard["model"]), default=5)


def leaderboard_table(config: BenchConfig, leaderboard: pd.DataFrame, title: str) -> Table:
    """The headline view: score, each task's first metric, cost, latency, errors.
    Every column is in leaderboard.csv."""
    headline = []
    for task in config.tasks:
        key = headline_of(task).key
        headline.append((f"{task.name}/{key}", f"{task.name}\n{key}"))
    columns = [
        ("rank", "rank"),
        ("model", "model"),
        ("score", "score"),
        ("score_ci", f"{config.stats.confidence:.0%} CI"),
        *headline,
        ("cost_usd", "cost\nUSD"),
        *([("judge_cost_usd", "judge\nUSD")] if any(t.judge for t in config.tasks) else []),
        ("latency_p50_s", "p50\ns"),
        ("latency_p95_s", "p95\ns"),
        ("errors", "errors"),
    ]
    table = _columns_table(title, columns, _longest_name(leaderboard))
    for record in leaderboard.to_dict("records"):
        record["score_ci"] = _ci_text(record, 3)
        table.add_row(*(_fmt(record.get(name, math.nan), name) for name, _ in columns))
    return table


def _ci_text(record: dict[str, Any], decimals: int) -> str:
    """The overall score's interval, or a dash where the score is undefined (a task with
    nothing scored): "nan-nan" reads as a figure."""
    low, high = record["score_ci_low"], record["score_ci_high"]
    if math.isnan(low) or math.isnan(high):
        return "-"
    return f"{low:.{decimals}f}-{high:.{decimals}f}"


def _short(value: Any, kind: str) -> str:
    """A figure in as few characters as it can be read in: dollars and speeds to three
    significant digits, seconds to two decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "usd":
        return dollars(float(value))
    if kind == "s":
        return f"{value:.2f}"
    if kind == "rate":
        return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _natural_width(table: Table) -> int:
    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).maximum


def compact_leaderboard_tables(
    config: BenchConfig, leaderboard: pd.DataFrame, title: str, width: int
) -> list[Table]:
    """The leaderboard for a narrow console: the same figures shortened, in as many tables
    as it takes to fit ``width`` (each with the model column, printed whole): the overall
    figures, then each task's headline with its rank."""
    has_ttft = "ttft_p50_s" in leaderboard and leaderboard["ttft_p50_s"].notna().any()
    columns: list[tuple[str, str, str]] = [
        ("rank", "#", ""),
        ("score", "score", ""),
        ("score_ci", f"{config.stats.confidence:.0%} CI", ""),
        ("errors", "err", ""),
        ("cost_usd", "cost\nUSD", "usd"),
        ("cost_per_correct_usd", "USD per\nright", "usd"),
        ("latency_p50_s", "p50\ns", "s"),
        *([("ttft_p50_s", "TTFT\ns", "s")] if has_ttft else []),
        ("output_tokens_per_s", "tok/s", "rate"),
    ]
    records = leaderboard.to_dict("records")
    cells: dict[str, list[str]] = {}
    for name, _, kind in columns:
        if name == "score_ci":
            cells[name] = [_ci_text(r, 2) for r in records]
        else:
            cells[name] = [
                rank_text(r.get(name)) if name == "rank" else _short(r.get(name, math.nan), kind)
                for r in records
            ]
    for task in config.tasks:
        key = headline_of(task).key
        name = f"{task.name}/{key}"
        columns.append((name, f"{task.name}\n{key}", ""))
        cells[name] = [
            f"{_short(r.get(name, math.nan), '')} ({rank_text(r.get(f'{task.name}/rank'))})"
            for r in records
        ]
    longest = _longest_name(leaderboard)
    compact: dict[str, Any] = {"box": box.SIMPLE_HEAD, "pad_edge": False}

    def build(part: list[tuple[str, str, str]], caption: str | None) -> Table:
        table = _columns_table(
            caption, [("model", "model"), *((n, h) for n, h, _ in part)], longest, **compact
        )
        for row, record in enumerate(records):
            table.add_row(str(record["model"]), *(cells[n][row] for n, _, _ in part))
        return table

    parts: list[list[tuple[str, str, str]]] = [[]]
    for column in columns:
        trial = [*parts[-1], column]
        if parts[-1] and _natural_width(build(trial, None)) > width:
            parts.append([column])
        else:
            parts[-1] = trial
    return [build(part, title if n == 0 else None) for n, part in enumerate(parts)]


def print_statistics(config: BenchConfig, report: Report, console: Console) -> None:
    """Which differences are real (paired tests), ratings and how reliable the judges were."""
    if not report.comparisons.empty:
        table = Table(title="paired comparisons (headline metric, items both models scored)")
        for header in ("task", "A vs B", "A - B", "CI", "p", "test", "n", "significant"):
            table.add_column(header, justify="left" if header in ("task", "A vs B") else "right")
        for r in report.comparisons.to_dict("records"):
            table.add_row(
                r["task"],
                f"{r['model_a']} vs {r['model_b']}",
                _fmt(r["difference"], ""),
                f"{_fmt(r['low'], '')} .. {_fmt(r['high'], '')}",
                _fmt(r["p_value"], ""),
                str(r["method"]),
                str(r["n"]),
                "yes" if r["significant"] else "no",
            )
        console.print(table)
    if not report.ratings.empty:
        table = Table(title="pairwise judging: Bradley-Terry ratings (Elo scale)")
        for header in ("task", "model", "rating", "CI", "win rate", "comparisons"):
            table.add_column(header, justify="left" if header in ("task", "model") else "right")
        for r in report.ratings.to_dict("records"):
            table.add_row(
                r["task"],
                r["model"],
                f"{r['rating']:.0f}",
                f"{r['low']:.0f} .. {r['high']:.0f}",
                _fmt(r["win_rate"], ""),
                str(r["comparisons"]),
            )
        console.print(table)
    if not report.judges.empty:
        table = Table(title="judges")
        headers = (
            "task",
            "judge",
            "judged",
            "unscored",
            "cost USD",
            "p50 s",
            "position consistency",
            "panel agreement",
            "human kappa",
        )
        for header in headers:
            table.add_column(header, justify="left" if header in ("task", "judge") else "right")
        for r in report.judges.to_dict("records"):
            table.add_row(
                r["task"],
                r["judge"],
                str(r["judged"]),
                str(r["unscored"]),
                _fmt(r["cost_usd"], "cost_usd"),
                _fmt(r["latency_p50_s"], "_s"),
                _fmt(r["position_consistency"], ""),
                _fmt(r["panel_agreement"], ""),
                _fmt(r["human_kappa"], ""),
            )
        console.print(table)


def print_leaderboard(
    config: BenchConfig, leaderboard: pd.DataFrame, title: str, console: Console
) -> None:
    """The full table where it fits the console, else the compact tables."""
    table = leaderboard_table(config, leaderboard, title)
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if natural <= console.width:
        console.print(table)
    else:
        for part in compact_leaderboard_tables(config, leaderboard, title, console.width):
            console.print(part)
    for name in leaderboard["model"]:
        note = partial_note(config, str(name))
        if note:
            console.print(f"- {note}", markup=False)


def print_strategies(
    config: BenchConfig, leaderboard: pd.DataFrame, results: pd.DataFrame, console: Console
) -> None:
    """What each strategy buys, beside the models: cost per correct answer, the Pareto
    frontier, who answered and how often an answer escalated."""
    if not config.strategies:
        return
    frame = strategy_table(config, leaderboard, results)
    table = Table(title="strategies (Pareto: no row is both cheaper and better)")
    for column in ("model", "score", "$/item", "$/correct", "pareto", "escalated", "answered by"):
        table.add_column(column, overflow="fold")
    for row in frame.to_dict("records"):
        shares = json.loads(row["answers_by"]) if isinstance(row["answers_by"], str) else {}
        table.add_row(
            str(row["model"]),
            _fmt(row["score"], "score"),
            f"${row['cost_per_item_usd']:.6f}",
            "-"
            if math.isnan(row["cost_per_correct_usd"])
            else f"${row['cost_per_correct_usd']:.6f}",
            "yes" if row["pareto"] else "",
            "" if math.isnan(row["escalation_rate"]) else f"{row['escalation_rate']:.0%}",
            ", ".join(f"{k} {v:.0%}" for k, v in shares.items()),
        )
    console.print(table)
    for line in frame["summary"]:
        if line:
            console.print(line)
    for row in routing_table(config, results).to_dict("records"):
        console.print(
            f"{row['model']} on {row['task']} ({row['weak']} -> {row['strong']}): "
            f"APGR {row['apgr']:.3f} [{row['apgr_ci_low']:.3f}, {row['apgr_ci_high']:.3f}], "
            f"CPT(50%) {row['cpt_50']:.1%}, CPT(80%) {row['cpt_80']:.1%}; weak "
            f"{row['weak_score']:.2%}, strong {row['strong_score']:.2%}, oracle "
            f"{row['oracle_score']:.2%}"
        )


def print_orchestration(report: Report, console: Console) -> None:
    """What each multi-step strategy buys against its best member and at the same spend,
    its quality and cost by round, and a vote's pass@k / maj@k."""
    for line in report.same_spend["summary"]:
        if line:
            console.print(line)
    if not report.rounds.empty:
        table = Table(title="strategies by round (the answer had it stopped there)")
        headers = ("strategy", "task", "round", "step", "n", "quality", "CI", "$/item", "s/item")
        for header in (*headers, "wrong->right", "right->wrong"):
            table.add_column(header, justify="left" if header in headers[:4] else "right")
        for r in report.rounds.to_dict("records"):
            table.add_row(
                str(r["model"]),
                str(r["task"]),
                str(r["round"]),
                str(r["step"]),
                str(r["n"]),
                _fmt(r["quality"], ""),
                f"{_fmt(r['low'], '')} .. {_fmt(r['high'], '')}",
                _short(r["mean_cost_usd"], "usd"),
                _short(r["mean_latency_s"], "s"),
                _count(r["wrong_to_right"]),
                _count(r["right_to_wrong"]),
            )
        console.print(table)
    if not report.draws.empty:
        table = Table(title="votes: pass@k and maj@k from the same draws")
        for header in ("strategy", "task", "k", "pass@k", "CI", "maj@k", "CI", "agreement"):
            table.add_column(header, justify="left" if header in ("strategy", "task") else "right")
        for r in report.draws.to_dict("records"):
            table.add_row(
                str(r["model"]),
                str(r["task"]),
                str(r["k"]),
                _fmt(r["pass_at_k"], ""),
                f"{_fmt(r['pass_low'], '')} .. {_fmt(r['pass_high'], '')}",
                _fmt(r["maj_at_k"], ""),
                f"{_fmt(r['maj_low'], '')} .. {_fmt(r['maj_high'], '')}",
                _fmt(r["agreement"], ""),
            )
        console.print(table)


def _count(value: Any) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}"
    )


def print_estimates(estimates: list[Estimate], console: Console) -> None:
    table = Table(title="llmbench dry run — nothing was sent")
    for header in (
        "model",
        "provider",
        "samples",
        "prompt tokens",
        "counted by",
        "max output tokens",
        "max cost USD",
    ):
        table.add_column(
            header, justify="left" if header in ("model", "provider", "counted by") else "right"
        )
    for e in estimates:
        cost = "by compute time" if e.max_cost_usd is None else f"${e.max_cost_usd:.4f}"
        table.add_row(
            e.model,
            e.provider,
            str(e.samples),
            str(e.prompt_tokens),
            e.counted_by,
            str(e.max_output_tokens),
            cost,
        )
    console.print(table)
    if any(e.counted_by.startswith("estimated") for e in estimates):
        console.print("estimated: ~4 characters per token (no offline tokenizer for that API)")
    if any(e.counted_by.endswith("+ tool results") for e in estimates):
        console.print(
            "tool results: what a tool returns to an agent loop is not counted (nothing bounds "
            "it before the run); every step up to the loop's max_steps is"
        )
    known = [e.max_cost_usd for e in estimates if e.max_cost_usd is not None]
    if known:
        console.print(
            f"At most ${sum(known):.4f} for the token-priced models (every answer at max_tokens)."
        )
