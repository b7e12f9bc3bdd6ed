"""Spend limit shared by every generation step of a run (they run as threads of one process).

Before a request is sent, its worst case (estimated prompt tokens and max_tokens of output)
is reserved; the run refuses to send a request whose reservation would cross the limit. For
compute-time pricing the worst case is not known up front, so only what was spent counts.
"""

from __future__ import annotations

import threading

# Re-exported: the worst case is priced in one place (llmbench.pricing).
from llmbench.pricing import CHARS_PER_TOKEN, estimated_prompt_tokens, worst_case_cost

__all__ = ["CHARS_PER_TOKEN", "Budget", "budget_for", "estimated_prompt_tokens", "worst_case_cost"]


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
