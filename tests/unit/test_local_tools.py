"""llmbench's local tools, a user's Python tool and a tool set's checks, without a model;
config-time bad input (unknown tool, unimportable function, a schema that is not JSON
schema) is a ConfigError naming the file and field."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from llmbench import config as cfg
from llmbench.errors import ConfigError
from llmbench.tasks.build import data_fingerprint
from llmbench.tools.base import ToolFailure, ToolSet, schema_problem
from llmbench.tools.local import FUNCTIONS, builtin_tool, calculator, convert_units, get_stock_quote
from llmbench.tools.python import derived_parameters, function_tool, user_tool
from llmbench.tools.spec import PythonToolSpec
from llmbench.tools.toolset import local_tools
from tests.fakes.user_tools import shipping_cost


def call(tools: ToolSet, name: str, arguments: object) -> tuple[str, str | None]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    outcome = asyncio.run(tools.call(name, text))
    return outcome.output, outcome.error


def test_fixture_lookups_are_exact_and_case_blind() -> None:
    quote = get_stock_quote("acme", "2025-03-03")
    assert (quote["ticker"], quote["close"], quote["currency"]) == ("ACME", 125.45, "USD")
    with pytest.raises(ToolFailure, match=r"no quote for 'ACME' on 2024-01-01 .*tickers: ACME"):
        get_stock_quote("ACME", "2024-01-01")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("(12.5 - 3) * 4 / 2", "19"),
        ("2 ** 10", "1024"),
        ("sqrt(2)", "1.41421356237"),
        ("7 // 2", "3"),
    ],
)
def test_calculator(expression: str, expected: str) -> None:
    assert calculator(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "().__class__",
        "open('x')",
        "[1, 2]",
        "1 / 0",
        "9 ** 9 ** 9",
    ],
)
def test_calculator_runs_no_code_and_fails_as_a_tool(expression: str) -> None:
    with pytest.raises(ToolFailure):
        calculator(expression)


def test_unit_conversion_with_offset_temperatures() -> None:
    assert convert_units(10, "degC", "degF") == "50 degF"
    assert convert_units(26.2, "mile", "km") == "42.164813 km"
    with pytest.raises(ToolFailure, match="cannot convert 'km' to 'kg'"):
        convert_units(1, "km", "kg")


def test_schemas_are_derived_from_type_hints() -> None:
    schema = derived_parameters(shipping_cost)
    assert schema["required"] == ["weight_kg"]
    assert schema["properties"]["zone"]["enum"] == ["domestic", "international"]
    assert schema["properties"]["weight_kg"]["exclusiveMinimum"] == 0
    tool = user_tool(PythonToolSpec(function="tests.fakes.user_tools:shipping_cost"))
    assert tool.tool.description == "A parcel's shipping cost in USD."
    assert schema_problem(tool.tool.parameters) is None


def test_a_tool_set_answers_bad_calls_with_errors_never_raises() -> None:
    tools = ToolSet(
        [
            builtin_tool("get_weather"),
            user_tool(PythonToolSpec(function="tests.fakes.user_tools:shipping_cost")),
        ]
    )
    assert json.loads(call(tools, "shipping_cost", {"weight_kg": 2})[0]) == {"usd": 9.0}
    assert call(tools, "shipping_cost", {"weight_kg": 0})[1] == (
        "arguments fail the tool's schema at weight_kg: 0 is less than or equal to the minimum of 0"
    )
    assert "is not one of" in str(call(tools, "shipping_cost", {"weight_kg": 1, "zone": "moon"})[1])
    assert (
        call(tools, "get_weather", "[1]")[1]
        == "arguments must be a JSON object of named parameters"
    )
    assert (
        call(tools, "calculator", {})[1]
        == "no tool named 'calculator' (tools: get_weather, shipping_cost)"
    )


def test_schema_problems_are_named() -> None:
    assert schema_problem({"type": "object", "properties": {"a": {"type": "strng"}}}) is not None
    assert "at properties/a/type" in str(
        schema_problem({"type": "object", "properties": {"a": {"type": 3}}})
    )
    assert schema_problem({"type": "string"}) == "a tool's parameters are an object's, not 'string'"


TASK = """
name: t1
source: {path: data.jsonl}
target: answer
template: "Q: {{ question }}"
metrics: [exact_match]
"""
BENCH = """
models:
  - name: m1
    provider: recorded
    model: data.jsonl
    options: {prompt_field: question, output_field: answer}
tasks: [task.yaml]
"""


def error_for(tmp_path: Path, tools: str) -> ConfigError:
    (tmp_path / "data.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    (tmp_path / "task.yaml").write_text(TASK + tools)
    (tmp_path / "bench.yaml").write_text(BENCH)
    with pytest.raises(ConfigError) as info:
        cfg.load(tmp_path / "bench.yaml")
    assert info.value.exit_code == 2 and info.value.source == str(tmp_path / "task.yaml")
    return info.value


@pytest.mark.parametrize(
    ("tools", "field", "message"),
    [
        ("tools: {builtin: [get_wether]}", "tools.builtin.0", "no local tool named 'get_wether'"),
        (
            "tools: {python: [{function: 'tests.fakes.nowhere:f'}]}",
            "tools.python.0.function",
            "cannot import tests.fakes.nowhere:f: ModuleNotFoundError",
        ),
        (
            "tools: {python: [{function: 'tests.fakes.user_tools:NOT_A_FUNCTION'}]}",
            "tools.python.0.function",
            "is a int, not a function",
        ),
        (
            "tools: {python: [{function: 'tests.fakes.user_tools:untyped', "
            "parameters: {type: object, properties: {a: {type: integr}}}}]}",
            "tools.python.0.parameters",
            "not a valid JSON schema at properties/a/type",
        ),
        (
            "tools: {builtin: [calculator], python: [{function: "
            "'tests.fakes.user_tools:shipping_cost', name: calculator}]}",
            "tools",
            "two tools are named 'calculator'",
        ),
    ],
)
def test_config_time_tool_errors_name_file_and_field(
    tmp_path: Path, tools: str, field: str, message: str
) -> None:
    error = error_for(tmp_path, tools)
    assert error.field == field and message in error.message


def test_the_shipped_tool_task_loads() -> None:
    task = cfg.load_task_file(Path(__file__).parents[2] / "configs/tasks/tools_weather_stock.yaml")
    assert task.tools is not None and set(task.tools.builtin) == set(FUNCTIONS)


def test_a_tool_file_beside_the_task_and_its_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    (tmp_path / "mine").mkdir()
    tool_file = tmp_path / "mine" / "tools_here.py"
    tool_file.write_text("def double(x: int) -> int:\n    '''Twice x.'''\n    return 2 * x\n")
    (tmp_path / "task.yaml").write_text(
        TASK + "tools: {python: [{function: 'mine/tools_here.py:double'}]}\n"
    )
    (tmp_path / "bench.yaml").write_text(BENCH)
    (task,) = cfg.load(tmp_path / "bench.yaml").tasks
    assert task.tools is not None
    assert task.tools.python[0].function == f"{tool_file}:double"
    tools = ToolSet(local_tools(task.tools, source=None, field="tools"))
    assert call(tools, "double", {"x": 21}) == ("42", None)
    before = data_fingerprint(task)
    assert before == data_fingerprint(task) and "+tools:" in before
    tool_file.write_text(tool_file.read_text().replace("2 * x", "3 * x"))
    assert data_fingerprint(task) != before  # a changed tool re-runs generation
    loaded = [
        k for k, m in sys.modules.items() if str(getattr(m, "__file__", "")) == str(tool_file)
    ]
    assert len(loaded) == 1  # loaded once, under a name of its own
    del sys.modules[loaded[0]]


def test_a_tool_that_does_not_answer_in_time_is_an_error() -> None:
    async def wait_forever() -> str:
        """Never answers."""
        await asyncio.Event().wait()
        return "never"

    tools = ToolSet([function_tool(wait_forever, source="test")], timeout_s=0.01)
    assert call(tools, "wait_forever", {}) == ("", "no answer within 0.01 s")
