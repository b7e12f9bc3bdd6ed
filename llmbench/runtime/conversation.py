"""A sample asked as a conversation, turn by turn (FastChat's MT-Bench): each later user
turn is asked after the entrant's own answer to the turn before, so turn 2's ask holds
turn 1's question and that answer verbatim.

The per-sample driver (:class:`llmbench.runtime.driver.Driver`) runs the turns for any
entrant, a model or a strategy alike, with these two helpers: each turn is an
:class:`~llmbench.types.Ask` over the conversation so far, answered as a single ask is
(a model: one call through its client, or its agent loop; a strategy: its members' calls),
so the response cache keys each call by the whole conversation so far (an unchanged rerun
sends nothing) and the budget, limits and retries apply per call.
"""

from __future__ import annotations

from llmbench.strategies.base import combine
from llmbench.types import Ask, Completion, Message


def next_ask(ask: Ask, answer: Completion, question: str) -> Ask:
    """``ask`` continued: the entrant's answer to it, verbatim, then the next user turn."""
    messages = (
        *ask.messages,
        Message(role="assistant", content=answer.text),
        Message(role="user", content=question),
    )
    return ask.model_copy(update={"messages": messages})


def conversation_answer(turns: list[Completion]) -> Completion:
    """The conversation's row: the last turn's answer with every turn's answer
    (``turn_answers``), each turn's calls in the trace with ``turn`` = its turn index (their
    rounds their own), and tokens, cost and latency summed (turns run one after another).
    A failed turn ends the conversation: the row carries its error and the answers given
    before it."""
    stamped = [
        done.model_copy(update={"trace": [c.model_copy(update={"turn": n}) for c in done.trace]})
        for n, done in enumerate(turns)
    ]
    answered = combine(stamped[-1], [[turn] for turn in stamped], renumber=False)
    failed = next(((n, t) for n, t in enumerate(turns) if t.error is not None), None)
    return answered.model_copy(
        update={
            "turn_answers": tuple(t.text for t in turns if t.error is None),
            "error": None if failed is None else f"turn {failed[0] + 1}: {failed[1].error}",
        }
    )
