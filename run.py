"""llmbench command line: benchmark the models of a config on its tasks.

    python run.py --config bench.yaml [--no-cache] [--refresh] [--limit N] [--models a,b]
                  [--tasks x,y] [--output-dir DIR] [--run-name NAME] [--dry-run]
                  [--fail-under [MODEL:]TASK/METRIC=VALUE ...] [--fail-on-regression]
                  [--stack NAME] [--schedule "CRON"]

The config is validated (and every task rendered against its data) before ZenML is
touched; bad input exits with code 2 and one message naming the file and field. A failed
quality gate exits with code 3 (see llmbench/gates.py).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pandas as pd
from rich.console import Console

from llmbench.config import BenchConfig, load
from llmbench.cron import check_cron
from llmbench.environment import configure_environment
from llmbench.errors import BenchError, ConfigError
from llmbench.estimate import estimate
from llmbench.gate_run import JUNIT_FILE, SUMMARY_FILE, evaluate_gates, write_gate_files
from llmbench.gates import GATE_FAILED_EXIT_CODE, Threshold, check_thresholds, parse_threshold
from llmbench.preflight import preflight
from llmbench.report.gates_report import failure_table
from llmbench.report.output import (
    print_estimates,
    print_leaderboard,
    print_orchestration,
    print_statistics,
    print_strategies,
    write_outputs,
)

if TYPE_CHECKING:
    from pipelines.execute import RunOutcome

RESULTS_DIR = Path("results")


def _names(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give one or more names separated by commas")
    return names


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py", description="Benchmark LLMs on your tasks (ZenML pipeline, MLflow tracking)."
    )
    parser.add_argument(
        "--config", required=True, type=Path, help="benchmark YAML (e.g. bench.yaml)"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="rerun every step (ZenML cache off)"
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="ask the models again instead of reusing cached answers (implies --no-cache)",
    )
    parser.add_argument("--limit", type=_positive, help="use only the first N samples of each task")
    parser.add_argument("--models", type=_names, help="comma-separated model names to run")
    parser.add_argument("--tasks", type=_names, help="comma-separated task names to run")
    parser.add_argument(
        "--output-dir", type=Path, help="where results go (default: results/<run-name>/)"
    )
    parser.add_argument("--run-name", help="name of the run (default: <config name>-<UTC time>)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, count prompt tokens and print the estimated cost; call no model",
    )
    gates = parser.add_argument_group("quality gates (a failed gate exits with code 3)")
    gates.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="[MODEL:]TASK/METRIC=VALUE",
        help="fail if a score is worse than VALUE (below it; above it for lower-is-better "
        "metrics); every model unless MODEL: is given; repeatable",
    )
    gates.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="fail if a model got significantly worse on a task than in the previous run of "
        "the same MLflow experiment",
    )
    parser.add_argument(
        "--stack", help="run on this registered ZenML stack (default: the local one)"
    )
    parser.add_argument(
        "--schedule",
        metavar="CRON",
        help='register the run on a schedule, e.g. "0 3 * * *" (stacks whose orchestrator '
        "can schedule: Kubernetes, Vertex AI, SageMaker, ...)",
    )
    return parser.parse_args(argv)


def gate_rules(args: argparse.Namespace, config: BenchConfig) -> list[Threshold]:
    """The --fail-under rules, checked against the config; the flags --schedule excludes."""
    if args.schedule and (args.fail_under or args.fail_on_regression):
        raise ConfigError(
            "quality gates apply to a run this command waits for, not to scheduled runs",
            field="--schedule",
            hint="drop --fail-under/--fail-on-regression, or run without --schedule (e.g. "
            "from the CI workflow, which runs the gates)",
        )
    if args.schedule:
        check_cron(args.schedule)
    rules = [parse_threshold(text) for text in args.fail_under]
    check_thresholds(config, rules)
    return rules


def prepare(
    args: argparse.Namespace, missing_keys: list[str] | None = None
) -> tuple[BenchConfig, dict[str, str]]:
    config = load(args.config).select(args.models, args.tasks).with_limit(args.limit)
    return config, preflight(config, missing_keys=missing_keys)


def bench_cause(exc: BaseException) -> BenchError | None:
    """The user-facing error behind a failed step, if one caused it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BenchError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def budget_note(config: BenchConfig, results: pd.DataFrame) -> str | None:
    limit = config.execution.max_cost_usd
    refused = int(results["error"].fillna("").str.startswith("budget:").sum())
    if limit is None or not refused:
        return None
    spent = float(results.loc[~results["cached"].astype(bool), "cost_usd"].sum())
    return (
        f"Budget reached: execution.max_cost_usd is ${limit:g}; this run spent ${spent:.6f}, "
        f"answered {len(results) - refused} of {len(results)} samples and did not send "
        f"{refused} requests (they are error rows). Raise the limit to finish."
    )


def browse_hint(config: BenchConfig) -> str:
    uri = config.tracking.uri or ""
    return (
        "Browse the results:\n"
        "  ZenML dashboard:  zenml login --local\n"
        f"  MLflow UI:        mlflow ui --backend-store-uri '{uri}'"
    )


INTERRUPTED_EXIT_CODE = 130  # the shell's code for a process stopped by SIGINT


def stop_now(run_name: str) -> NoReturn:
    """Ctrl-C: stop at once. Step threads would otherwise keep sending requests until their
    step is done; what finished is already safe (each answer is written to the response
    cache as it arrives, each finished step to ZenML's cache), so nothing needs flushing."""
    print(
        f"\ninterrupted: run {run_name} stopped. Finished answers are kept; run the same "
        "command again to resume (only what is missing is sent).",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(INTERRUPTED_EXIT_CODE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_environment()
    progress_log = logging.getLogger("llmbench")
    if not progress_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        progress_log.addHandler(handler)
    progress_log.setLevel(logging.INFO)
    progress_log.propagate = False  # ZenML's root handler would print every line twice
    console = Console(width=None if sys.stdout.isatty() else 120, soft_wrap=True)
    missing_keys: list[str] | None = [] if args.dry_run else None
    try:
        config, fingerprints = prepare(args, missing_keys)
        thresholds = gate_rules(args, config)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

    if args.dry_run:
        print_estimates(estimate(config), console)
        for message in missing_keys or []:
            console.print(f"note: {message}: a real run would stop here", markup=False)
        return 0

    run_name = args.run_name or f"{config.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    output_dir = args.output_dir or RESULTS_DIR / run_name
    latest = None if args.output_dir else RESULTS_DIR / "latest"
    console.print(
        f"llmbench: {len(config.models)} model(s)"
        + (
            f" + {len(config.strategies)} strateg{'y' if len(config.strategies) == 1 else 'ies'}"
            if config.strategies
            else ""
        )
        + f" x {len(config.tasks)} task(s), run {run_name}"
    )

    from pipelines.execute import run_benchmark  # imports ZenML: only after validation

    # What is imported by now (ZenML, MLflow, pandas: most of the process's objects) lives
    # until the process ends: out of the garbage collector's sight, full collections during
    # the run no longer walk it.
    gc.freeze()

    if args.schedule:
        return schedule(config, fingerprints, args)

    # Ctrl-C stops at once: ZenML would otherwise wait for running steps to finish.
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: stop_now(run_name))

    try:
        outcome = run_benchmark(
            config,
            fingerprints,
            run_name,
            use_cache=not (args.no_cache or args.refresh),
            refresh=args.refresh,
            stack=args.stack,
        )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        stop_now(run_name)
    except Exception as exc:  # a failed step: say which run, keep the traceback out of the way
        cause = bench_cause(exc)
        if cause is not None:
            print(f"error: {cause}", file=sys.stderr)
            return cause.exit_code
        print(
            f"error: the pipeline run {run_name} failed: {type(exc).__name__}: {exc}\n"
            "  see the step logs in the ZenML dashboard (zenml login --local) or rerun: "
            "finished steps are cached",
            file=sys.stderr,
        )
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)

    write_outputs(
        config,
        outcome.leaderboard,
        outcome.results,
        output_dir,
        report=outcome.report,
        page=outcome.page,
        latest_link=latest,
        run_name=run_name,
    )
    print_leaderboard(config, outcome.leaderboard, f"llmbench leaderboard — {run_name}", console)
    print_statistics(config, outcome.report, console)
    print_strategies(config, outcome.leaderboard, outcome.results, console)
    print_orchestration(outcome.report, console)
    if outcome.generations_cached == outcome.generations:
        console.print(
            f"All {outcome.generations} generation steps were cached: no model was called."
        )
    else:
        console.print(
            f"Generated {outcome.generations - outcome.generations_cached} of "
            f"{outcome.generations} (model, task) pairs; {outcome.generations_cached} were cached."
        )
    if outcome.judgings:
        console.print(
            f"Judge steps: {outcome.judgings - outcome.judgings_cached} ran, "
            f"{outcome.judgings_cached} were cached."
        )
    console.print(
        f"Results: {output_dir}/ (report.html, leaderboard.csv, samples.jsonl, statistics/)"
        + (f"; also {latest}/" if latest else "")
    )
    note = budget_note(config, outcome.results)
    if note:
        console.print(note, markup=False)
    console.print(
        f"MLflow run: {outcome.mlflow_run_id} in experiment {config.tracking.experiment!r}"
    )
    console.print(browse_hint(config))
    return apply_gates(config, outcome, thresholds, args, output_dir, console)


def schedule(config: BenchConfig, fingerprints: dict[str, str], args: argparse.Namespace) -> int:
    from pipelines.execute import schedule_benchmark

    try:
        schedule_benchmark(config, fingerprints, args.schedule, args.stack)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # the orchestrator refused it (missing integration, credentials)
        print(
            f"error: --schedule: the stack {args.stack!r} could not register the schedule: "
            f"{type(exc).__name__}: {exc}\n  fix: zenml integration install <its integrations>, "
            "and check the stack with `zenml stack describe`",
            file=sys.stderr,
        )
        return 1
    stack = args.stack or "llmbench-local"
    print(f"llmbench: {config.name} scheduled on {args.schedule!r} (stack {stack}).")
    return 0


def apply_gates(
    config: BenchConfig,
    outcome: RunOutcome,
    thresholds: list[Threshold],
    args: argparse.Namespace,
    output_dir: Path,
    console: Console,
) -> int:
    """summary.md always; with gates, gates.xml, a table of what failed and exit code 3."""
    asked = bool(thresholds or args.fail_on_regression)
    try:
        gates = evaluate_gates(
            config,
            outcome.results,
            outcome.report.intervals,
            thresholds,
            regression=args.fail_on_regression,
            mlflow_run_id=outcome.mlflow_run_id,
        )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    write_gate_files(config, outcome.leaderboard, gates, output_dir, outcome.run_name, asked=asked)
    for note in gates.notes:
        console.print(note, markup=False)
    if not asked:
        return 0
    files = f"{output_dir}/{SUMMARY_FILE}, {output_dir}/{JUNIT_FILE}"
    if gates.failed:
        console.print(failure_table(gates.results))
        console.print(f"{len(gates.failed)} quality gate check(s) failed; see {files}")
        return GATE_FAILED_EXIT_CODE
    console.print(f"All {len(gates.results)} quality gate check(s) passed ({files}).")
    return 0


def finish(code: int) -> NoReturn:
    """Exit with ``code``, without the interpreter's last garbage collection, which walks
    every object left (seconds of CPU) and frees nothing a finished run needs: its files and
    stores are closed by now, and exit handlers still run."""
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    finish(main())
