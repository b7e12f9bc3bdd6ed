"""`make run`'s generation on each local engine, from an empty response cache (not a test).

    python benchmarks/make_run_engines.py [--config bench.yaml] [--repeat 1]
                                          [--engines in_process,server]

Runs ``python run.py --config CONFIG`` as a user would, once per engine, back to back (the
order alternating per repetition), each in a fresh temporary folder of its own: the ZenML
store, the MLflow store, an empty response cache and ``results/`` (cached_rerun.py's
isolation), so every answer is generated. For an engine other than the config's own, the run
gets a copy of the config with ``options: {engine: ...}`` on every ``llamacpp`` model. It
prints each run's wall time and CPU time (run.py and its children: a llama-server included),
the load average before and after (the machine may be shared: contenders run next to each
other so that others' load falls on both), and each run's leaderboard as run.py printed it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # a script, not a test: its sibling's helpers

from cached_rerun import answers_sent, check, commit_of, isolated_env, run_timed  # noqa: E402


def config_on(engine: str, config: Path, folder: Path) -> Path:
    """A copy of ``config`` in ``folder`` whose local models run on ``engine`` (the paths it
    names made absolute, so the copy reads the same files)."""
    data: dict[str, Any] = yaml.safe_load(config.read_text())
    for model in data.get("models") or []:
        if model.get("provider") == "llamacpp":
            model["options"] = {**(model.get("options") or {}), "engine": engine}
    data["tasks"] = [
        str((config.parent / task).resolve()) if isinstance(task, str) else task
        for task in data.get("tasks") or []
    ]
    copy = folder / f"{config.stem}-{engine}.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def leaderboard(stdout: str) -> str:
    """run.py's printed leaderboard: from its title to the line naming the results folder."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "leaderboard" in line), 0)
    end = next((i for i, line in enumerate(lines) if line.startswith("Results:")), len(lines))
    return "\n".join(lines[start:end])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "bench.yaml")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--engines", default="in_process,server")
    args = parser.parse_args()
    config = args.config.resolve()
    engines = args.engines.split(",")
    print(f"{ROOT} at {commit_of(ROOT)}; {config.name}; {os.cpu_count()} CPUs")
    for rep in range(args.repeat):
        order = engines if rep % 2 == 0 else engines[::-1]
        for engine in order:
            folder = Path(tempfile.mkdtemp(prefix=f"make-run-{engine}-"))
            try:
                env = isolated_env(folder, ROOT)
                copy = config_on(engine, config, folder)
                load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                result = run_timed(
                    [sys.executable, str(ROOT / "run.py"), "--config", str(copy)], folder, env
                )
                check(result, f"run.py on engine {engine}")
                sent, total = answers_sent(folder)
                after = " ".join(f"{x:.1f}" for x in os.getloadavg())
                print(
                    f"\nengine {engine}: {result.wall:.1f} s wall, {result.cpu:.1f} s CPU; "
                    f"{sent} of {total} answers generated; load average {load} before, "
                    f"{after} after"
                )
                print(leaderboard(result.stdout))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
