"""llmbench's local tools served as an MCP server over stdio (the official ``mcp`` SDK's
low-level server), so any MCP client, llmbench's own included, can call them:

    python -m llmbench.tools.mcp_server                       # every local tool
    python -m llmbench.tools.mcp_server get_weather calculator

A tool's failure is a result with ``isError`` set (the MCP convention: the model sees it
and may correct itself); an unknown tool is the same, as llmbench's own tool set answers.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server

from llmbench.tools.base import ToolSet
from llmbench.tools.local import FUNCTIONS, builtin_tool


def build_server(tools: ToolSet, name: str = "llmbench-tools") -> Server[Any]:
    """An MCP server answering tools/list and tools/call from ``tools``."""
    listed = [
        types.Tool(name=t.name, description=t.description or None, input_schema=t.parameters)
        for t in tools.tools
    ]

    async def list_tools(
        _ctx: Any, _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        outcome = await tools.call(params.name, json.dumps(params.arguments or {}))
        ok = outcome.error is None
        return types.CallToolResult(
            content=[types.TextContent(text=outcome.output if ok else str(outcome.error))],
            is_error=not ok,
        )

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


async def serve(names: list[str]) -> None:
    server = build_server(ToolSet(builtin_tool(n) for n in names))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tools", nargs="*", help=f"default: all ({', '.join(FUNCTIONS)})")
    names = parser.parse_args(argv).tools or list(FUNCTIONS)
    if unknown := [n for n in names if n not in FUNCTIONS]:
        parser.error(f"no local tool {unknown[0]!r} (tools: {', '.join(FUNCTIONS)})")
    anyio.run(serve, names)


if __name__ == "__main__":
    main()
