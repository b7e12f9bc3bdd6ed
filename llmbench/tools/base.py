"""A tool set: the tools an agent may call, each a JSON schema (:class:`llmbench.types.Tool`)
and something that runs it, wherever it lives (llmbench's local tools, a user's Python
function, an MCP server).

A call never raises into the agent loop: a tool the model names that does not exist,
arguments that are not JSON or fail the tool's schema, a tool that raises, a server that
died all come back as a :class:`ToolOutcome` with an error, which the loop records in the
trace and shows the model, so the sample is answered and scored, and the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from llmbench.types import Tool

Runner = Callable[[dict[str, Any]], Awaitable[str]]


class ToolFailure(Exception):
    """A tool could not answer (unknown city, division by zero, server gone): its message
    is the tool's answer to the model, marked as an error."""


@dataclass(frozen=True)
class BoundTool:
    """A tool's schema, where it comes from (``builtin``, ``python:<module:function>``,
    ``mcp:<server>``) and the coroutine that runs it on validated arguments."""

    tool: Tool
    source: str
    run: Runner


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call gave: its output text, or the error the model is shown."""

    name: str
    arguments: str
    output: str
    error: str | None
    source: str | None
    latency_s: float

    def message(self) -> str:
        """The tool turn's content as the model reads it."""
        return f"error: {self.error}" if self.error is not None else self.output


def schema_problem(parameters: dict[str, Any]) -> str | None:
    """Why ``parameters`` is not a JSON schema of an object's arguments (None: it is)."""
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"not a valid JSON schema{f' at {where}' if where else ''}: {exc.message}"
    kind = parameters.get("type")
    if kind not in (None, "object"):
        return f"a tool's parameters are an object's, not {kind!r}"
    return None


def _argument_problem(validator: Draft202012Validator, arguments: Any) -> str | None:
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "arguments"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"arguments fail the tool's schema at {where}: {first.message}{more}"


def output_text(value: Any) -> str:
    """A tool's return value as the text a model reads: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class ToolSet:
    """Tools by name, each with its argument validator. Names are unique across sources."""

    def __init__(self, tools: Iterable[BoundTool], *, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self._tools: dict[str, BoundTool] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        for bound in tools:
            name = bound.tool.name
            if name in self._tools:
                raise ValueError(
                    f"two tools are named {name!r} ({self._tools[name].source}, {bound.source})"
                )
            self._tools[name] = bound
            self._validators[name] = Draft202012Validator(bound.tool.parameters)

    @property
    def tools(self) -> tuple[Tool, ...]:
        return tuple(bound.tool for bound in self._tools.values())

    def source(self, name: str) -> str | None:
        bound = self._tools.get(name)
        return bound.source if bound is not None else None

    async def call(self, name: str, arguments: str) -> ToolOutcome:
        """Run one call the model asked for; every failure is an outcome, never a raise."""
        started = time.perf_counter()
        bound = self._tools.get(name)

        def outcome(output: str, error: str | None) -> ToolOutcome:
            source = bound.source if bound is not None else None
            spent = time.perf_counter() - started
            return ToolOutcome(name, arguments, output, error, source, spent)

        if bound is None:
            known = ", ".join(self._tools) or "none"
            return outcome("", f"no tool named {name!r} (tools: {known})")
        try:
            parsed = json.loads(arguments or "{}")
        except ValueError as exc:
            return outcome("", f"arguments are not JSON: {exc}")
        if not isinstance(parsed, dict):
            return outcome("", "arguments must be a JSON object of named parameters")
        problem = _argument_problem(self._validators[name], parsed)
        if problem is not None:
            return outcome("", problem)
        try:
            return outcome(await asyncio.wait_for(bound.run(parsed), self.timeout_s), None)
        except TimeoutError:  # a function in a thread runs on; its answer is not waited for
            return outcome("", f"no answer within {self.timeout_s:g} s")
        except ToolFailure as exc:
            return outcome("", str(exc))
        except Exception as exc:  # a user's tool raising is data about it, not a crash
            return outcome("", f"the tool raised {type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        """Local tools hold nothing; a tool set over servers stops them."""
        return None
