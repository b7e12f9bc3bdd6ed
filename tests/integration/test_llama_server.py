"""A real OpenAI-compatible server end to end: llama-cpp-python's own server on loopback,
serving the SmolLM2 GGUF, benchmarked through the `openai_compatible` provider (the
official openai SDK over HTTP) next to the in-process `llamacpp` provider."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from llmbench.providers.llamacpp import resolve_model_file
from tests.cli_runs import isolated_env, run_cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    model = resolve_model_file("smollm2-135m-instruct")
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    log_file = log.open("wb")  # a file, not a pipe: a full pipe would block the server
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            # The in-process provider's default (llmbench.providers.llamacpp: flash_attn),
            # which changes llama.cpp's numbers; llama_cpp.server's own default is off.
            "--flash_attn",
            "true",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log_file.close()


def test_server_scores_match_in_process(llama_server: str, tmp_path: Path) -> None:
    config = {
        "name": "server-vs-inprocess",
        "models": [
            {
                "name": "inprocess",
                "provider": "llamacpp",
                "model": "smollm2-135m-instruct",
                "params": {"max_tokens": 32},
            },
            {
                "name": "server",
                "provider": "openai_compatible",
                "model": "smollm2",
                "base_url": llama_server,
                "params": {"max_tokens": 32},
                # The server's default repeat_penalty is 1.1; in-process it is 1.0.
                "options": {"extra_body": {"repeat_penalty": 1.0}},
                "price": {
                    "per_hour": 0.085,
                    "source": "same machine as the in-process model",
                    "date": "2026-11-29",
                },
            },
        ],
        "tasks": [
            str(ROOT / "configs" / "tasks" / f"{t}.yaml") for t in ("arithmetic", "multiple_choice")
        ],
        "execution": {"limit": 4, "concurrency": 1},
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(config))
    run_cli(tmp_path, isolated_env(tmp_path), "--config", "bench.yaml", "--output-dir", "out")
    board = {r["model"]: r for r in csv.DictReader((tmp_path / "out" / "leaderboard.csv").open())}
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").open()]
    outputs: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        assert row["error"] is None, row["error"]
        outputs.setdefault((row["task"], row["sample_id"]), {})[row["model"]] = row["output"]
    # The same weights, sampler and template; but the server evaluates each prompt's new
    # suffix after whatever its last request left (llama-cpp-python's prefix reuse, and its
    # two task steps interleave), the in-process provider in line-aligned chunks, and
    # llama.cpp's numbers depend on the batch split: at most one greedy answer of the 8
    # may part (with flash attention on, arith-003 did).
    same = [key for key, by_model in outputs.items() if by_model["server"] == by_model["inprocess"]]
    assert len(outputs) == 8 and len(same) >= 7, outputs
    for column in ("arithmetic/exact_match", "multiple_choice/accuracy"):
        gap = abs(float(board["server"][column]) - float(board["inprocess"][column]))
        assert gap <= 0.25 + 1e-9, column  # one item of a task's 4
    served = [r for r in rows if r["model"] == "server"]
    assert all(r["input_tokens"] > 0 and r["output_tokens"] > 0 for r in served)
