"""Recorded outputs as a model: "bring your own outputs".

A team often has answers already (a leaderboard's published outputs, last quarter's
production logs). ``provider: recorded`` with ``model: <file>`` answers each prompt with the
recorded output whose prompt field equals it, so those answers are scored and judged beside
live models. Nothing is sent anywhere; cost and latency are unknown and reported as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from llmbench.errors import ConfigError, DatasetError
from llmbench.pricing import CHARS_PER_TOKEN
from llmbench.providers.base import Provider
from llmbench.schema import SourceSpec
from llmbench.tasks.loader import load_rows, source_fingerprint
from llmbench.types import Completion, Request

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
    if options.tokens_field is not None and options.tokens_field not in rows[0]:
        raise DatasetError(
            f"no field {options.tokens_field!r} in the recorded outputs "
            f"(fields: {', '.join(rows[0])})",
            source=spec.model,
            field=f"models.{spec.name}.options.tokens_field",
        )
    answers: dict[str, Recorded] = {}
    for row in rows:  # the first answer wins when a prompt repeats
        output = row[options.output_field]
        if _missing(output):
            continue  # no recorded answer: that prompt becomes an error row, not "None"
        prompt = str(row[options.prompt_field]).strip()
        generated = row[options.tokens_field] if options.tokens_field else None
        answers.setdefault(
            prompt, Recorded(str(output), None if _missing(generated) else str(generated))
        )
    return answers


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Recorded:
    output: str
    generated: str | None  # the text behind the output, for token estimates


def _estimated_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class RecordedProvider(Provider):
    name: ClassVar[str] = "recorded"
    options_model: ClassVar[type[BaseModel]] = RecordedOptions
    remote: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._answers = _load(spec)
        self._fingerprint = source_fingerprint(_source(spec))

    @classmethod
    def preflight(cls, spec: ModelSpec) -> None:
        _load(spec)

    @staticmethod
    def fingerprint(spec: ModelSpec) -> str:
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
        if answer.generated is None:
            return Completion(text=answer.output, model_version="recorded")
        return Completion(
            text=answer.output,
            input_tokens=sum(_estimated_tokens(m.content) for m in messages),
            output_tokens=_estimated_tokens(answer.generated),
            model_version="recorded",
        )
