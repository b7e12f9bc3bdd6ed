"""An MCP server (llmbench's own, over stdio) whose ``crash`` tool kills the server: an
MCP server that dies mid-run. ``python -m tests.fakes.dying_mcp_server``"""

from __future__ import annotations

import os

import anyio
from mcp.server.stdio import stdio_server

from llmbench.tools.base import ToolSet
from llmbench.tools.local import builtin_tool
from llmbench.tools.mcp_server import build_server
from llmbench.tools.python import function_tool


def crash() -> str:
    """Ends the server's process at once."""
    os._exit(3)


async def serve() -> None:
    tools = ToolSet([builtin_tool("get_weather"), function_tool(crash, source="test")])
    server = build_server(tools, "dying")
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(serve)
