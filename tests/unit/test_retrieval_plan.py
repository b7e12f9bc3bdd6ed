"""The steps a retrieval task plans: one index step per (corpus content, index kind) shared
by the tasks that search it, a load step whose parameters hold no retriever setting, and a
retrieve step that sees them all; and an index saved and loaded whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmbench import config as cfg
from llmbench.plan import plan
from llmbench.retrieval import index
from llmbench.retrieval.corpus import load_corpus
from llmbench.schema import CorpusSpec

PASSAGES = [
    {"id": "p1", "title": "Cats", "text": "Cats sleep for most of the day and hunt at night."},
    {"id": "p2", "title": "Dogs", "text": "Dogs were domesticated from wolves long ago."},
    {"id": "p3", "title": "Bees", "text": "Bees make honey from the nectar of flowers."},
]


def task(name: str, retriever: str | None) -> dict[str, object]:
    found: dict[str, object] = {
        "name": name,
        "source": {"path": "data.jsonl"},
        "target": "answer",
        "template": "{% for p in passages|default([]) %}{{ p.text }} {% endfor %}{{ question }}",
        "metrics": ["exact_match"],
    }
    if retriever is not None:
        found["retrieval"] = {
            "corpus": {"path": "corpus.jsonl"},
            "retriever": retriever,
            "query": "question",
        }
    return found


def bench(folder: Path, *tasks: dict[str, object]) -> cfg.BenchConfig:
    (folder / "corpus.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PASSAGES))
    (folder / "data.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    config = {
        "models": [{"name": "m", "provider": "openai", "model": "gpt-4o-mini"}],
        "tasks": list(tasks),
    }
    (folder / "bench.yaml").write_text(yaml.safe_dump(config))
    return cfg.load(folder / "bench.yaml")


def test_tasks_on_one_corpus_share_its_index_steps(tmp_path: Path) -> None:
    steps = plan(
        bench(tmp_path, task("sparse", "bm25"), task("fused", "hybrid"), task("plain", None)),
        {},
    )
    digest = load_corpus(CorpusSpec(path=str(tmp_path / "corpus.jsonl"))).fingerprint[7:19]
    assert [i.id for i in steps.indexes] == [f"index__{digest}__bm25", f"index__{digest}__dense"]
    assert sorted(steps.retrievals) == ["fused", "sparse"]  # a task without retrieval: none
    assert steps.retrievals["sparse"].indexes == (f"index__{digest}__bm25",)
    assert steps.retrievals["fused"].indexes == tuple(i.id for i in steps.indexes)
    assert steps.retrievals["fused"].id == "retrieve__fused"
    bm25 = steps.indexes[0].params
    assert bm25["kind"] == "bm25" and bm25["identity"]["corpus"][7:19] == digest
    assert bm25["identity"]["bm25s"] and bm25["identity"]["k1"] == 1.5
    assert steps.indexes[1].params["identity"]["model"] == "all-MiniLM-L6-v2"


def test_a_new_retriever_changes_retrieval_not_loading(tmp_path: Path) -> None:
    (before,) = plan(bench(tmp_path, task("t", "bm25")), {}).retrievals.values()
    (after,) = plan(bench(tmp_path, task("t", "dense")), {}).retrievals.values()
    assert after.load_task == before.load_task
    assert "retriever" not in before.load_task["retrieval"]  # type: ignore[operator]
    assert after.task != before.task and after.indexes != before.indexes


def test_the_index_id_follows_preflights_corpus_fingerprint(tmp_path: Path) -> None:
    config = bench(tmp_path, task("t", "bm25"))
    (built,) = plan(config, {"corpus:t": "sha256:" + "ab" * 32}).indexes
    assert built.id == "index__abababababab__bm25"
    assert built.params["identity"]["corpus"] == "sha256:" + "ab" * 32


def test_a_saved_index_loads_and_searches_as_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(index.INDEX_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(index, "_LOADED", {})
    bench(tmp_path, task("t", "bm25"))  # writes the corpus
    corpus = load_corpus(CorpusSpec(path=str(tmp_path / "corpus.jsonl")))
    built = index.build_index(corpus, "bm25", "all-MiniLM-L6-v2")
    folder = tmp_path / "saved"
    folder.mkdir()
    built.save(folder)
    loaded = index.Index.load(folder)
    queries = ["where does honey come from", "wolves"]
    assert loaded.search(queries, 2) == built.search(queries, 2)
    assert loaded.search(queries, 1)[0][0][0] == 2  # p3, the bees
    assert (loaded.kind, loaded.corpus, loaded.settings) == (
        built.kind,
        built.corpus,
        built.settings,
    )
    (folder / "passages.jsonl").write_text(json.dumps(["p1", "Cats", "changed"]) + "\n")
    with pytest.raises(ValueError, match="passages hash to"):
        index.Index.load(folder)


def test_questions_survive_the_table_round_trip_and_refuse_rows_that_are_not_json() -> None:
    from llmbench.errors import DatasetError
    from llmbench.tasks.questions import Question, frame_to_questions, questions_to_frame

    asked = [
        Question(0, {"question": "q", "answers": ["a", "b"], "n": 2}, "q", ("p1",)),
        Question(4, {"question": "é?", "meta": {"x": None}}, "é?", ()),
    ]
    assert frame_to_questions(questions_to_frame(asked, source="task t")) == asked
    with pytest.raises(DatasetError, match="row 7 is not JSON data") as caught:
        questions_to_frame([Question(7, {"when": {1, 2}}, "q", ())], source="task t (d.jsonl)")
    assert caught.value.source == "task t (d.jsonl)"
