"""BFCL's AST rule for tool calls (bfcl_eval/eval_checker/ast_eval/ast_checker.py, 2026.3.23).

An answer is right when its calls match the expected ones: the same number, each expected
call taking a different output call (in any order), each with the expected function name,
every required parameter, no parameter outside the function's schema or the answer, values
of the schema's type and among the allowed ones. An item expecting no call (irrelevance) is
right only when the answer does not decode into a call.

``expected`` is BFCL's possible answer: ``[{function: {param: [allowed values]}}]``, where
``""`` among the allowed values lets the parameter be left out. Types are read from the
tools' JSON schemas (the loader converts BFCL's ``dict``/``float``/``tuple``/``any`` to
``object``/``number``/``array``/``string``, so the checks are BFCL's own). Where BFCL's
checker is quirky (an int is turned into a float at the top level only; lists of dicts match
item by item in order) this follows it, so scores compare with the leaderboard's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from llmbench.types import Tool, ToolCall

_NOISE = re.compile(r"[ ,./\-_*^]")
JSON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}
Decoded = list[tuple[str, dict[str, Any]]]


def normalise(text: str) -> str:
    """BFCL's string comparison: "April 1, 2024" equals "april 1 2024"."""
    return _NOISE.sub("", text).lower().replace("'", '"')


def decode(calls: Sequence[ToolCall]) -> Decoded | None:
    """The calls as (name, arguments); None when one's arguments are not a JSON object (the
    reply does not decode, as BFCL's AST decoding fails: a miss, never a crash)."""
    out: Decoded = []
    for call in calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            return None
        if not isinstance(arguments, dict):
            return None
        out.append((call.name, arguments))
    return out


def _answer_type(allowed: Sequence[Any]) -> type | None:
    return next((type(a) for a in allowed if a != ""), None)


def _type_ok(
    value: Any, allowed: Sequence[Any], kind: type, items: type | None
) -> tuple[bool, bool]:
    """(valid, is_variable): the value has the schema's type (its items too, checked against
    some allowed list), or the allowed values' own type (BFCL's "variable")."""
    answer_type = _answer_type(allowed)
    if type(value) is kind and (
        items is None
        or any(  # BFCL checks the items against some allowed list (or an optional "")
            not isinstance(option, list)
            or all(_type_ok(v, option, items, None)[0] for v in cast("list[Any]", value))
            for option in allowed
        )
    ):
        return True, answer_type is not None and answer_type is not kind
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, False


def _normal(value: Any) -> Any:
    return normalise(value) if isinstance(value, str) else value


def _dict_ok(value: Mapping[str, Any], allowed: Sequence[Any]) -> bool:
    for option in allowed:
        if not isinstance(option, dict):
            continue
        if all(
            key in option and _normal(v) in [_normal(a) for a in option[key]]
            for key, v in value.items()
        ) and all(key in value or "" in values for key, values in option.items()):
            return True
    return False


def _list_of_dicts_ok(value: list[Any], allowed: Sequence[Any]) -> bool:
    for option in allowed:
        option = [] if option == "" else option
        if (
            isinstance(option, list)
            and len(option) == len(value)
            and all(
                isinstance(v, dict) and _dict_ok(v, [o]) for v, o in zip(value, option, strict=True)
            )
        ):
            return True
    return False


def _list_ok(value: list[Any], allowed: Sequence[Any]) -> bool:
    mine = [_normal(v) for v in value]
    options = [[_normal(a) for a in o] for o in allowed if isinstance(o, list)]
    return mine in options or ("" in allowed and not mine)


def _value_ok(value: Any, allowed: Sequence[Any], schema: Mapping[str, Any]) -> bool:
    kind_name = schema.get("type", "string")
    kind = JSON_TYPES.get(kind_name, str) if isinstance(kind_name, str) else str
    item_schema = schema.get("items")
    items = None
    if kind is list and isinstance(item_schema, Mapping):
        items = JSON_TYPES.get(str(item_schema.get("type", "string")), str)
    if kind is float and type(value) is int:  # Python turns an int into a float
        value = float(value)
    valid, variable = _type_ok(value, allowed, kind, items)
    if not valid:
        return False
    if not variable:
        if kind is dict:
            return _dict_ok(value, allowed)
        if kind is list and items is dict:
            return _list_of_dicts_ok(value, allowed)
        if kind is str:
            return normalise(value) in [normalise(a) for a in allowed if isinstance(a, str)]
        if kind is list:
            return _list_ok(value, allowed)
    return value in allowed


def call_matches(
    tool: Tool | None, call: tuple[str, dict[str, Any]], expected: Mapping[str, Any]
) -> bool:
    """Whether one decoded call is the expected one (``{function: {param: [allowed]}}``)."""
    ((name, answer),) = expected.items()
    called, arguments = call
    if called != name or tool is None:
        return False
    properties: Mapping[str, Any] = tool.parameters.get("properties") or {}
    if any(param not in arguments for param in tool.parameters.get("required") or []):
        return False
    for param, value in arguments.items():
        if param not in properties or param not in answer:
            return False
        if not _value_ok(value, answer[param], properties[param]):
            return False
    return all(param in arguments or "" in allowed for param, allowed in answer.items())


def _assign(fits: list[list[bool]]) -> bool:
    """Whether every expected call (row) can take a different output call (column)."""
    owner: dict[int, int] = {}

    def take(row: int, seen: set[int]) -> bool:
        for column, fit in enumerate(fits[row]):
            if fit and column not in seen:
                seen.add(column)
                if column not in owner or take(owner[column], seen):
                    owner[column] = row
                    return True
        return False

    return all(take(row, set()) for row in range(len(fits)))


def ast_match(
    tools: Sequence[Tool], calls: Sequence[ToolCall], expected: Sequence[Mapping[str, Any]]
) -> bool:
    """BFCL's AST verdict on one answer; ``expected`` empty: right only with no call."""
    decoded = decode(calls)
    if not expected:
        return not decoded
    if decoded is None or len(decoded) != len(expected):
        return False
    by_name: dict[str, Tool] = {}
    for tool in tools:  # BFCL reads the first function of a name
        by_name.setdefault(tool.name, tool)
    fits = [
        [call_matches(by_name.get(next(iter(want))), call, want) for call in decoded]
        for want in expected
    ]
    return _assign(fits)
