"""SQuAD-format files (SQuAD v1.1, XQuAD): articles of paragraphs, each with its questions.

Read with ``json`` rather than ``datasets``: a table loader gives one row per article, and
the questions and the paragraphs are two different tables of it (a task's rows, a
retrieval corpus). A paragraph's id is ``<article title>#<paragraph index>``: stable as long
as the file is, and what a question's ``passage_id`` (its gold passage) names.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from llmbench.errors import ConfigError


def passage_id(title: str, index: int) -> str:
    return f"{title}#{index}"


@functools.lru_cache(maxsize=8)
def _articles(path: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"not a readable JSON file: {exc}".splitlines()[0],
            source=path,
            hint="point the task at a SQuAD-format JSON file",
        ) from None
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list) or not articles:
        raise ConfigError(
            "no 'data' list of articles (SQuAD format: {data: [{title, paragraphs}]})",
            source=path,
            field="data",
        )
    for number, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(article.get("title"), str) or not isinstance(paragraphs, list):
            raise ConfigError(
                f"article {number} has no 'title' text or no 'paragraphs' list",
                source=path,
                field=f"data.{number}",
            )
        for index, paragraph in enumerate(paragraphs):
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
                raise ConfigError(
                    "a paragraph without 'context' text",
                    source=path,
                    field=f"data.{number}.paragraphs.{index}.context",
                )
    return tuple(articles)


def articles(path: str) -> tuple[dict[str, Any], ...]:
    """The file's articles, checked for the fields read here (read once per file version)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            "file not found", source=path, hint="fix the path (relative to the task file)"
        )
    stat = file.stat()
    return _articles(str(file), stat.st_mtime_ns, stat.st_size)


def passages(path: str) -> list[tuple[str, str, str]]:
    """(id, title, text) of every paragraph, in file order."""
    return [
        (passage_id(article["title"], index), article["title"], paragraph["context"])
        for article in articles(path)
        for index, paragraph in enumerate(article["paragraphs"])
    ]


def question_rows(path: str) -> list[dict[str, Any]]:
    """One row per question: its id, text, answer texts, and the paragraph holding it."""
    rows: list[dict[str, Any]] = []
    for article in articles(path):
        for index, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph.get("qas") or []:
                rows.append(
                    {
                        "id": str(qa.get("id", len(rows))),
                        "question": str(qa.get("question", "")),
                        "answers": [str(a.get("text", "")) for a in qa.get("answers") or []],
                        "title": article["title"],
                        "context": paragraph["context"],
                        "passage_id": passage_id(article["title"], index),
                    }
                )
    return rows
