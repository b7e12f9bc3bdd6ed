"""Spend limit shared by every generation step of a run (they run as threads of one process).

Before a request is sent, its worst case (estimated prompt tokens and max_tokens of output)
is reserved; the run refuses to send a request whose reservation would cross the limit. For
compute-time pricing the worst case is not known up front, so only what was spent counts.
"""

from __future__ import annotations

import math
import threading

from llmbench.config import PriceEntry
from llmbench.types import GenerationParams, Message

CHARS_PER_TOKEN = 4.0


def estimated_prompt_tokens(messages: list[Message]) -> int:
    """~4 characters per token plus a few per message for the chat format."""
    return sum(math.ceil(len(m.content) / CHARS_PER_TOKEN) + 4 for m in messages)


def worst_case_cost(messages: list[Message], params: GenerationParams, price: PriceEntry) -> float:
    if price.per_hour is not None:
        return 0.0
    return price.cost(estimated_prompt_tokens(messages), params.max_tokens, 0.0)


class Budget:
    def __init__(self, limit_usd: float) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.refused = 0
        self._lock = threading.Lock()

    def reserve(self, amount: float) -> bool:
        with self._lock:
            if self.spent_usd + self.reserved_usd + amount > self.limit_usd:
                self.refused += 1
                return False
            self.reserved_usd += amount
            return True

    def settle(self, reserved: float, actual: float) -> None:
        with self._lock:
            self.reserved_usd -= reserved
            self.spent_usd += actual


_BUDGETS: dict[str, Budget] = {}
_BUDGETS_LOCK = threading.Lock()


def budget_for(run: str, limit_usd: float) -> Budget:
    """The one budget of a run, shared by its steps."""
    with _BUDGETS_LOCK:
        if run not in _BUDGETS:
            _BUDGETS[run] = Budget(limit_usd)
        return _BUDGETS[run]
