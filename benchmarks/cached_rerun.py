"""How long an unchanged `make run` takes when everything is cached (not a test).

    python benchmarks/cached_rerun.py [--config bench.yaml] [--repeat 3] [--project DIR]
                                      [--no-seed] [--keep DIR] [--skip-reference]

Runs ``python run.py --config CONFIG`` (what `make run` runs) as a user would, in a state of
its own: a temporary folder holding the ZenML store (``ZENML_CONFIG_PATH``), the MLflow store
(``MLFLOW_TRACKING_URI``), the response cache (``LLMBENCH_CACHE_DIR``) and ``results/``, as
the tests isolate a run (tests/cli_runs.py). The response cache is seeded with a copy of
yours (``$LLMBENCH_CACHE_DIR`` or ~/.cache/llmbench) unless ``--no-seed``: a first run whose
answers are all there calls no model, so it only fills ZenML's step cache. Then:

- ``--repeat`` fully cached re-runs, each timed from outside: wall time and CPU time
  (user + sys of the child, ``getrusage(RUSAGE_CHILDREN)``; on a shared machine the CPU
  time is the steadier figure). A run that was not fully cached is reported as such.
- one more cached re-run, in-process and instrumented (the same ``run.main``), to say where
  the time goes: imports, config and preflight, the ZenML store and stack, the MLflow
  experiment, the pipeline run (ZenML's own work per step against the step bodies that ran:
  the report page, MLflow logging), reading the outputs back, the output folder; and how
  many times the report page and its plots were drawn.
- references measured in the same run: ``python -c pass``, ``python -c "import zenml,
  mlflow"``, and an empty dynamic ZenML pipeline, a chain of as many trivial steps as the
  benchmark's, in the same store and environment (and run.py's framework skipping where the
  project has it), fully cached: about the floor ZenML sets for a run of that shape.

``--project DIR`` runs another checkout's run.py (and its config) with this script, so two
commits can be measured one after the other on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARK = "CACHED_RERUN_BREAKDOWN "  # the instrumented run's figures, one JSON line on stdout
FULLY_CACHED = "generation steps were cached: no model was called"

REFERENCE_PIPELINE = '''
"""An empty dynamic pipeline of N trivial steps, in llmbench's environment."""
import json
import sys
import time

from llmbench.environment import configure_environment

configure_environment()
from zenml import pipeline, step  # noqa: E402

try:  # as run.py prepares a run, where the project does
    from pipelines.execute import skip_unused_frameworks
except ImportError:
    pass
else:
    skip_unused_frameworks()


@step
def noop(index: int, previous: int | None = None) -> int:
    return index


@pipeline(dynamic=True, enable_cache=True)
def empty(steps: int) -> None:
    """A chain, each step after the one before, as the benchmark's steps mostly wait on
    their inputs."""
    previous = None
    for index in range(steps):
        previous = noop.submit(index=index, previous=previous, id=f"noop__{index}")


if __name__ == "__main__":
    wall, cpu = time.perf_counter(), time.process_time()
    empty(steps=int(sys.argv[1]))
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
'''


@dataclass
class Timed:
    wall: float
    cpu: float
    stdout: str
    stderr: str
    returncode: int


def run_timed(command: list[str], cwd: Path, env: dict[str, str]) -> Timed:
    """``command`` as a child process: its wall time and its CPU time (user + sys)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall, cpu, done.stdout, done.stderr, done.returncode)


def check(result: Timed, what: str) -> None:
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"{what} failed with exit code {result.returncode}")


def isolated_env(folder: Path, project: Path) -> dict[str, str]:
    """Everything a run writes lands under ``folder``, as tests/cli_runs.py isolates a run."""
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(folder / "zenml"),
        "LLMBENCH_CACHE_DIR": str(folder / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}",
        "ZENML_ANALYTICS_OPT_IN": "false",
        "PYTHONPATH": str(project),
    }
    return env


def seed_response_cache(folder: Path) -> int:
    """A consistent copy of the user's response cache (sqlite's backup: the WAL included);
    returns how many answers it holds."""
    default = Path(os.environ.get("LLMBENCH_CACHE_DIR", Path.home() / ".cache" / "llmbench"))
    source = default / "responses" / "responses.sqlite3"
    if not source.is_file():
        return 0
    target = folder / "cache" / "responses" / "responses.sqlite3"
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        (count,) = dst.execute("SELECT count(*) FROM responses").fetchone()
    return int(count)


def answers_sent(folder: Path) -> tuple[int, int]:
    """(answers a model had to give, all answers) of the latest run's samples.jsonl."""
    rows = [
        json.loads(line)
        for line in (folder / "results" / "latest" / "samples.jsonl").read_text().splitlines()
    ]
    return sum(not row.get("cached") for row in rows), len(rows)


def commit_of(project: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(project), *args], capture_output=True, text=True
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + (" (uncommitted changes)" if git("status", "--porcelain", "--", ".") else "")


# ---------------------------------------------------------------- the instrumented run ----


class Clock:
    """Wall and CPU time of named calls. CPU is this thread's for calls that run in a step's
    thread (``thread=True``), the whole process's otherwise."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, float]] = {}

    def add(self, name: str, wall: float, cpu: float) -> None:
        entry = self.totals.setdefault(name, {"calls": 0, "wall": 0.0, "cpu": 0.0})
        entry["calls"] += 1
        entry["wall"] += wall
        entry["cpu"] += cpu

    def wrap(self, name: str, function: Callable[..., Any], thread: bool) -> Callable[..., Any]:
        cpu_clock = time.thread_time if thread else time.process_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), cpu_clock()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started, cpu_clock() - cpu)

        return timed


def instrument(clock: Clock, module: str, attribute: str, name: str, thread: bool) -> None:
    """Time ``module.attribute`` wherever a loaded project module holds it (``from x import
    f`` copies the reference); later imports get the timed one from ``module``. Absent in
    another commit: skipped."""
    source = sys.modules.get(module)
    original = getattr(source, attribute, None)
    if original is None:
        return
    timed = clock.wrap(name, original, thread)
    for loaded in list(sys.modules.values()):
        if getattr(loaded, "__name__", "").split(".")[0] not in {
            "llmbench",
            "steps",
            "pipelines",
            "run",
        }:
            continue
        for key, value in list(vars(loaded).items()):
            if value is original:
                setattr(loaded, key, timed)


def breakdown_child(project: Path, run_args: list[str]) -> int:
    """``run.main`` in this process with its stages timed; prints one JSON line."""
    clock = Clock()
    sys.path.insert(0, str(project))
    started, cpu = time.perf_counter(), time.process_time()
    import llmbench.report.html
    import llmbench.tracking.mlflow_log  # noqa: F401  (timed below)
    import run  # run.py, llmbench, pandas, rich: what comes before ZenML

    clock.add("imports before ZenML", time.perf_counter() - started, time.process_time() - cpu)
    mark, mark_cpu = time.perf_counter(), time.process_time()
    import pipelines.execute  # noqa: F401  (ZenML, MLflow, the steps; timed below)

    clock.add("imports: ZenML, MLflow, steps", *since(mark, mark_cpu))
    from zenml.pipelines.dynamic.pipeline_definition import DynamicPipeline
    from zenml.steps.base_step import BaseStep

    for module, attribute, name, thread in TIMED:
        instrument(clock, module, attribute, name, thread)
    pipeline_call = DynamicPipeline.__call__
    DynamicPipeline.__call__ = clock.wrap("ZenML pipeline run", pipeline_call, thread=False)  # type: ignore[method-assign]
    step_call = BaseStep.call_entrypoint

    def step_body(self: Any, *args: Any, **kwargs: Any) -> Any:
        """A step's own function (only steps that run, not cached ones), in its thread."""
        timed = clock.wrap(f"step body: {self.name}", step_call, thread=True)
        return timed(self, *args, **kwargs)

    BaseStep.call_entrypoint = step_body  # type: ignore[method-assign]
    code = run.main(run_args)
    total = since(started, cpu)

    from zenml.client import Client

    last = Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0]
    figures = {
        "totals": clock.totals,
        "total": {"wall": total[0], "cpu": total[1]},
        "after": dict(zip(("wall", "cpu"), since(started, cpu), strict=True)),
        "steps": {name: str(step.status) for name, step in last.steps.items()},
        "exit_code": code,
    }
    print(MARK + json.dumps(figures), flush=True)
    getattr(run, "finish", sys.exit)(code)  # as run.py ends
    return code


def since(wall: float, cpu: float) -> tuple[float, float]:
    return time.perf_counter() - wall, time.process_time() - cpu


# What the instrumented run times: (module, function, label, in a step's thread).
TIMED = (
    ("run", "prepare", "config load + preflight", False),
    ("pipelines.execute", "run_benchmark", "run_benchmark", False),
    ("pipelines.execute", "select_stack", "ZenML store + stack", False),
    ("pipelines.execute", "check_secrets", "ZenML secrets check", False),
    ("pipelines.execute", "ensure_experiment", "MLflow experiment", False),
    ("run", "write_outputs", "output folder (write_outputs)", False),
    ("llmbench.report.html", "render_report", "report page", True),
    ("llmbench.report.html", "report_figures", "report plots", True),
)


# --------------------------------------------------------------------------- the report ----


def median_of(runs: list[Timed]) -> tuple[float, float]:
    return statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs)


def breakdown_rows(
    figures: dict[str, Any], process: Timed, start: Timed
) -> list[tuple[str, float, float]]:
    """(what, wall s, CPU s) in the order a run does them."""
    totals: dict[str, dict[str, float]] = figures["totals"]

    def get(*names: str) -> tuple[float, float]:
        entries = [totals.get(n, {"wall": 0.0, "cpu": 0.0}) for n in names]
        return sum(e["wall"] for e in entries), sum(e["cpu"] for e in entries)

    def minus(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return a[0] - b[0], a[1] - b[1]

    inside = figures["total"]["wall"], figures["total"]["cpu"]
    after = figures["after"]["wall"], figures["after"]["cpu"]
    steps: dict[str, str] = figures["steps"]
    ran = [name for name, status in steps.items() if status != "cached"]
    pipeline = get("ZenML pipeline run")
    bodies = sorted(name for name in totals if name.startswith("step body: "))
    zenml_own = minus(pipeline, get(*bodies))
    around = ("ZenML store + stack", "ZenML secrets check", "MLflow experiment")
    stages = (
        "imports before ZenML",
        "config load + preflight",
        "imports: ZenML, MLflow, steps",
        "run_benchmark",
        "output folder (write_outputs)",
    )
    return [
        (
            f"interpreter start and exit (python -c pass: {start.wall:.2f} s)",
            process.wall - after[0],
            process.cpu - after[1],
        ),
        ("imports: run.py, llmbench, pandas, rich", *get("imports before ZenML")),
        ("config load + preflight", *get("config load + preflight")),
        ("imports: ZenML, MLflow, the steps", *get("imports: ZenML, MLflow, steps")),
        ("ZenML store + stack", *get("ZenML store + stack")),
        ("MLflow experiment", *get("MLflow experiment")),
        (
            f"ZenML pipeline run: {len(steps)} steps, {len(steps) - len(ran)} cached "
            f"(ran: {', '.join(ran) or 'none'})",
            *pipeline,
        ),
        *((f"  {name}", *get(name)) for name in bodies),
        ("  ZenML's own work (the rest)", *zenml_own),
        (
            f"  ZenML's own work per step (of {len(steps)})",
            zenml_own[0] / len(steps),
            zenml_own[1] / len(steps),
        ),
        (
            "reading the outputs back",
            *minus(get("run_benchmark"), get("ZenML pipeline run", *around)),
        ),
        ("output folder (write_outputs)", *get("output folder (write_outputs)")),
        ("console tables, gates", *minus(inside, get(*stages))),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="the checkout to run")
    parser.add_argument("--config", type=Path, help="default: the project's bench.yaml")
    parser.add_argument("--repeat", type=int, default=3, help="timed cached re-runs")
    parser.add_argument("--no-seed", action="store_true", help="start from an empty response cache")
    parser.add_argument("--keep", type=Path, help="use and keep this folder (else a temporary one)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--breakdown-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    project = args.project.resolve()
    if args.breakdown_child is not None:
        return breakdown_child(project, args.breakdown_child)
    config = (args.config or project / "bench.yaml").resolve()
    folder = (args.keep or Path(tempfile.mkdtemp(prefix="cached-rerun-"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env = isolated_env(folder, project)
    python = sys.executable
    run_command = [python, str(project / "run.py"), "--config", str(config)]
    print(f"project {project} at {commit_of(project)}; config {config}")
    print(
        f"state in {folder}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    try:
        seeded = 0 if args.no_seed else seed_response_cache(folder)
        print(f"response cache seeded with {seeded} answers")
        first = run_timed(run_command, folder, env)
        check(first, "the first run")
        sent, total = answers_sent(folder)
        print(
            f"first run (fills ZenML's cache): {first.wall:.1f} s wall, {first.cpu:.1f} s CPU; "
            f"{sent} of {total} answers generated, the rest from the response cache"
        )

        runs: list[Timed] = []
        print(f"\n{' '.join(['python', 'run.py', '--config', config.name])}, fully cached:")
        for index in range(args.repeat):
            result = run_timed(run_command, folder, env)
            check(result, "a cached re-run")
            cached = FULLY_CACHED in result.stdout
            runs.append(result)
            print(
                f"  re-run {index + 1}: {result.wall:6.2f} s wall, {result.cpu:6.2f} s CPU"
                + ("" if cached else "  (NOT fully cached: a generation step ran)")
            )
        wall, cpu = median_of(runs)
        print(f"  median:   {wall:6.2f} s wall, {cpu:6.2f} s CPU")

        start = run_timed([python, "-c", "pass"], folder, env)
        instrumented = run_timed(
            [
                python,
                str(Path(__file__).resolve()),
                "--project",
                str(project),
                "--breakdown-child",
                "--config",
                str(config),
            ],
            folder,
            env,
        )
        check(instrumented, "the instrumented re-run")
        line = next(x for x in instrumented.stdout.splitlines() if x.startswith(MARK))
        figures = json.loads(line.removeprefix(MARK))
        print(
            f"\nwhere the time goes (one more cached re-run, in-process and instrumented: "
            f"{instrumented.wall:.2f} s wall, {instrumented.cpu:.2f} s CPU):"
        )
        print(f"  {'':74s} {'wall s':>7s} {'CPU s':>7s}")
        for what, wall_s, cpu_s in breakdown_rows(figures, instrumented, start):
            print(f"  {what:74s} {wall_s:7.2f} {cpu_s:7.2f}")
        totals = figures["totals"]
        print(
            f"  report page rendered {int(totals.get('report page', {}).get('calls', 0))} "
            f"time(s) ({totals.get('report page', {}).get('cpu', 0.0):.2f} s CPU), plots "
            f"drawn {int(totals.get('report plots', {}).get('calls', 0))} time(s) "
            f"({totals.get('report plots', {}).get('cpu', 0.0):.2f} s CPU) in this run"
        )

        if not args.skip_reference:
            print("\nreferences, same machine, same run:")
            print(
                f"  python -c pass:                          {start.wall:6.2f} s wall, "
                f"{start.cpu:6.2f} s CPU"
            )
            imports = run_timed([python, "-c", "import zenml, mlflow"], folder, env)
            check(imports, "the import reference")
            print(
                f"  python -c 'import zenml, mlflow':        {imports.wall:6.2f} s wall, "
                f"{imports.cpu:6.2f} s CPU"
            )
            script = folder / "reference_pipeline.py"
            script.write_text(REFERENCE_PIPELINE)
            steps = str(len(figures["steps"]))
            check(run_timed([python, str(script), steps], folder, env), "the empty pipeline")
            empty = run_timed([python, str(script), steps], folder, env)
            check(empty, "the empty pipeline, cached")
            inner = json.loads(empty.stdout.strip().splitlines()[-1])
            print(
                f"  empty dynamic pipeline, {steps} cached steps: {empty.wall:6.2f} s wall, "
                f"{empty.cpu:6.2f} s CPU (the pipeline call {inner['wall']:.2f} s wall, "
                f"{inner['cpu']:.2f} s CPU)"
            )
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
