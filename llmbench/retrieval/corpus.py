"""A retrieval corpus: passages with unique, stable ids, from a JSON Lines file or the
paragraphs of a SQuAD-format file.

Ids are checked here, before anything runs: a passage without an id or with an id another
passage has would make gold passages ambiguous and the index cache wrong, so either is a
:class:`~llmbench.errors.ConfigError` naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from llmbench.errors import ConfigError
from llmbench.schema import CorpusSpec
from llmbench.tasks import squad


@dataclass(frozen=True)
class CorpusPassage:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """The passages of one corpus file and a hash of their content (ids, titles, texts):
    what an index is keyed by, so a changed passage rebuilds it and a moved file does not."""

    source: str
    passages: tuple[CorpusPassage, ...]
    fingerprint: str

    def position(self) -> dict[str, int]:
        """Each passage id's position in the corpus."""
        return {p.id: n for n, p in enumerate(self.passages)}


def fingerprint_of(passages: tuple[CorpusPassage, ...]) -> str:
    """The hash of the passages' ids, titles and texts (a corpus's and its indexes' identity)."""
    digest = hashlib.sha256()
    for passage in passages:
        digest.update(json.dumps([passage.id, passage.title, passage.text]).encode())
    return "sha256:" + digest.hexdigest()


def _text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text or None
    return None


Row = tuple[int, str | None, str, object]  # (line, id, title, text) as found in the file


def _jsonl(spec: CorpusSpec) -> list[Row]:
    """(line, id, title, text) of each passage line of a JSON Lines corpus."""
    path = Path(spec.path)
    if not path.is_file():
        raise ConfigError(
            "corpus file not found",
            source=spec.path,
            field="retrieval.corpus.path",
            hint="fix the path (relative paths start at the task file)",
        )
    found: list[Row] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ConfigError(
                    f"line {number} is not JSON: {exc}", source=spec.path, field="line"
                ) from None
            if not isinstance(row, dict):
                raise ConfigError(f"line {number} is not a JSON object", source=spec.path)
            title = _text(row.get(spec.title_field)) if spec.title_field else None
            found.append(
                (number, _text(row.get(spec.id_field)), title or "", row.get(spec.text_field))
            )
    return found


def load_corpus(spec: CorpusSpec) -> Corpus:
    """The corpus's passages, every id present and unique, every text non-empty."""
    rows: list[Row]
    if spec.format == "squad":
        rows = [
            (n, pid, title, text)
            for n, (pid, title, text) in enumerate(squad.passages(spec.path), 1)
        ]
        where = "paragraph"
    else:
        rows = _jsonl(spec)
        where = "line"
    seen: dict[str, int] = {}
    passages = []
    for number, passage_id, title, text in rows:
        if passage_id is None:
            raise ConfigError(
                f"{where} {number} has no passage id (field {spec.id_field!r})",
                source=spec.path,
                field=spec.id_field,
                hint="give every passage a unique id, or set retrieval.corpus.id_field to "
                "the field that holds it",
            )
        if passage_id in seen:
            raise ConfigError(
                f"passage id {passage_id!r} occurs on {where}s {seen[passage_id]} and {number}",
                source=spec.path,
                field=spec.id_field,
                hint="passage ids must be unique: gold passages and the index refer to them",
            )
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(
                f"{where} {number} (id {passage_id!r}) has no text (field {spec.text_field!r})",
                source=spec.path,
                field=spec.text_field,
                hint="set retrieval.corpus.text_field to the field holding the passage text",
            )
        seen[passage_id] = number
        passages.append(CorpusPassage(passage_id, title, text))
    if not passages:
        raise ConfigError("the corpus has no passages", source=spec.path, field="path")
    found = tuple(passages)
    return Corpus(spec.path, found, fingerprint_of(found))
