"""A task's ``tools:`` as a tool set: checked when the config is loaded, opened when a
generation step starts (MCP servers started, their tools listed), closed when it ends.

Config-time checks make bad input an exit 2 naming the field before anything runs: an
unknown local tool, a user function that cannot be imported, a parameters schema that is
not valid JSON schema, two tools of one name. An MCP server is started and listed by the
preflight (:func:`check_servers`), so a command that cannot start fails there too.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from pathlib import Path

from llmbench.errors import ConfigError
from llmbench.suggest import did_you_mean
from llmbench.tools import local
from llmbench.tools.base import BoundTool, ToolSet, schema_problem
from llmbench.tools.local import FUNCTIONS, builtin_tool
from llmbench.tools.mcp_client import McpServer, McpStartError
from llmbench.tools.python import module_file, user_tool
from llmbench.tools.spec import ToolsSpec


def local_tools(spec: ToolsSpec, *, source: str | None, field: str) -> list[BoundTool]:
    """The local and Python tools of ``spec``; ConfigError naming the field at fault."""
    bound: list[BoundTool] = []
    for index, name in enumerate(spec.builtin):
        if name not in FUNCTIONS:
            raise ConfigError(
                f"no local tool named {name!r}; {did_you_mean(name, FUNCTIONS)}",
                source=source,
                field=f"{field}.builtin.{index}",
                hint=f"llmbench's local tools: {', '.join(FUNCTIONS)}",
            )
        bound.append(builtin_tool(name))
    for index, python in enumerate(spec.python):
        where = f"{field}.python.{index}"
        try:
            tool = user_tool(python)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"cannot import {python.function}: {type(exc).__name__}: {exc}",
                source=source,
                field=f"{where}.function",
                hint="name an importable module and a function in it as module:function "
                "(the module on the Python path of the run, e.g. next to run.py)",
            ) from None
        except Exception as exc:  # a module failing as it is imported, hints pydantic cannot read
            raise ConfigError(
                f"cannot make a tool of {python.function}: {type(exc).__name__}: {exc}",
                source=source,
                field=f"{where}.function",
                hint="give its parameters' JSON schema under 'parameters'",
            ) from None
        problem = schema_problem(tool.tool.parameters)
        if problem is not None:
            given = python.parameters is not None
            raise ConfigError(
                problem,
                source=source,
                field=f"{where}.parameters" if given else f"{where}.function",
                hint="write the arguments as a JSON schema object: "
                "{type: object, properties: {name: {type: string}}, required: [name]}",
            )
        bound.append(tool)
    _unique([*bound], source=source, field=field)
    return bound


def _unique(tools: Iterable[BoundTool], *, source: str | None, field: str) -> None:
    seen: dict[str, str] = {}
    for bound in tools:
        name = bound.tool.name
        if name in seen:
            raise ConfigError(
                f"two tools are named {name!r} ({seen[name]} and {bound.source})",
                source=source,
                field=field,
                hint="rename one (python tools: 'name'), or list only one of them",
            )
        seen[name] = bound.source


class OpenToolSet(ToolSet):
    """A tool set with the MCP servers it started, stopped by :meth:`aclose`."""

    def __init__(
        self, tools: Iterable[BoundTool], servers: list[McpServer], *, timeout_s: float
    ) -> None:
        super().__init__(tools, timeout_s=timeout_s)
        self._servers = servers

    async def aclose(self) -> None:
        await asyncio.gather(*(server.aclose() for server in self._servers))


async def open_toolset(
    spec: ToolsSpec, *, source: str | None = None, field: str = "tools"
) -> OpenToolSet:
    """Every tool of ``spec`` ready to call: MCP servers started and listed. A server that
    cannot start is a ConfigError (the preflight starts each once before the run)."""
    bound = local_tools(spec, source=source, field=field)
    servers: list[McpServer] = []
    try:
        for index, server_spec in enumerate(spec.mcp):
            server = McpServer(server_spec)
            try:
                served = await server.start()
            except McpStartError as exc:
                raise ConfigError(
                    f"MCP server {server_spec.name!r} ({server_spec.command}): {exc}",
                    source=source,
                    field=f"{field}.mcp.{index}",
                    hint="run the command by hand to see why; check command, args and env",
                ) from None
            servers.append(server)
            for tool in served:
                problem = schema_problem(tool.tool.parameters)
                if problem is not None:
                    raise ConfigError(
                        f"MCP server {server_spec.name!r}'s tool {tool.tool.name!r}: {problem}",
                        source=source,
                        field=f"{field}.mcp.{index}",
                        hint="fix the server's input schema, or leave the tool out ('tools')",
                    )
            bound.extend(served)
        _unique(bound, source=source, field=field)
        return OpenToolSet(bound, servers, timeout_s=spec.call_timeout_s)
    except BaseException:
        await asyncio.gather(*(server.aclose() for server in servers))
        raise


def tools_fingerprint(spec: ToolsSpec) -> str:
    """Changes when what the tools answer may have changed, so a cached generation is not
    reused for other tools: the spec, llmbench's local tools (code and fixture tables) when
    used, each Python tool's module file. An MCP server is known by its command only."""
    digest = hashlib.sha256(spec.model_dump_json().encode())
    files = [Path(local.__file__), *sorted(local.DATA.glob("*.csv"))] if spec.builtin else []
    for python in spec.python:
        source = module_file(python.function)
        if source is not None:
            files.append(source)
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def check_servers(spec: ToolsSpec, *, source: str | None, field: str) -> None:
    """Start each MCP server once and list its tools (the preflight): exit 2 before the
    run when one cannot start, offers no tool named in ``tools`` or a broken schema."""
    if not spec.mcp:
        return

    async def probe() -> None:
        toolset = await open_toolset(spec, source=source, field=field)
        await toolset.aclose()

    asyncio.run(probe())
