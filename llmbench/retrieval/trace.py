"""A retrieval as a call of its answer's trace: ``Call(kind="retriever")`` with the query
as its input and the passages as its output, in the document shape MLflow's RETRIEVER spans
take (``page_content``, ``metadata`` with ``doc_uri`` and ``chunk_id``, ``id``), so
MLflow's retrieval judges read the span as written."""

from __future__ import annotations

import json
from typing import Any

from llmbench.types import Call, Completion, Retrieval, Sample

PURPOSE = "retrieve"


def documents(retrieval: Retrieval) -> list[dict[str, Any]]:
    """The passages as MLflow ``Document`` dicts (the passage id is both the document's uri
    and its chunk id: what an expected ``doc_uri`` is matched against)."""
    return [
        {
            "page_content": p.text,
            "metadata": {
                "doc_uri": p.id,
                "chunk_id": p.id,
                "title": p.title,
                "score": p.score,
                "rank": p.rank,
            },
            "id": p.id,
        }
        for p in retrieval.passages
    ]


def retriever_call(retrieval: Retrieval) -> Call:
    return Call(
        model=retrieval.retriever,
        kind="retriever",
        purpose=PURPOSE,
        input=[{"role": "user", "content": retrieval.query}],
        start_s=0.0,
        output=json.dumps(documents(retrieval), ensure_ascii=False),
        latency_s=retrieval.latency_s,
    )


def query_of(call: Call) -> str:
    return call.input[-1]["content"] if call.input else ""


def with_retrieval(sample: Sample, completion: Completion) -> Completion:
    """``completion`` with its sample's retrieval as the first call of its trace: the model
    calls start after it, and the answer's latency counts it (the retrieval is part of how
    long a retrieval-augmented answer took)."""
    if sample.retrieval is None or any(c.kind == "retriever" for c in completion.trace):
        return completion
    call = retriever_call(sample.retrieval)
    shift = call.latency_s
    later = [c.model_copy(update={"start_s": c.start_s + shift}) for c in completion.trace]
    return completion.model_copy(
        update={"trace": [call, *later], "latency_s": completion.latency_s + shift}
    )
