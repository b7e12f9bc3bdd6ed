"""Retrieve a task's passages: every row's query searched at once, gold ids checked
against the corpus, each row's result as a :class:`~llmbench.types.Retrieval`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from llmbench.errors import ConfigError
from llmbench.retrieval.corpus import load_corpus
from llmbench.retrieval.index import Index, Kind, indexes_for, prepare, search
from llmbench.schema import RetrievalSpec
from llmbench.types import Passage, Retrieval


def retrieve(
    spec: RetrievalSpec,
    queries: Sequence[str],
    golds: Sequence[tuple[str, ...]],
    *,
    source: str,
    indexes: Mapping[Kind, Index] | None = None,
) -> list[Retrieval]:
    """Each query's ``top_k`` passages, searched in ``indexes`` (a pipeline's index
    artifacts), or in the indexes of ``spec``'s corpus built or loaded here. A gold id
    missing from the corpus is a ConfigError naming ``source`` (the task's data) before
    anything is searched. ``latency_s`` is the search's wall time over its queries, the
    index already built or loaded."""
    corpus = next(iter(indexes.values())).corpus if indexes else load_corpus(spec.corpus)
    known = corpus.position()
    for row, gold in enumerate(golds):
        missing = [g for g in gold if g not in known]
        if missing:
            raise ConfigError(
                f"row {row}: gold passage id {missing[0]!r} is not in the corpus "
                f"{spec.corpus.path}",
                source=source,
                field="retrieval.gold",
                hint="gold ids must be ids of the corpus's passages (a SQuAD corpus names "
                "them '<article title>#<paragraph index>')",
            )
    found = dict(indexes) if indexes else indexes_for(spec, corpus)
    assert all(i.corpus.fingerprint == corpus.fingerprint for i in found.values())
    prepare(spec, found)
    started = time.perf_counter()
    rankings = search(spec, found, queries)
    per_query = (time.perf_counter() - started) / max(len(queries), 1)
    return [
        Retrieval(
            query=query,
            retriever=spec.retriever,
            passages=tuple(
                Passage(
                    id=corpus.passages[n].id,
                    title=corpus.passages[n].title,
                    text=corpus.passages[n].text,
                    score=score,
                    rank=rank,
                )
                for rank, (n, score) in enumerate(ranking, 1)
            ),
            gold=gold,
            latency_s=per_query,
        )
        for query, gold, ranking in zip(queries, golds, rankings, strict=True)
    ]
