"""BFCL's AST rule, case by case (llmbench/scoring/bfcl.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmbench.scoring.bfcl import ast_match, normalise
from llmbench.scoring.metrics import compute_structured
from llmbench.types import Completion, Sample, Tool, ToolCall

AREA = Tool(
    name="calculate_triangle_area",
    parameters={
        "type": "object",
        "properties": {
            "base": {"type": "integer"},
            "height": {"type": "number"},
            "unit": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "point": {"type": "array", "items": {"type": "number"}},
            "options": {"type": "object", "properties": {"fast": {"type": "boolean"}}},
            "rows": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["base", "height"],
    },
)
SEARCH = Tool(
    name="search",
    parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)
EXPECTED: list[dict[str, Any]] = [
    {
        "calculate_triangle_area": {
            "base": [10],
            "height": [5.0],
            "unit": ["units", ""],
            "tags": [["Red Car", "blue"], ""],
            "point": [[1.5, 2.0], ""],
            "options": [{"fast": [True]}, ""],
            "rows": [[{"k": ["a"]}, {"k": ["b"]}], ""],
        }
    }
]


def call(name: str = "calculate_triangle_area", **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call_{name}", name=name, arguments=json.dumps(arguments))


def right(*calls: ToolCall, tools: tuple[Tool, ...] = (AREA, SEARCH)) -> bool:
    return ast_match(tools, calls, EXPECTED)


def test_the_possible_answer_passes_with_optional_params_left_out() -> None:
    assert right(call(base=10, height=5.0))
    assert right(call(base=10, height=5.0, unit="units"))


def test_an_int_passes_for_a_float_but_a_float_not_for_an_int() -> None:
    assert right(call(base=10, height=5))
    assert not right(call(base=10.0, height=5.0))


def test_a_bool_is_not_an_int() -> None:
    tool = Tool(name="f", parameters={"properties": {"n": {"type": "integer"}}, "required": []})
    assert not ast_match([tool], [call("f", n=True)], [{"f": {"n": [1]}}])
    assert ast_match([tool], [call("f", n=1)], [{"f": {"n": [1]}}])


def test_strings_compare_after_bfcls_normalisation() -> None:
    assert normalise("April 1, 2024") == normalise("april 1 2024")
    assert normalise("it's") == 'it"s'
    assert right(call(base=10, height=5.0, unit=" U.N-I_T*S^"))
    assert not right(call(base=10, height=5.0, unit="meters"))


def test_wrong_name_missing_required_unexpected_param_and_wrong_value_fail() -> None:
    assert not right(call("calculate_area", base=10, height=5.0))
    assert not right(call(base=10))
    assert not right(call(base=10, height=5.0, colour="red"))
    assert not right(call(base=11, height=5.0))
    assert not right(call(base="10", height=5.0))


def test_a_param_may_be_left_out_only_where_its_allowed_values_hold_the_empty_string() -> None:
    expected = [{"f": {"a": [1], "b": [2]}}]
    tool = Tool(name="f", parameters={"properties": {"a": {"type": "integer"}, "b": {}}})
    assert ast_match([tool], [call("f", a=1, b="2")], [{"f": {"a": [1], "b": ["2"]}}])
    assert not ast_match([tool], [call("f", a=1)], expected)


def test_lists_compare_item_by_item_and_their_item_types_are_checked() -> None:
    assert right(call(base=10, height=5.0, tags=["red car", "BLUE"]))
    assert not right(call(base=10, height=5.0, tags=["blue", "red car"]))
    assert not right(call(base=10, height=5.0, tags=["red car", 3]))
    assert not right(call(base=10, height=5.0, tags="red car"))
    assert right(call(base=10, height=5.0, point=[1.5, 2.0]))
    assert not right(call(base=10, height=5.0, point=[1.5, 3.0]))


def test_dicts_compare_key_by_key_and_lists_of_dicts_in_order() -> None:
    assert right(call(base=10, height=5.0, options={"fast": True}))
    assert not right(call(base=10, height=5.0, options={"fast": False}))
    assert not right(call(base=10, height=5.0, options={"fast": True, "slow": True}))
    assert right(call(base=10, height=5.0, rows=[{"k": "A"}, {"k": "b"}]))
    assert not right(call(base=10, height=5.0, rows=[{"k": "b"}, {"k": "a"}]))


def test_a_value_of_the_answers_own_type_passes_as_a_variable() -> None:
    tool = Tool(name="f", parameters={"properties": {"n": {"type": "integer"}}})
    assert ast_match([tool], [call("f", n="x")], [{"f": {"n": ["x"]}}])
    assert not ast_match([tool], [call("f", n="X")], [{"f": {"n": ["x"]}}])


def test_parallel_calls_match_in_any_order_one_to_one() -> None:
    expected = [{"search": {"q": ["a"]}}, {"search": {"q": ["a", "b"]}}]
    a, b = ToolCall(id="1", name="search", arguments='{"q": "a"}'), call("search", q="b")
    assert ast_match([SEARCH], [b, a], expected)
    assert ast_match([SEARCH], [a, b], expected)  # a greedy first match would take "a" twice
    assert not ast_match([SEARCH], [a, a, b], expected)
    assert not ast_match([SEARCH], [b, b], expected)
    assert not ast_match([SEARCH], [a], expected)


def test_multiple_needs_the_right_function_among_several() -> None:
    expected = [{"search": {"q": ["a"]}}]
    assert ast_match([AREA, SEARCH], [call("search", q="a")], expected)
    assert not ast_match([AREA, SEARCH], [call(base=10, height=5.0)], expected)


def test_irrelevance_is_right_only_without_a_call() -> None:
    assert ast_match([SEARCH], [], [])
    assert not ast_match([SEARCH], [call("search", q="a")], [])
    assert not ast_match([SEARCH], [call("nothing")], [])


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_arguments_that_are_not_a_json_object_are_a_miss_not_a_crash(arguments: str) -> None:
    bad = ToolCall(id="1", name="search", arguments=arguments)
    assert not ast_match([SEARCH], [bad], [{"search": {"q": ["a"]}}])
    assert ast_match([SEARCH], [bad], [])  # BFCL: a reply that does not decode holds no call


def test_the_metric_scores_a_failed_request_as_wrong_even_where_no_call_is_right() -> None:
    sample = Sample(sample_id="0", prompt="hi", references=(), tools=(SEARCH,), expected=[])
    result = compute_structured(
        "bfcl_ast", [sample, sample], [Completion(), Completion(error="timeout")]
    )
    assert result.per_sample == {"bfcl_ast": [1.0, 0.0]}
    assert result.aggregate == {"bfcl_ast": 0.5}
