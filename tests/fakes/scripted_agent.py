"""A model that follows a script, for driving the agent loop without a vendor format: per
question (the conversation's first user turn), the tool calls of each step and then a
final answer made from the tool results it was sent. Not a cloud SDK's stand-in: it is
a ``Provider`` like the recorded one, answering through the model client.

``model`` in the spec names the script (``SCRIPTS``), as a recorded model names its file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from llmbench.providers.base import Provider
from llmbench.schema import ModelSpec, PriceEntry
from llmbench.types import Completion, Request, ToolCall

Calls = list[tuple[str, Any]]  # (tool name, arguments: a dict, or raw text sent as written)
Final = Callable[[list[str]], str]  # the tool results sent so far -> the answer


@dataclass(frozen=True)
class Script:
    steps: list[Calls]
    final: Final = lambda results: "done"


SCRIPTS: dict[str, dict[str, Script]] = {}
PRICE = PriceEntry(input_per_1m=1.0, output_per_1m=2.0, source="test", date="2026-01-01")


def field_of(key: str, index: int = -1) -> Final:
    """The answer: ``key`` of a JSON tool result (the last by default)."""
    return lambda results: f"The answer is\n{json.loads(results[index])[key]}"


def spec(script: str, name: str = "scripted") -> ModelSpec:
    return ModelSpec(name=name, provider="scripted", model=script, price=PRICE)


class ScriptedProvider(Provider):
    name: ClassVar[str] = "scripted"
    remote: ClassVar[bool] = False
    honours_tools: ClassVar[bool] = True
    sent: ClassVar[list[Request]] = []

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.scripts = SCRIPTS[spec.model]

    async def generate(self, request: Request) -> Completion:
        type(self).sent.append(request)
        messages = request.messages
        question = next(m.content for m in messages if m.role == "user")
        script = self.scripts.get(question)
        if script is None:
            raise LookupError(f"no script for {question!r}")
        step = sum(m.role == "assistant" for m in messages)
        tokens = math.ceil(sum(len(m.content) for m in messages) / 4)
        if step < len(script.steps):
            calls = tuple(
                ToolCall(
                    id=f"call_{step}_{n}",
                    name=name,
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
                )
                for n, (name, arguments) in enumerate(script.steps[step])
            )
            return Completion(
                tool_calls=calls, finish_reason="tool_calls", input_tokens=tokens, output_tokens=9
            )
        results = [m.content for m in messages if m.role == "tool"]
        return Completion(text=script.final(results), input_tokens=tokens, output_tokens=5)
