"""A retrieval task through the real CLI and pipeline (isolated ZenML store, loopback fake
OpenAI API): the corpus's index is a ZenML artifact that loads and searches as a freshly
built one does; an unchanged rerun is a cache hit for the index step; a new retriever
re-runs indexing, retrieval and generation, not loading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runs import isolated_env, run_cli
from tests.fakes.provider_server import ProviderServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
XQUAD = ROOT.parent / "shared" / "data" / "rag" / "xquad" / "xquad.en.json"
PASSAGES = 12
QUESTIONS = 3
TASK = """
name: slice_rag
source: {{path: questions.jsonl}}
sample_id: id
target: answer
retrieval:
  corpus: {{path: corpus.jsonl}}
  retriever: {retriever}
  top_k: 2
  query: question
  gold: passage_id
template: |
  {{% for p in passages %}}Passage {{{{ p.rank }}}}: {{{{ p.text }}}}
  {{% endfor %}}Question: {{{{ question }}}}
max_tokens: 16
metrics: [exact_match, retrieval]
"""
BENCH = """
name: rag_pipeline
models:
  - {name: reader, provider: openai, model: gpt-4o-mini}
tasks: [task.yaml]
execution: {concurrency: 2}
"""
# Loads run 1's index artifact and searches it beside an index built afresh (another
# disk cache, so nothing is shared but the corpus file).
COMPARE = """
import json, sys
from pathlib import Path
from zenml.client import Client
from llmbench.retrieval.corpus import load_corpus
from llmbench.retrieval.index import Index, build_index
from llmbench.schema import CorpusSpec
run = Client().get_pipeline_run(sys.argv[1])
(name,) = [n for n in run.steps if n.startswith("index__")]
stored = run.steps[name].outputs["index"][0].load()
fresh = build_index(load_corpus(CorpusSpec(path="corpus.jsonl")), "bm25", "all-MiniLM-L6-v2")
queries = [json.loads(line)["question"] for line in Path("questions.jsonl").open()]
print(json.dumps({
    "type": type(stored).__name__,
    "passages": [p.id for p in stored.corpus.passages],
    "stored": stored.search(queries, 3),
    "fresh": fresh.search(queries, 3),
}))
"""


def write_data(folder: Path) -> None:
    """The first XQuAD paragraphs as a JSON Lines corpus and a question on each of the
    first few (each question's gold passage is its paragraph)."""
    from llmbench.tasks import squad

    passages = squad.passages(str(XQUAD))[:PASSAGES]
    with (folder / "corpus.jsonl").open("w") as handle:
        for pid, title, text in passages:
            handle.write(json.dumps({"id": pid, "title": title, "text": text}) + "\n")
    ids = [pid for pid, _, _ in passages]
    rows, seen = [], set()
    for row in squad.question_rows(str(XQUAD)):
        if row["passage_id"] in ids[:QUESTIONS] and row["passage_id"] not in seen:
            seen.add(row["passage_id"])
            rows.append(
                {
                    "id": row["id"],
                    "question": row["question"],
                    "answer": row["answers"][0],
                    "passage_id": row["passage_id"],
                }
            )
    assert len(rows) == QUESTIONS
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def python(folder: Path, env: dict[str, str], script: str, *args: str) -> str:
    """``script``'s last line of output, run from a file (ZenML finds its source root by
    the main module's file when it loads an artifact's materializer)."""
    path = folder / "script.py"
    path.write_text(script)
    out = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def step_statuses(folder: Path, env: dict[str, str], run_name: str) -> dict[str, str]:
    script = (
        "import json, sys; from zenml.client import Client\n"
        "run = Client().get_pipeline_run(sys.argv[1])\n"
        "print(json.dumps({k: str(s.status) for k, s in run.steps.items()}))\n"
    )
    return dict(json.loads(python(folder, env, script, run_name)))


def run(folder: Path, env: dict[str, str], retriever: str, name: str) -> dict[str, str]:
    (folder / "task.yaml").write_text(TASK.format(retriever=retriever))
    run_cli(folder, env, "--config", "bench.yaml", "--run-name", name, "--output-dir", "out")
    return step_statuses(folder, env, name)


def test_the_index_is_an_artifact_cached_per_corpus_and_retriever(
    server: ProviderServer, tmp_path: Path
) -> None:
    if not XQUAD.is_file():
        pytest.skip(f"shared benchmark data not found at {XQUAD}")
    write_data(tmp_path)
    (tmp_path / "bench.yaml").write_text(BENCH)
    env = isolated_env(
        tmp_path,
        OPENAI_API_KEY="sk-rag-pipeline",
        OPENAI_BASE_URL=server.url + "/v1",
        LLMBENCH_INDEX_DIR=str(tmp_path / "indexes"),
    )

    first = run(tmp_path, env, "bm25", "rag-1")
    (bm25,) = [s for s in first if s.startswith("index__")]
    assert bm25.endswith("__bm25")
    for step in (bm25, "load__slice_rag", "retrieve__slice_rag", "generate__reader__slice_rag"):
        assert first[step] == "completed", (step, first)
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").open()]
    assert len(rows) == QUESTIONS
    assert all(len(r["retrieval"]["passages"]) == 2 for r in rows)
    assert all(r["trace"][0]["kind"] == "retriever" for r in rows)
    asked = {json.loads(q)["id"]: json.loads(q) for q in (tmp_path / "questions.jsonl").open()}
    for row in rows:  # the rows, queries and gold ids through the load step's table
        question = asked[row["sample_id"]]
        assert row["retrieval"]["gold"] == [question["passage_id"]]
        assert row["retrieval"]["query"] == question["question"]
        assert row["prompt"].endswith("Question: " + question["question"])

    found = json.loads(
        python(tmp_path, {**env, "LLMBENCH_INDEX_DIR": str(tmp_path / "fresh")}, COMPARE, "rag-1")
    )
    assert found["type"] == "Index" and len(found["passages"]) == PASSAGES
    assert found["stored"] == found["fresh"]
    assert [len(r) for r in found["stored"]] == [3] * QUESTIONS

    second = run(tmp_path, env, "bm25", "rag-2")
    # Every step but the run's own page and MLflow runs (their parameters hold the run name).
    named = {"report", "track"}
    assert {k: v for k, v in second.items() if k not in named} == {
        k: "cached" for k in first if k not in named
    }

    third = run(tmp_path, env, "dense", "rag-3")
    (dense,) = [s for s in third if s.startswith("index__")]
    assert dense == bm25.removesuffix("bm25") + "dense"  # the same corpus digest
    assert third["load__slice_rag"] == "cached"
    for step in (dense, "retrieve__slice_rag", "generate__reader__slice_rag"):
        assert third[step] == "completed", (step, third)
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").open()]
    assert {r["retrieval"]["retriever"] for r in rows} == {"dense"}
