"""Load a Berkeley Function Calling Leaderboard category as samples.

BFCL's files are JSON Lines in spite of their ``.json`` name, and each item's functions
have parameters of their own shape, so they are read line by line with ``json`` (a table
loader would merge every item's parameters into one schema). Each item becomes a sample
asking its conversation with its functions as tools and expecting its possible answer.

Functions are converted as BFCL converts them for tool-calling models: ``dict`` becomes
``object``, ``float`` ``number``, ``tuple`` ``array``, ``any`` ``string``, a property without
a type a string, and a ``.`` in a function name ``_`` (tool names cannot hold dots), in the
tools and the expected answers alike.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from llmbench.errors import DatasetError
from llmbench.schema import BfclSpec, SourceSpec
from llmbench.tasks.loader import data_files
from llmbench.types import Message, Sample, Tool

TYPES = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "number": "number",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "array": "array",
    "tuple": "array",
    "any": "string",
}


def read_lines(path: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines file, the first ``limit`` only when given."""
    (file,) = data_files(path)
    rows: list[dict[str, Any]] = []
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if limit is not None and len(rows) >= limit:
                break
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetError(
                    f"line {number} is not JSON: {exc}", source=path, hint="fix or remove the line"
                ) from None
            if not isinstance(row, dict):
                raise DatasetError(f"line {number} is not a JSON object", source=path)
            rows.append(row)
    if not rows:
        raise DatasetError("the file has no rows", source=path, hint="point the task at data")
    return rows


def tool_name(name: str) -> str:
    return name.replace(".", "_")


def json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """One BFCL parameter schema as JSON schema, nested properties and items included."""
    out = dict(node)
    kind = node.get("type", "string")
    out["type"] = TYPES.get(kind, kind) if isinstance(kind, str) else kind
    properties = node.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {k: json_schema(v) for k, v in properties.items()}
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = json_schema(items)
    return out


def _fail(message: str, source: str, number: int, field: str) -> DatasetError:
    return DatasetError(f"line {number}: {message}", source=source, field=field)


def _item(row: dict[str, Any], source: str, number: int) -> tuple[str, list[Message], list[Tool]]:
    try:
        (turn,) = row["question"]  # the single-turn categories: one turn of messages
        messages = [Message.model_validate(m) for m in turn]
        tools = [
            Tool(
                name=tool_name(f["name"]),
                description=f.get("description", ""),
                parameters=json_schema(f["parameters"]),
            )
            for f in row["function"]
        ]
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        detail = str(exc).splitlines()[0]
        item = f"not a BFCL item ({type(exc).__name__}: {detail})"
        raise _fail(item, source, number, "question") from None
    if not any(m.role == "user" for m in messages):
        raise _fail("the question has no user turn", source, number, "question")
    return str(row.get("id", number - 1)), messages, tools


def _answers(spec: BfclSpec, ids: list[str]) -> list[list[dict[str, Any]]]:
    if spec.possible_answer is None:
        return [[] for _ in ids]
    rows = read_lines(spec.possible_answer, limit=len(ids))
    if len(rows) < len(ids):
        raise DatasetError(
            f"{len(rows)} possible answers for {len(ids)} questions",
            source=spec.possible_answer,
            hint="use the possible_answer file of the same category",
        )
    out = []
    for number, (row, sample_id) in enumerate(zip(rows, ids, strict=False), 1):
        calls = row.get("ground_truth")
        if str(row.get("id")) != sample_id or not isinstance(calls, list):
            raise _fail(
                f"answer id {row.get('id')!r} does not match question id {sample_id!r}"
                if str(row.get("id")) != sample_id
                else "no ground_truth list",
                spec.possible_answer,
                number,
                "id" if str(row.get("id")) != sample_id else "ground_truth",
            )
        out.append([{tool_name(name): args for name, args in call.items()} for call in calls])
    return out


def load_bfcl(source: SourceSpec, spec: BfclSpec, limit: int | None = None) -> list[Sample]:
    """The category's items as samples, the first ``limit`` only when given."""
    assert source.path is not None, "a bfcl task reads a local file"
    items = [_item(r, source.path, n) for n, r in enumerate(read_lines(source.path, limit), 1)]
    answers = _answers(spec, [sample_id for sample_id, _, _ in items])
    return [
        Sample(
            sample_id=sample_id,
            prompt=next(m.content for m in reversed(messages) if m.role == "user"),
            references=(),
            conversation=tuple(messages),
            tools=tuple(tools),
            expected=expected,
        )
        for (sample_id, messages, tools), expected in zip(items, answers, strict=True)
    ]
