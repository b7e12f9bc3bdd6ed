"""Steps of a retrieval task: load its rows, index a corpus (once per corpus and index
kind, shared by every task that uses the pair), retrieve and render its samples.

The index is a versioned artifact stored by :class:`IndexMaterializer` through its own
``save``/``load`` (bm25s's files or a NumPy matrix, with the passages), not pickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pandas as pd
from zenml import step
from zenml.enums import ArtifactType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType
from zenml.utils import io_utils

from llmbench import stages
from llmbench.retrieval.index import Index, Kind
from llmbench.schema import CorpusSpec, SampleSpec


class IndexMaterializer(BaseMaterializer):
    """An :class:`Index` as the folder its ``save`` writes, copied to and from the
    artifact store (which may be remote), so a later run or another machine loads it."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (Index,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> Index:
        with self.get_temporary_directory(delete_at_exit=True) as folder:
            io_utils.copy_dir(self.uri, folder)
            return Index.load(Path(folder))

    def save(self, data: Index) -> None:
        with self.get_temporary_directory(delete_at_exit=True) as folder:
            data.save(Path(folder))
            io_utils.copy_dir(folder, self.uri, overwrite=True)

    def extract_metadata(self, data: Index) -> dict[str, MetadataType]:
        return {
            "kind": data.kind,
            "passages": len(data.corpus.passages),
            "corpus": os.path.basename(data.corpus.source),
            "corpus_fingerprint": data.corpus.fingerprint,
        }


@step
def load_questions(
    task: dict[str, Any], limit: int | None, data_fingerprint: str
) -> Annotated[pd.DataFrame, "questions"]:
    """A retrieval task's rows and queries. ``task`` holds no retriever setting, so changing
    the retriever leaves this step cached; ``data_fingerprint`` changes with the data."""
    return stages.load_retrieval_task(SampleSpec.model_validate(task), limit)


@step(output_materializers=IndexMaterializer)
def index_corpus(
    corpus: dict[str, Any], kind: Kind, embedding_model: str, identity: dict[str, Any]
) -> Annotated[Index, "index"]:
    """``identity`` (the corpus's content hash, the index's settings and package versions)
    is a parameter so that the cache key changes whenever the index would."""
    return stages.index_corpus(CorpusSpec.model_validate(corpus), kind, embedding_model)


@step
def retrieve(
    task: dict[str, Any], questions: pd.DataFrame, indexes: list[Index]
) -> Annotated[pd.DataFrame, "samples"]:
    return stages.retrieve(SampleSpec.model_validate(task), questions, indexes)
