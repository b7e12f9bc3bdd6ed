"""The retrievers over the real XQuAD file (../shared/data/rag/xquad/): BM25 on all 240
paragraphs, dense and hybrid on a slice of them; each index built once and kept on disk,
keyed by the corpus's content and the retriever's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench.retrieval import index
from llmbench.retrieval.augment import retrieve
from llmbench.retrieval.corpus import load_corpus
from llmbench.schema import CorpusSpec, RetrievalSpec
from llmbench.tasks import squad

ROOT = Path(__file__).resolve().parents[2]
XQUAD = ROOT.parent / "shared" / "data" / "rag" / "xquad" / "xquad.en.json"


@pytest.fixture(autouse=True)
def index_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Indexes under the test's own folder, none held in memory from an earlier test."""
    if not XQUAD.is_file():
        pytest.skip(f"shared benchmark data not found at {XQUAD}")
    home = tmp_path / "indexes"
    monkeypatch.setenv(index.INDEX_DIR_ENV, str(home))
    monkeypatch.setattr(index, "_LOADED", {})
    return home


def questions(limit: int, passages: set[str] | None = None) -> list[dict[str, object]]:
    rows = squad.question_rows(str(XQUAD))
    return [r for r in rows if passages is None or r["passage_id"] in passages][:limit]


def hit_rate(spec: RetrievalSpec, rows: list[dict[str, object]]) -> float:
    found = retrieve(
        spec,
        [str(r["question"]) for r in rows],
        [(str(r["passage_id"]),) for r in rows],
        source="test",
    )
    assert all(len(f.passages) == spec.top_k for f in found)
    return sum(any(p.id in f.gold for p in f.passages) for f in found) / len(found)


def slice_of_xquad(tmp_path: Path, count: int) -> CorpusSpec:
    """The first ``count`` XQuAD paragraphs as a JSON Lines corpus (written for the test)."""
    path = tmp_path / "slice.jsonl"
    rows = squad.passages(str(XQUAD))[:count]
    path.write_text(
        "".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in rows)
    )
    return CorpusSpec(path=str(path))


def test_bm25_finds_the_gold_paragraph_and_builds_its_index_once(
    index_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = RetrievalSpec(
        corpus=CorpusSpec(path=str(XQUAD), format="squad"), query="question", gold="passage_id"
    )
    assert len(load_corpus(spec.corpus).passages) == 240
    rows = questions(60)
    assert hit_rate(spec, rows) >= 0.9
    (built,) = index_home.iterdir()
    stamp = {p.name: p.stat().st_mtime_ns for p in built.iterdir()}
    monkeypatch.setattr(index, "_LOADED", {})  # as a new process finds it: on disk only
    again = retrieve(spec, ["Who won Super Bowl 50?"], [()], source="test")
    assert again[0].passages[0].id.startswith("Super_Bowl_50#")
    assert list(index_home.iterdir()) == [built]
    assert {p.name: p.stat().st_mtime_ns for p in built.iterdir()} == stamp
    other = spec.model_copy(update={"corpus": slice_of_xquad(tmp_path, 10)})
    retrieve(other, ["Who won Super Bowl 50?"], [()], source="test")
    assert len(list(index_home.iterdir())) == 2  # another corpus, another index


@pytest.mark.slow
@pytest.mark.parametrize("retriever", ["dense", "hybrid"])
def test_dense_and_hybrid_find_the_gold_paragraph(
    index_home: Path, tmp_path: Path, retriever: str
) -> None:
    corpus = slice_of_xquad(tmp_path, 15)
    spec = RetrievalSpec(corpus=corpus, retriever=retriever, query="q", gold="g")  # type: ignore[arg-type]
    ids = {p.id for p in load_corpus(corpus).passages}
    assert hit_rate(spec, questions(40, ids)) >= 0.85
    kinds = sorted(p.name.split("-")[0] for p in index_home.iterdir())
    assert kinds == (["dense"] if retriever == "dense" else ["bm25", "dense"])
    embeddings = index.dense_index(load_corpus(corpus), spec.embedding_model)
    assert embeddings.shape == (15, 384)
