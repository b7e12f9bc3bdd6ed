"""Recorded outputs as a model: "bring your own outputs".

A team often has answers already (a leaderboard's published outputs, last quarter's
production logs). ``provider: recorded`` with ``model: <file>`` answers each prompt with the
recorded output whose prompt field equals it, so those answers are scored and judged beside
live models. Nothing is sent anywhere; cost and latency are unknown and reported as 0.

An answer may be tool calls: ``options.tool_calls_field`` names a field holding a list of
``{"name": ..., "arguments": "<JSON text>"}`` (an empty list or null: no call), replayed as
the completion's ``tool_calls``; its output field may then be empty or null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmbench.errors import ConfigError, DatasetError
from llmbench.pricing import CHARS_PER_TOKEN
from llmbench.providers.base import Provider
from llmbench.schema import SourceSpec
from llmbench.tasks.loader import load_rows, source_fingerprint
from llmbench.types import Completion, FinishReason, Request, ToolCall

if TYPE_CHECKING:
    from llmbench.schema import ModelSpec


class RecordedOptions(BaseModel):
    """Which fields of the outputs file hold the prompt and the answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_field: str = "instruction"
    output_field: str = "output"
    tokens_field: str | None = Field(
        default=None,
        description="the text the model generated, when output_field holds something else "
        "(e.g. a per-item correctness flag): its ~4-characters-per-token estimate is billed "
        "as the output tokens, and the prompt's as the input",
    )
    tool_calls_field: str | None = Field(
        default=None,
        description="a field holding the answer's tool calls: a list of {name, arguments}, "
        "arguments as JSON text (a string: a JSON Lines loader would merge objects' keys)",
    )


class NoRecordedOutput(LookupError):
    """The file has no answer for this prompt: an error row, not a crash."""


def _source(spec: ModelSpec) -> SourceSpec:
    try:
        return SourceSpec(path=spec.model)
    except ValueError as exc:
        raise ConfigError(
            str(exc).splitlines()[-1],
            field=f"models.{spec.name}.model",
            hint="give the path of a .jsonl, .json, .csv or .parquet file of recorded outputs",
        ) from None


def _load(spec: ModelSpec) -> dict[str, Recorded]:
    options = RecordedOptions.model_validate(spec.options)
    source = _source(spec)
    rows = load_rows(source)
    for field in (options.prompt_field, options.output_field):
        if field not in rows[0]:
            raise DatasetError(
                f"no field {field!r} in the recorded outputs (fields: {', '.join(rows[0])})",
                source=spec.model,
                field=f"models.{spec.name}.options",
                hint="set options.prompt_field / options.output_field to the file's field names",
            )
    for option in ("tokens_field", "tool_calls_field"):
        name = getattr(options, option)
        if name is not None and name not in rows[0]:
            raise DatasetError(
                f"no field {name!r} in the recorded outputs (fields: {', '.join(rows[0])})",
                source=spec.model,
                field=f"models.{spec.name}.options.{option}",
            )
    answers: dict[str, Recorded] = {}
    for number, row in enumerate(rows, 1):  # the first answer wins when a prompt repeats
        output = row[options.output_field]
        calls = _tool_calls(row, options.tool_calls_field, spec, number)
        if _missing(output) and not calls:
            continue  # no recorded answer: that prompt becomes an error row, not "None"
        prompt = str(row[options.prompt_field]).strip()
        generated = row[options.tokens_field] if options.tokens_field else None
        answers.setdefault(
            prompt,
            Recorded(
                "" if _missing(output) else str(output),
                None if _missing(generated) else str(generated),
                calls,
            ),
        )
    return answers


def _tool_calls(
    row: dict[str, Any], field: str | None, spec: ModelSpec, number: int
) -> tuple[ToolCall, ...]:
    value = row.get(field) if field is not None else None
    try:
        return tuple(
            ToolCall(id=f"call_{i}", name=c["name"], arguments=c.get("arguments") or "{}")
            for i, c in enumerate(value or [])
        )
    except (KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise DatasetError(
            f"row {number}: not a list of {{name, arguments}} ({type(exc).__name__})",
            source=spec.model,
            field=f"models.{spec.name}.options.tool_calls_field",
            hint='write each call as {"name": ..., "arguments": "<JSON text>"}',
        ) from None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Recorded:
    output: str
    generated: str | None  # the text behind the output, for token estimates
    tool_calls: tuple[ToolCall, ...] = ()


def _estimated_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class RecordedProvider(Provider):
    name: ClassVar[str] = "recorded"
    options_model: ClassVar[type[BaseModel]] = RecordedOptions
    remote: ClassVar[bool] = False
    # The recorded answer, tool calls included, is what was answered with the tools offered.
    honours_tools: ClassVar[bool] = True

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._answers = _load(spec)
        self._fingerprint = source_fingerprint(_source(spec))

    @classmethod
    def preflight(cls, spec: ModelSpec) -> None:
        _load(spec)

    @classmethod
    def fingerprint(cls, spec: ModelSpec) -> str:
        """Changes when the file's bytes change, so cached steps see new recordings."""
        return source_fingerprint(_source(spec))

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "data": self._fingerprint}

    def connection_key(self) -> str:
        return f"recorded:{Path(self.spec.model).name}"

    async def generate(self, request: Request) -> Completion:
        messages = request.messages
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "").strip()
        answer = self._answers.get(prompt)
        if answer is None:
            raise NoRecordedOutput(
                f"no recorded output for this prompt in {Path(self.spec.model).name} "
                "(the task's template must render exactly the file's prompt field)"
            )
        finish: FinishReason = "tool_calls" if answer.tool_calls else "stop"
        if answer.generated is None:
            return Completion(
                text=answer.output,
                model_version="recorded",
                tool_calls=answer.tool_calls,
                finish_reason=finish,
            )
        return Completion(
            text=answer.output,
            tool_calls=answer.tool_calls,
            finish_reason=finish,
            input_tokens=sum(_estimated_tokens(m.content) for m in messages),
            output_tokens=_estimated_tokens(answer.generated),
            model_version="recorded",
        )
