"""Python functions as tools: llmbench's own local tools and a user's, named in the YAML
as ``module:function``.

A function's parameters' JSON schema is given, or derived from its type hints by pydantic
(``Annotated[str, Field(description=...)]`` documents a parameter), so a tool is written
once, as a typed function. Synchronous user functions run in a worker thread: a slow one
must not stall the other samples' requests on the step's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import create_model

from llmbench.tools.base import BoundTool, Runner, output_text
from llmbench.tools.spec import PythonToolSpec
from llmbench.types import Tool


def derived_parameters(function: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of ``function``'s keyword arguments, from its type hints."""
    hints = typing.get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (hints.get(name, Any), default)
    model = create_model(f"{function.__name__}_arguments", **fields)
    schema: dict[str, Any] = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def _description(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _runner(function: Callable[..., Any], *, in_thread: bool) -> Runner:
    if inspect.iscoroutinefunction(function):

        async def run_async(arguments: dict[str, Any]) -> str:
            return output_text(await function(**arguments))

        return run_async

    async def run(arguments: dict[str, Any]) -> str:
        if in_thread:
            return output_text(await asyncio.to_thread(function, **arguments))
        return output_text(function(**arguments))

    return run


def function_tool(
    function: Callable[..., Any],
    *,
    source: str,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    in_thread: bool = True,
) -> BoundTool:
    """``function`` as a tool; what is not given comes from its name, docstring and hints."""
    tool = Tool(
        name=name or function.__name__,
        description=description if description is not None else _description(function),
        parameters=parameters if parameters is not None else derived_parameters(function),
    )
    return BoundTool(tool, source, _runner(function, in_thread=in_thread))


def _module(name: str) -> ModuleType:
    """An importable module, or a ``.py`` file loaded once under a name of its own."""
    if not name.endswith(".py"):
        return importlib.import_module(name)
    path = Path(name).resolve()
    if not path.is_file():
        raise ImportError(f"no file {path}")
    key = f"llmbench_user_tools.{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module


def module_file(reference: str) -> Path | None:
    """The source file of the module a ``module:name`` reference names (None: none)."""
    name = reference.rpartition(":")[0]
    source = inspect.getsourcefile(_module(name))
    return Path(source) if source else None


def import_function(reference: str) -> Callable[..., Any]:
    """The function ``module:name`` or ``file.py:name`` names; ImportError or
    AttributeError say what is wrong."""
    module_name, _, attribute = reference.rpartition(":")
    module = _module(module_name)
    function = getattr(module, attribute)
    if not callable(function):
        raise AttributeError(f"{reference} is a {type(function).__name__}, not a function")
    return typing.cast(Callable[..., Any], function)


def user_tool(spec: PythonToolSpec) -> BoundTool:
    """A user's function named in the YAML, as a tool."""
    return function_tool(
        import_function(spec.function),
        source=f"python:{spec.function}",
        name=spec.name,
        description=spec.description,
        parameters=spec.parameters,
    )
