"""Load a task's rows through Hugging Face ``datasets``: Hub ids or local files.

Rows leave this module as plain dicts; ``Dataset`` objects never cross a step boundary
(they pickle as a path into the HF cache).
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path
from typing import Any

from llmbench.errors import DatasetError
from llmbench.hf_imports import HF_LOCK
from llmbench.schema import DATA_FORMATS, SourceSpec


def source_fingerprint(source: SourceSpec) -> str:
    """Changes whenever the data may have changed: file bytes, or the Hub coordinates."""
    if source.path is not None:
        digest = hashlib.sha256()
        for path in data_files(source.path):
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return "sha256:" + digest.hexdigest()
    return f"hf:{source.hf}:{source.config}:{source.split}:{source.revision}"


def data_files(pattern: str) -> list[Path]:
    """The files a source path names: one file, or every match of a glob, sorted."""
    matches = (
        sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
    )
    files = [p for p in matches if p.is_file()]
    if not files:
        raise DatasetError(
            "data file not found"
            if not glob.has_magic(pattern)
            else "no file matches this pattern",
            source=pattern,
            hint="fix 'source.path' in the task (relative paths start at the task file)",
        )
    return files


def load_rows(source: SourceSpec, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of a source, in file order, the first ``limit`` only when given."""
    with HF_LOCK:  # see llmbench.hf_imports
        return _load_rows(source, limit)


def _load_rows(source: SourceSpec, limit: int | None) -> list[dict[str, Any]]:
    import datasets

    datasets.disable_progress_bars()
    try:
        if source.path is not None:
            files = [str(p) for p in data_files(source.path)]
            builder = DATA_FORMATS[Path(source.path).suffix.lower()]
            kwargs: dict[str, Any] = {"field": source.field} if source.field else {}
            dataset = datasets.load_dataset(
                builder, data_files={"train": files}, split="train", **kwargs
            )
        else:
            dataset = datasets.load_dataset(
                source.hf, source.config, split=source.split, revision=source.revision
            )
    except DatasetError:
        raise
    except Exception as exc:  # datasets raises many types; all mean "cannot read this source"
        raise DatasetError(
            f"cannot load data: {type(exc).__name__}: {exc}".splitlines()[0],
            source=source.describe(),
            hint="check the file's format (JSON Lines, CSV or Parquet) or the Hub id, "
            "config and split (Hub ids need network access or a warm HF cache)",
        ) from None
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    rows: list[dict[str, Any]] = dataset.to_list()
    if not rows:
        raise DatasetError(
            "the dataset has no rows", source=source.describe(), hint="point the task at data"
        )
    return rows
