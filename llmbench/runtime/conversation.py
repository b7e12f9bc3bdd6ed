"""A sample asked as a conversation, turn by turn (FastChat's MT-Bench): each later user
turn is asked after the entrant's own answer to the turn before, so turn 2's request holds
turn 1's question and that answer verbatim.

:func:`answer_conversation` is the one entry point for whatever answers a sample through a
model client (a plain model; a strategy's member; an agent loop): a sample without
follow-ups is the one request it always was. Every turn is one call through the client, so
the response cache keys it by the whole conversation so far (an unchanged rerun sends
nothing) and the budget, limits and retries apply per turn.
"""

from __future__ import annotations

from llmbench.runtime.client import ModelClient
from llmbench.strategies.base import combine
from llmbench.types import Completion, GenerationParams, Message, Request, Sample


def next_request(request: Request, answer: Completion, question: str) -> Request:
    """``request`` continued: the entrant's answer to it, then the next user turn."""
    messages = (
        *request.messages,
        Message(role="assistant", content=answer.text),
        Message(role="user", content=question),
    )
    return request.model_copy(update={"messages": messages})


def conversation_answer(turns: list[Completion]) -> Completion:
    """The conversation's row: the last turn's answer with every turn's answer
    (``turn_answers``), each turn's call in the trace with ``round`` = its turn index, and
    tokens, cost and latency summed (turns run one after another). A failed turn ends the
    conversation: the row carries its error and the answers given before it."""
    last = turns[-1]
    answered = combine(last, [[turn] for turn in turns])
    failed = next(((n, t) for n, t in enumerate(turns) if t.error is not None), None)
    return answered.model_copy(
        update={
            "turn_answers": tuple(t.text for t in turns if t.error is None),
            "error": None if failed is None else f"turn {failed[0] + 1}: {failed[1].error}",
        }
    )


async def answer_conversation(
    client: ModelClient,
    sample: Sample,
    params: GenerationParams,
    *,
    index: int,
    draw: int = 0,
    role: str | None = None,
) -> Completion:
    """``sample`` answered by ``client``: its first request, then each follow-up after the
    answer before it. A single-turn sample's completion is the client's own, unchanged."""
    request = sample.request(params, draw=draw)
    purpose = "turn 1" if sample.follow_ups else "answer"
    turns = [await client.generate(request, index=index, role=role, purpose=purpose)]
    if not sample.follow_ups:
        return turns[0]
    for number, question in enumerate(sample.follow_ups, start=2):
        if turns[-1].error is not None:
            break
        request = next_request(request, turns[-1], question)
        turns.append(
            await client.generate(
                request, index=index, role=role, purpose=f"turn {number}", record_input=True
            )
        )
    return conversation_answer(turns)
