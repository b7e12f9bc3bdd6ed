"""The shipped XQuAD RAG task through the real CLI and pipeline (isolated ZenML store,
loopback fake OpenAI API, the real all-MiniLM-L6-v2 encoder): one judge grades each answer's
faithfulness and scores its answer relevance from the same generations, and both reach
samples.jsonl and statistics/intervals.csv. The judge's replies are scripted per question:
questions equal to the asked one (relevance 1), a mix (the mean cosine, recomputed here),
a noncommittal answer (0) and an unreadable reply (unscored, never 0)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from llmbench.scoring import relevance
from tests.cli_runs import isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer, RecordedRequest, Reply

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
XQUAD = ROOT.parent / "shared" / "data" / "rag" / "xquad" / "xquad.en.json"
LIMIT = 4
OTHERS = ["What is the capital of France?", "Who wrote Hamlet?"]
BENCH = f"""
name: relevance
models:
  - {{name: reader, provider: openai, model: gpt-4o-mini}}
judges:
  - {{name: judge, provider: openai, model: gpt-4o}}
tasks: [{ROOT / "configs" / "tasks" / "xquad_rag.yaml"}]
execution: {{limit: {LIMIT}, concurrency: 2}}
stats: {{resamples: 200}}
"""


def first_questions() -> list[str]:
    from llmbench.tasks import squad

    return [row["question"] for row in squad.question_rows(str(XQUAD))[:LIMIT]]


def responder(questions: list[str]) -> object:
    """The reader repeats the question it is asked; the judge grades faithfulness 10 and
    answers the relevance prompt by which question the answer repeats."""
    replies = {
        questions[0]: {"questions": [questions[0]] * 3, "noncommittal": 0},
        questions[1]: {"questions": [OTHERS[0], questions[1], OTHERS[1]], "noncommittal": 0},
        questions[2]: {"questions": [questions[2]] * 3, "noncommittal": 1},
    }

    def reply(request: RecordedRequest) -> Reply:
        text = request.last_user_text or ""
        if "[Retrieved passages]" in text:
            return Reply(text='{"explanation": "supported", "score": 10}')
        if "[Answer]" in text:
            answer = text.split("[Answer]\n")[1].split("\n[End of answer]")[0]
            if answer in replies:
                return Reply(text=json.dumps(replies[answer]))
            return Reply(text="I cannot answer that.")  # no JSON: unscored
        asked = re.search(r"Question: (.*)\nAnswer:", text)
        assert asked is not None, text
        return Reply(text=asked.group(1))

    return reply


def test_a_rag_task_reports_faithfulness_and_answer_relevance_with_intervals(
    server: ProviderServer, tmp_path: Path
) -> None:
    if not XQUAD.is_file():
        pytest.skip(f"shared benchmark data not found at {XQUAD}")
    questions = first_questions()
    server.default = responder(questions)  # type: ignore[assignment]
    (tmp_path / "bench.yaml").write_text(BENCH)
    env = isolated_env(
        tmp_path,
        OPENAI_API_KEY="sk-relevance-test",
        OPENAI_BASE_URL=server.url + "/v1",
        LLMBENCH_INDEX_DIR=str(tmp_path / "indexes"),
    )
    run_cli(tmp_path, env, "--config", "bench.yaml", "--run-name", "rel", "--output-dir", "out")

    prompts = [r.last_user_text or "" for r in server.requests]
    assert sum("[Answer]" in p for p in prompts) == LIMIT  # one relevance request per answer
    assert sum("[Retrieved passages]" in p for p in prompts) == LIMIT
    assert sum("Answer:" in p and "[Answer]" not in p for p in prompts) == LIMIT  # generated once

    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").open()]
    by_question = {r["retrieval"]["query"]: r for r in rows}
    assert sorted(by_question) == sorted(questions)
    scores = [by_question[q]["scores"]["answer_relevance"] for q in questions]
    vectors = relevance.embed([questions[1], *OTHERS])
    cosines = [1.0, *(float(v @ vectors[0]) for v in vectors[1:])]  # unit vectors
    mixed = float(np.mean([cosines[1], cosines[0], cosines[2]]))
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[1] == pytest.approx(mixed, abs=1e-5) and 0.0 < mixed < 1.0
    assert scores[2] == 0.0  # noncommittal
    assert scores[3] is None  # unreadable: unscored, never 0
    assert all(by_question[q]["scores"]["judge"] == 10.0 for q in questions)
    (judgment,) = by_question[questions[1]]["judgments"]
    assert judgment["relevance_questions"] == [OTHERS[0], questions[1], OTHERS[1]]
    assert judgment["noncommittal"] is False and judgment["grade"] == 10.0

    with (tmp_path / "out" / "statistics" / "intervals.csv").open() as handle:
        intervals = {row["metric"]: row for row in csv.DictReader(handle)}
    row = intervals["answer_relevance"]
    assert (row["model"], row["task"], int(row["n"])) == ("reader", "xquad_rag", 3)
    assert float(row["estimate"]) == pytest.approx((1.0 + mixed + 0.0) / 3, abs=1e-5)
    assert float(row["low"]) <= float(row["estimate"]) <= float(row["high"])
    assert not math.isnan(float(intervals["judge"]["estimate"]))

    # The judges table counts both requests per answer: 4 grades and 4 relevance replies,
    # the unreadable one unscored.
    with (tmp_path / "out" / "statistics" / "judges.csv").open() as handle:
        (judges,) = list(csv.DictReader(handle))
    assert (int(judges["judged"]), int(judges["unscored"])) == (2 * LIMIT, 1)
