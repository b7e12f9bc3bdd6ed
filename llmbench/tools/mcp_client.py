"""Tools of an MCP server started over stdio for the run (the official ``mcp`` SDK's
client): listed once, called by name.

The SDK's connection is a pair of anyio context managers that must be entered and left by
one task, while an agent's calls come from every sample's task; so one task of its own
holds the connection open (:meth:`McpServer._hold`) until :meth:`McpServer.aclose`, and
the samples' tasks share its session. A server that dies mid-run fails the calls sent to
it from then on: each is an error outcome (recorded, shown to the model), never a crash.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from typing import Any

from pydantic import ValidationError

from llmbench.tools.base import BoundTool, Runner, ToolFailure
from llmbench.tools.spec import McpServerSpec
from llmbench.types import Tool


class McpStartError(RuntimeError):
    """The server could not be started or did not list its tools."""


class McpServer:
    """One MCP server over stdio and the session to it."""

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self._client: Any = None
        self._stop = asyncio.Event()
        self._holder: asyncio.Task[None] | None = None
        self._gone: str | None = None

    async def start(self) -> list[BoundTool]:
        """Start the server, list its tools; McpStartError when it cannot."""
        listed: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._holder = asyncio.create_task(self._hold(listed))
        try:
            tools = await asyncio.wait_for(asyncio.shield(listed), self.spec.timeout_s)
        except TimeoutError:
            await self.aclose()
            raise McpStartError(f"listed no tools within {self.spec.timeout_s:g} s") from None
        except Exception as exc:
            await self.aclose()
            raise McpStartError(
                str(exc) if isinstance(exc, McpStartError) else f"did not start: {_reason(exc)}"
            ) from None
        wanted = self.spec.tools
        if wanted is not None and (missing := sorted(set(wanted) - {t.name for t in tools})):
            await self.aclose()
            offered = ", ".join(t.name for t in tools)
            raise McpStartError(f"offers no tool {missing[0]!r} (it offers: {offered})")
        try:
            return [self._bound(t) for t in tools if wanted is None or t.name in wanted]
        except ValidationError as exc:
            await self.aclose()
            first = exc.errors()[0]
            raise McpStartError(
                f"lists a tool llmbench cannot offer a model ({first['input']!r}: {first['msg']})"
            ) from None

    async def _hold(self, listed: asyncio.Future[list[Any]]) -> None:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        spec = self.spec
        params = StdioServerParameters(
            command=server_command(spec.command), args=list(spec.args), env=server_env(spec)
        )
        # The server's own log is kept apart from the run's console, and quoted when it
        # fails to start.
        with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
            try:
                transport = stdio_client(params, errlog=log)
                async with Client(transport, read_timeout_seconds=spec.timeout_s) as client:
                    result = await client.list_tools()
                    self._client = client
                    listed.set_result(list(result.tools))
                    await self._stop.wait()
            except Exception as exc:
                self._gone = _reason(exc) + _tail(log)
                if not listed.done():
                    listed.set_exception(McpStartError(f"did not start: {self._gone}"))
            finally:
                self._client = None

    def _bound(self, listed: Any) -> BoundTool:
        tool = Tool(
            name=listed.name,
            description=listed.description or "",
            parameters=dict(listed.input_schema),
        )
        return BoundTool(tool, f"mcp:{self.spec.name}", self._runner(listed.name))

    def _runner(self, name: str) -> Runner:
        async def run(arguments: dict[str, Any]) -> str:
            client = self._client
            if client is None:
                raise ToolFailure(f"MCP server {self.spec.name!r} is gone: {self._gone}")
            try:
                result = await client.call_tool(name, arguments)
            except Exception as exc:
                raise ToolFailure(
                    f"MCP server {self.spec.name!r} did not answer: {_reason(exc)}"
                ) from None
            text = "\n".join(getattr(block, "text", "") for block in result.content)
            if result.is_error:
                raise ToolFailure(text or "the server reported an error")
            return text

        return run

    async def aclose(self) -> None:
        self._stop.set()
        if self._holder is not None:
            await asyncio.gather(self._holder, return_exceptions=True)
            self._holder = None


def server_command(command: str) -> str:
    """``python`` is the interpreter running llmbench (its virtualenv's), as a user means it."""
    return sys.executable if command in ("python", "python3") else command


def server_env(spec: McpServerSpec) -> dict[str, str] | None:
    """What the server's environment adds to the SDK's short safe default (HOME, PATH ...):
    the spec's ``env``, and for llmbench's own interpreter the run's PYTHONPATH, so
    ``python -m`` finds the same modules the run does."""
    env = dict(spec.env)
    if server_command(spec.command) == sys.executable and "PYTHONPATH" in os.environ:
        env.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
    return env or None


def _reason(exc: BaseException) -> str:
    """One line about a failure (an exception group: its first leaf)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _tail(log: Any, limit: int = 400) -> str:
    """The last lines the server wrote to stderr, for an error message."""
    log.flush()
    log.seek(0)
    text = log.read().strip()
    return f" (server stderr: ...{text[-limit:]})" if text else ""
