"""Kill -9 in the middle of generation, run the same command again: only what is missing is
asked, and the results equal those of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli_runs import NO_WAIT_RETRIES, ROOT, isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer

pytestmark = pytest.mark.slow

LIMIT = 30
CONCURRENCY = 2


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer(latency_s=0.15) as running:
        yield running


def write_config(folder: Path, server: ProviderServer) -> None:
    config = {
        "name": "resume",
        "models": [
            {
                "name": "mini",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": server.url + "/v1",
            }
        ],
        "tasks": [str(ROOT / "configs" / "tasks" / "arithmetic.yaml")],
        "execution": {"limit": LIMIT, "concurrency": CONCURRENCY, "retries": NO_WAIT_RETRIES},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.yaml").write_text(yaml.safe_dump(config))


def comparable(path: Path) -> list[tuple[str, str, str | None, object]]:
    rows = [json.loads(line) for line in path.open()]
    return sorted((r["sample_id"], r["output"], r["answer"], r["scores"]) for r in rows)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_stop_then_resume_matches_a_clean_run(
    server: ProviderServer, tmp_path: Path, stop: signal.Signals
) -> None:
    server.clear()
    killed = tmp_path / "killed"
    write_config(killed, server)
    env = isolated_env(killed, OPENAI_API_KEY="sk-resume-test")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--config", "bench.yaml", "--output-dir", "out"],
        cwd=killed,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while len(server.requests) < LIMIT // 3:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "generation never started"
        time.sleep(0.05)
    os.killpg(process.pid, stop)  # to the whole group, as a terminal's Ctrl-C is
    _, stderr = process.communicate(timeout=60)
    if stop == signal.SIGINT:  # stops at once, says how to resume
        assert process.returncode == 130, stderr
        assert "run the same command again to resume" in stderr
    before = len(server.requests)
    assert before < LIMIT, "killed too late to test a resume"
    assert not (killed / "out" / "samples.jsonl").exists()

    run_cli(killed, env, "--config", "bench.yaml", "--output-dir", "out")
    resumed = len(server.requests) - before
    # Only what was missing was asked again: at most the requests in flight at the kill.
    assert LIMIT - before <= resumed <= LIMIT - before + CONCURRENCY

    clean = tmp_path / "clean"
    write_config(clean, server)
    run_cli(
        clean,
        isolated_env(clean, OPENAI_API_KEY="sk-resume-test"),
        "--config",
        "bench.yaml",
        "--output-dir",
        "out",
    )
    assert comparable(killed / "out" / "samples.jsonl") == comparable(
        clean / "out" / "samples.jsonl"
    )


def test_budget_guard_through_the_cli(server: ProviderServer, tmp_path: Path) -> None:
    write_config(tmp_path, server)
    config = yaml.safe_load((tmp_path / "bench.yaml").read_text())
    config["execution"]["max_cost_usd"] = 0.0002  # a few requests' worst case
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(config))
    sent_before = len(server.requests)
    result = run_cli(
        tmp_path,
        isolated_env(tmp_path, OPENAI_API_KEY="sk-budget-test"),
        "--config",
        "bench.yaml",
        "--output-dir",
        "out",
    )
    assert "Budget reached: execution.max_cost_usd is $0.0002" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").open()]
    refused = [r for r in rows if (r["error"] or "").startswith("budget:")]
    answered = [r for r in rows if r["error"] is None]
    assert refused and answered and len(refused) + len(answered) == LIMIT
    assert len(server.requests) - sent_before == len(answered)
    assert sum(r["cost_usd"] for r in answered) <= 0.0002
