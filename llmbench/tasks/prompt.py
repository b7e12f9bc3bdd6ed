"""Render a task's rows into samples with Jinja2 (the sandbox of :mod:`llmbench.prompts`).

``target``, ``choices``, ``sample_id`` and ``turns`` are expressions evaluated against a row;
``template`` and ``system`` are templates that also see ``choices`` and ``letters``.
A missing variable is an error naming the task, the row and the columns the data has; a
conversation without a user turn is a :class:`ConfigError` naming the data file and field.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Undefined, UndefinedError

from llmbench import prompts
from llmbench.errors import ConfigError, DatasetError
from llmbench.schema import SampleSpec
from llmbench.types import Retrieval, Sample


def _as_strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return (str(value),)


class TaskRenderer:
    """Compiled templates of one task; turns raw rows into :class:`Sample` objects."""

    def __init__(
        self, task: SampleSpec, reference_rows: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """``reference_rows``: the rows of the task's ``references_from`` file."""
        self.task = task
        self.template = self._compile("template", task.template) if task.template else None
        self.turns = self._expression("turns", task.turns) if task.turns else None
        assert self.template or self.turns, "the schema requires a template or turns"
        self.system = self._compile("system", task.system) if task.system else None
        self.target = self._expression("target", task.target) if task.target else None
        self.choices = self._expression("choices", task.choices) if task.choices else None
        self.sample_id = self._expression("sample_id", task.sample_id) if task.sample_id else None
        retrieval = task.retrieval
        self.query = self._expression("retrieval.query", retrieval.query) if retrieval else None
        self.gold = (
            self._expression("retrieval.gold", retrieval.gold)
            if retrieval is not None and retrieval.gold is not None
            else None
        )
        self.referenced = self._reference_table(reference_rows or [])

    def _compile(self, field: str, text: str) -> str:
        try:
            prompts.compile_template(text, source=f"task {self.task.name}")
        except prompts.PromptError as exc:
            raise exc.config_error(field) from None
        return text

    def _expression(self, field: str, text: str) -> Any:
        try:
            return prompts.compile_expression(text, source=f"task {self.task.name}")
        except prompts.PromptError as exc:
            raise exc.config_error(
                field,
                hint="fields hold expressions like: answer, 'ABCD'[label], [choice0, choice1]",
            ) from None

    def _fail(self, field: str, row: Mapping[str, Any], index: int, exc: Exception) -> DatasetError:
        columns = row.get("row", row) if isinstance(row.get("row"), Mapping) else row
        return DatasetError(
            f"row {index}: {exc} (the data has columns: {', '.join(sorted(columns))})",
            source=f"task {self.task.name} ({self.task.source.describe()})",
            field=field,
            hint="use one of the data's columns in the task's templates, or fix the data",
        )

    def _evaluate(self, field: str, expression: Any, row: Mapping[str, Any], index: int) -> Any:
        try:
            value = expression(**{**row, "row": row})
        except (UndefinedError, TypeError, KeyError, IndexError, ValueError) as exc:
            raise self._fail(field, row, index, exc) from None
        if isinstance(value, Undefined):
            raise self._fail(
                field, row, index, ValueError(f"{value._undefined_name!r} is undefined")
            )
        if value is None:
            raise self._fail(field, row, index, ValueError("expression gave no value (None)"))
        return value

    def context(self, row: Mapping[str, Any], index: int) -> dict[str, Any]:
        choices: tuple[str, ...] = ()
        if self.choices is not None:
            choices = _as_strings(self._evaluate("choices", self.choices, row, index))
        return {
            **row,
            "row": row,
            "choices": list(choices),
            "letters": string.ascii_uppercase[: len(choices)],
        }

    def render(self, template: str, field: str, context: Mapping[str, Any], index: int) -> str:
        try:
            return prompts.render(template, context).strip()
        except prompts.PromptError as exc:  # a missing variable is the data's: a DatasetError
            raise self._fail(field, context, index, exc) from None

    def _reference_table(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
        """Key -> reference answers, from the ``references_from`` file's rows."""
        given = self.task.references_from
        if given is None:
            return {}
        field = "references_from.target"
        expression = self._expression(field, given.target)
        table = {}
        for index, row in enumerate(rows):
            if given.key not in row:
                raise self._fail("references_from.key", row, index, KeyError(given.key))
            value = self._evaluate(field, expression, row, index)
            table[str(row[given.key])] = tuple(s.strip() for s in _as_strings(value))
        return table

    def references(self, row: Mapping[str, Any], index: int) -> tuple[str, ...]:
        given = self.task.references_from
        if given is not None:  # matched by key; a row without a match has none
            if given.key not in row:
                raise self._fail("references_from.key", row, index, KeyError(given.key))
            return self.referenced.get(str(row[given.key]), ())
        if self.target is None:  # judged tasks without a reference answer
            return ()
        return tuple(
            s.strip() for s in _as_strings(self._evaluate("target", self.target, row, index))
        )

    def sample_id_of(self, row: Mapping[str, Any], index: int) -> str:
        """The row's sample id (its index when the task names none)."""
        if self.sample_id is None:
            return str(index)
        return str(self._evaluate("sample_id", self.sample_id, row, index))

    def query_of(self, row: Mapping[str, Any], index: int) -> str:
        """What a retrieval-augmented task searches for this row."""
        assert self.query is not None, "only a task with 'retrieval' has a query"
        return str(self._evaluate("retrieval.query", self.query, row, index)).strip()

    def gold_of(self, row: Mapping[str, Any], index: int) -> tuple[str, ...]:
        """The ids of the row's gold passages (none when the task names none)."""
        if self.gold is None:
            return ()
        return _as_strings(self._evaluate("retrieval.gold", self.gold, row, index))

    def user_turns(self, row: Mapping[str, Any], index: int) -> tuple[str, ...]:
        """A conversation row's user turns: a non-empty list of non-blank texts."""
        assert self.turns is not None
        value = self._evaluate("turns", self.turns, row, index)
        texts = isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value)
        problem = (
            None
            if texts and value and all(t.strip() for t in value)
            else "has no user turn"
            if texts
            else f"is not a list of texts (got {type(value).__name__})"
        )
        if problem is not None:
            raise ConfigError(
                f"row {index}: the conversation {problem}",
                source=f"task {self.task.name} ({self.task.source.describe()})",
                field="turns",
                hint="point 'turns' at a column holding a non-empty list of user messages "
                "(MT-Bench's: turns), or fix the row",
            )
        return tuple(t.strip() for t in value)

    def fewshot_block(self, rows: Sequence[Mapping[str, Any]]) -> str:
        spec = self.task.fewshot
        if spec is None or not rows:
            return ""
        assert self.template is not None, "the schema refuses fewshot with turns"
        shots = []
        for index, row in enumerate(rows[: spec.n]):
            question = self.render(
                self.template, "template (few-shot)", self.context(row, index), index
            )
            shots.append(question + spec.target_delimiter + self.references(row, index)[0])
        return spec.separator.join(shots) + spec.separator

    def sample(
        self,
        row: Mapping[str, Any],
        index: int,
        fewshot: str = "",
        retrieval: Retrieval | None = None,
    ) -> Sample:
        context = self.context(row, index)
        if retrieval is not None:  # what the templates show of the retrieved passages
            context["passages"] = [p.model_dump() for p in retrieval.passages]
        sample_id = self.sample_id_of(row, index)
        follow_ups: list[str] = []
        if self.template is not None:
            prompt = self.render(self.template, "template", context, index)
        else:
            prompt, *follow_ups = self.user_turns(row, index)
        return Sample(
            sample_id=sample_id,
            prompt=fewshot + prompt,
            follow_ups=tuple(follow_ups),
            system=self.render(self.system, "system", context, index) if self.system else None,
            references=self.references(row, index),
            choices=tuple(context["choices"]),
            retrieval=retrieval,
        )
