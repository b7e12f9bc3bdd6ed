"""Tools an entrant may call while it answers: llmbench's local tools (fixture-backed
weather and stock quotes, a calculator, unit conversion), a user's Python functions and
the tools of MCP servers, in one tool set (:mod:`llmbench.tools.toolset`), driven by the
agent loop (:mod:`llmbench.tools.agent`). Nothing heavy is imported here: the config
schema imports :mod:`llmbench.tools.spec`."""
