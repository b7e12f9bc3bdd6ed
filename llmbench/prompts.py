"""Every prompt template goes through here: one sandboxed Jinja2 environment
(StrictUndefined), prompt files by name from ``configs/prompts/`` or by a path the config
gives, rendering, and errors that name the file (the caller adds the config field).

Task templates are inline strings, judge templates files; a strategy's prompt option takes
either (``{file: <path>}`` or a template string) and holds the template's *text* once
validated, so a strategy's identity changes with the wording, never with where it is kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from llmbench.errors import ConfigError
from llmbench.schema import PROJECT_ROOT

PROMPTS_DIR = PROJECT_ROOT / "configs" / "prompts"
ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
# What rendering a template over a context may raise (a missing variable, a bad index ...).
RENDER_ERRORS = (TemplateError, TypeError, KeyError, IndexError, ValueError)
WHERE = "a relative path is looked up beside the config file, then in configs/prompts/"


class PromptError(ValueError):
    """A template that cannot be used. A ValueError, so an option validator reports it at
    the option's field; :meth:`config_error` names the field elsewhere."""

    def __init__(self, message: str, source: str | None = None) -> None:
        self.message, self.source = message, source
        super().__init__(f"{source}: {message}" if source else message)

    def config_error(self, field: str, hint: str | None = None) -> ConfigError:
        return ConfigError(self.message, source=self.source, field=field, hint=hint)


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> tuple[jinja2.Template, frozenset[str]]:
    """The compiled template and the variables it reads (compiled once per text)."""
    return ENV.from_string(text), frozenset(meta.find_undeclared_variables(ENV.parse(text)))


def compile_template(
    text: str, variables: Collection[str] | None = None, source: str | None = None
) -> jinja2.Template:
    """``text`` compiled; with ``variables`` (what it will be rendered with), a template
    reading any other name is refused here rather than on its first render."""
    try:
        template, reads = _parsed(text)
    except TemplateSyntaxError as exc:
        raise PromptError(
            f"Jinja2 syntax error on line {exc.lineno}: {exc.message}", source
        ) from None
    unknown = reads - set(variables) - set(ENV.globals) if variables is not None else None
    if unknown:
        raise PromptError(
            f"the template uses {', '.join(sorted(unknown))}, which it is not given "
            f"(it sees: {', '.join(variables or ())})",
            source,
        )
    return template


def compile_expression(text: str, source: str | None = None) -> Callable[..., Any]:
    """A Jinja2 expression (a task's ``target``, ``choices``, ``sample_id``)."""
    try:
        return ENV.compile_expression(text, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise PromptError(f"not a valid Jinja2 expression: {exc.message}", source) from None


def path_of(name: str | Path) -> Path:
    """A prompt file: an absolute path as given, a relative one under configs/prompts/."""
    path = Path(name)
    return path if path.is_absolute() else PROMPTS_DIR / path


def resolve(name: str, base_dir: Path) -> str:
    """A prompt file named in a config at ``base_dir``: beside it when it is there (made
    absolute), else left to be found under configs/prompts/."""
    beside = (base_dir / name).resolve()
    return str(beside) if beside.is_file() else name


def read(name: str | Path, variables: Collection[str] | None = None) -> str:
    """A prompt file's text, checked to compile (and to read only ``variables``)."""
    path = path_of(name)
    if not path.is_file():
        raise PromptError(f"prompt file not found ({WHERE})", str(path))
    text = path.read_text(encoding="utf-8")
    compile_template(text, variables, str(path))
    return text


def render(text: str, context: Mapping[str, Any], source: str | None = None) -> str:
    """``text`` rendered over ``context`` (untrimmed: a caller strips where it always has)."""
    template = compile_template(text, source=source)
    try:
        return str(template.render(**context))
    except RENDER_ERRORS as exc:
        raise PromptError(str(exc), source) from None


@dataclass(frozen=True)
class PromptText:
    """Marks a strategy option as a prompt: it takes a template string or ``{file: <path>}``
    and holds the template's text, checked to compile and to read only ``variables``."""

    variables: tuple[str, ...]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.text_of, handler(source))

    def text_of(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            if set(value) != {"file"} or not isinstance(value["file"], str):
                raise ValueError("a prompt is a template string or {file: <path to a .j2 file>}")
            # As Jinja2 reads it (a file's final newline is not part of the template), so
            # the same prompt inline or in a file is one identity.
            return read(value["file"], self.variables).removesuffix("\n")
        if isinstance(value, str):
            compile_template(value, self.variables)
        return value


def prompt_field(file: str, purpose: str, variables: Collection[str]) -> Any:
    """A prompt option defaulting to a file under configs/prompts/ (validated like a given
    value, so the default's text is what the strategy's identity holds)."""
    return Field(
        default={"file": file},
        validate_default=True,
        description=f"{purpose}: a Jinja2 template string, or {{file: <path>}} "
        f"(default configs/prompts/{file}; {WHERE}); it sees {', '.join(variables)}",
    )


def prompt_texts(options: BaseModel, prefix: str = "") -> dict[str, str]:
    """Every prompt option's text in ``options`` (nested ones too), by its option path."""
    out: dict[str, str] = {}
    for name, info in type(options).model_fields.items():
        value = getattr(options, name)
        if any(isinstance(m, PromptText) for m in info.metadata):
            out[prefix + name] = value
        elif isinstance(value, BaseModel):
            out.update(prompt_texts(value, f"{prefix}{name}."))
        elif isinstance(value, (list, tuple)):
            for n, item in enumerate(value):
                if isinstance(item, BaseModel):
                    out.update(prompt_texts(item, f"{prefix}{name}.{n}."))
    return out
