"""What a task's ``tools:`` says: which tools an entrant may call and how long it may loop.

A leaf module (pydantic only): the config schema and :class:`llmbench.types.Sample` both
carry it, so a tool-using sample says, through every step's table round trip, which tools
answer it, and a change of tools changes the samples (and so re-runs generation).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PythonToolSpec(_Strict):
    """A user's Python function as a tool: ``function`` is ``module:name`` (an importable
    module) or ``path/to/file.py:name`` (a file, relative to the task's YAML). Its
    parameters' JSON schema is ``parameters`` when given, else derived from the function's
    type hints (pydantic)."""

    function: str = Field(pattern=r"^([A-Za-z_][\w.]*|.+\.py):[A-Za-z_]\w*$")
    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the name the model sees; default: the function's",
    )
    description: str | None = Field(default=None, description="default: its docstring")
    parameters: dict[str, Any] | None = Field(
        default=None, description="JSON schema of its arguments; default: from type hints"
    )


class McpServerSpec(_Strict):
    """An MCP server started over stdio for the run (the official ``mcp`` SDK's client):
    its tools are listed once and called by name."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="names it in traces")
    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    tools: list[str] | None = Field(default=None, description="offer only these; default: all")
    timeout_s: float = Field(default=30.0, gt=0, description="start-up and each call")


class ToolsSpec(_Strict):
    """The tools of a task and the agent loop that uses them: entrant -> tool calls ->
    tool results -> ... -> final answer, at most ``max_steps`` model calls."""

    builtin: list[str] = Field(
        default_factory=list, description="llmbench's local tools by name (llmbench.tools.local)"
    )
    python: list[PythonToolSpec] = Field(default_factory=list)
    mcp: list[McpServerSpec] = Field(default_factory=list)
    max_steps: int = Field(default=8, ge=1, le=64, description="model calls per sample, at most")
    call_timeout_s: float = Field(
        default=60.0, gt=0, description="a tool call still running after this is an error"
    )
    tool_choice: str | None = Field(
        default=None, description="auto, none, required or a tool's name (the first call only)"
    )
