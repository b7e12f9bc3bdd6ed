"""Strategy kinds as written in YAML, mapped lazily to their classes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmbench.suggest import lookup

if TYPE_CHECKING:
    from llmbench.strategies.base import Strategy

STRATEGIES: dict[str, str] = {
    "router": "llmbench.strategies.router:Router",
    "cascade": "llmbench.strategies.cascade:Cascade",
    "vote": "llmbench.strategies.vote:Vote",
    "evaluator_optimizer": "llmbench.strategies.evaluator_optimizer:EvaluatorOptimizer",
    "mixture_of_agents": "llmbench.strategies.moa:MixtureOfAgents",
    "supervisor": "llmbench.strategies.supervisor:Supervisor",
    "chain": "llmbench.strategies.chain:Chain",
    "universal_self_consistency": "llmbench.strategies.usc:UniversalSelfConsistency",
}


def strategy_class(kind: str) -> type[Strategy]:
    cls: type[Strategy] = lookup(STRATEGIES, kind, "strategy kind")
    return cls
