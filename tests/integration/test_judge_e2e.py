"""Judged benchmarks end to end through run.py: recorded outputs, a reference-guided and a
pairwise judge on the loopback OpenAI API, statistics in every output, human calibration,
and re-scoring without regenerating or re-judging."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.cli_runs import NO_WAIT_RETRIES, ROOT, isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply

pytestmark = pytest.mark.slow

KEY = "sk-judge-e2e-5d1f0c3a-never-logged"
QUESTIONS = [(f"What is {i} + {i}?", str(2 * i)) for i in range(1, 9)]


def judge_reply(request: RecordedRequest) -> Reply:
    """A competent scripted judge: right answers (as the reference says) win and score 9."""
    prompt = request.last_user_text or ""
    reference = re.search(r"\[Reference answer\]\n(.*?)\n\[End of reference\]", prompt, re.S)
    assert reference, prompt
    right = reference.group(1).strip()
    pair = re.search(
        r"\[Answer A\]\n(.*?)\n\[End of answer A\]\n\n\[Answer B\]\n(.*?)\n", prompt, re.S
    )
    if pair:
        a_ok, b_ok = (pair.group(n).strip() == right for n in (1, 2))
        verdict = "tie" if a_ok == b_ok else ("A" if a_ok else "B")
        text = json.dumps({"explanation": "checked", "verdict": verdict})
    else:
        answer = re.search(r"\[Answer to grade\]\n(.*?)\n\[End of answer\]", prompt, re.S)
        assert answer, prompt
        score = 9 if answer.group(1).strip() == right else 2
        text = json.dumps({"explanation": "checked", "score": score})
    return Reply(text=text, input_tokens=200, output_tokens=30)


def write_bench(folder: Path, server: ProviderServer, *, labels: Path | None = None) -> Path:
    data = folder / "questions.jsonl"
    data.write_text("".join(json.dumps({"q": q, "answer": a}) + "\n" for q, a in QUESTIONS))
    for name, right in (("strong", 6), ("weak", 3)):
        rows = [
            {"q": q, "out": a if i < right else "I am not sure."}
            for i, (q, a) in enumerate(QUESTIONS)
        ]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recorded = {"provider": "recorded", "options": {"prompt_field": "q", "output_field": "out"}}
    reference_judge: dict[str, object] = {"mode": "reference", "panel": ["grader"]}
    if labels is not None:
        reference_judge["human_labels"] = {"path": str(labels)}
    config = {
        "name": "judged",
        "models": [
            {"name": "strong", "model": "strong.jsonl", **recorded},
            {"name": "weak", "model": "weak.jsonl", **recorded},
        ],
        "judges": [
            {
                "name": "grader",
                "provider": "openai_compatible",
                "model": "judge-model",
                "base_url": server.url + "/v1",
                "api_key_env": "JUDGE_KEY",
                "price": {
                    "input_per_1m": 2.5,
                    "output_per_1m": 10.0,
                    "source": "test",
                    "date": "2026-11-29",
                },
            }
        ],
        "tasks": [
            {
                "name": "graded",
                "source": {"path": str(data)},
                "template": "{{ q }}",
                "target": "answer",
                "metrics": ["exact_match"],
                "judge": reference_judge,
            },
            {
                "name": "versus",
                "source": {"path": str(data)},
                "template": "{{ q }}",
                "target": "answer",
                "judge": {"mode": "pairwise", "panel": ["grader"]},
            },
        ],
        "stats": {"resamples": 500},
        "execution": {"retries": NO_WAIT_RETRIES},
        "tracking": {"experiment": "judged-e2e"},
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_judged_benchmark_with_statistics_and_calibration(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.default = judge_reply
    env = isolated_env(tmp_path, JUDGE_KEY=KEY)
    config = write_bench(tmp_path, server)
    first = run_cli(tmp_path, env, "--config", str(config), "--output-dir", "out")
    # 8 graded answers per model, 8 pairs judged in both orders; an identical judge prompt
    # is sent once: items 0-2 (both right) and 6-7 (both unsure) are the same answer from
    # both models, so their grading prompts coincide and their two orders are one prompt.
    prompts = [r.last_user_text for r in server.requests]
    assert len(prompts) == len(set(prompts)) == (2 * 8 - 5) + (2 * 8 - 5)
    out = tmp_path / "out"

    board = {r["model"]: r for r in read_csv(out / "leaderboard.csv")}
    assert float(board["strong"]["graded/exact_match"]) == 0.75
    assert float(board["strong"]["versus/win_rate"]) == pytest.approx((3 + 0.5 * 5) / 8)
    for row in board.values():
        assert float(row["score_ci_low"]) <= float(row["score"]) <= float(row["score_ci_high"])
        assert float(row["judge_cost_usd"]) > 0
        assert float(row["cost_usd"]) == 0  # recorded outputs: the judge's cost is kept apart
    assert board["strong"]["rank"] == "1"

    stats = out / "statistics"
    comparisons = {r["task"]: r for r in read_csv(stats / "comparisons.csv")}
    assert comparisons["graded"]["method"] == "mcnemar"
    assert float(comparisons["graded"]["difference"]) == pytest.approx(3 / 8)
    ratings = {r["model"]: r for r in read_csv(stats / "ratings.csv")}
    assert float(ratings["strong"]["rating"]) > float(ratings["weak"]["rating"])
    judges = {r["task"]: r for r in read_csv(stats / "judges.csv")}
    assert float(judges["versus"]["position_consistency"]) == 1.0
    assert judges["graded"]["unscored"] == "0"

    samples = [json.loads(line) for line in (out / "samples.jsonl").open()]
    graded = [s for s in samples if s["task"] == "graded" and s["model"] == "strong"]
    assert [s["scores"]["judge"] for s in graded] == [9.0] * 6 + [2.0] * 2
    assert graded[0]["judgments"][0]["judge"] == "grader"
    versus = [s for s in samples if s["task"] == "versus" and s["model"] == "weak"]
    assert {j["verdict"] for s in versus for j in s["judgments"]} == {"loss", "tie"}

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("judged-e2e")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("llmbench.kind") == "benchmark")
    assert parent.data.metrics["judge/versus/grader/position_consistency"] == 1.0
    assert parent.data.metrics["judge_cost_usd"] > 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "statistics")}
    assert "statistics/comparisons.json" in artifacts
    child = next(r for r in runs if r.data.tags.get("llmbench.model") == "strong")
    assert child.data.metrics["graded/exact_match_ci_low"] <= 0.75
    assert "versus/bt_rating" in child.data.metrics
    assert KEY not in first.stdout + first.stderr

    # Human calibration: export blind, rate, import; only scoring reruns.
    sheet = tmp_path / "ratings.csv"
    export = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmbench.calibrate",
            "export",
            str(out),
            "--task",
            "graded",
            "--n",
            "100",
            "-o",
            str(sheet),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert export.returncode == 0, export.stderr
    rows = read_csv(sheet)
    assert len(rows) == 16 and "judge" not in " ".join(rows[0])  # blind: no judge grade
    answers = {r["q"]: r["answer"] for r in map(json.loads, (tmp_path / "questions.jsonl").open())}
    for row in rows:  # people agree with the judge: right answers are good
        row["human_label"] = "9" if row["output"] == answers[row["prompt"]] else "2"
    with sheet.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    server.clear()
    second = run_cli(
        tmp_path,
        env,
        "--config",
        str(write_bench(tmp_path, server, labels=sheet)),
        "--output-dir",
        "out2",
    )
    assert server.requests == []  # nothing regenerated, nothing re-judged
    assert "All 4 generation steps were cached" in second.stdout
    assert "Judge steps: 0 ran, 3 were cached" in second.stdout
    judges = {r["task"]: r for r in read_csv(tmp_path / "out2" / "statistics" / "judges.csv")}
    assert judges["graded"]["human_n"] == "16"
    assert float(judges["graded"]["human_accuracy"]) == 1.0
    assert float(judges["graded"]["human_kappa"]) == 1.0
    assert float(judges["graded"]["human_spearman"]) == pytest.approx(1.0)
