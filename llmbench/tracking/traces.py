"""Every answer of a run as an MLflow trace: a root span for the answer (a model's or a
strategy's), a RETRIEVER span for a retrieval-augmented task's retrieval (the query in,
the passages out as MLflow ``Document`` dicts) and an LLM span per model call, each with
``mlflow.chat.tokenUsage`` and ``mlflow.llm.cost`` from the run's price snapshot, so MLflow
never looks a price up.

Every score is an assessment on its answer's trace (:mod:`llmbench.tracking.assessments`).
Written by the single tracking step, in batches (:mod:`llmbench.tracking.trace_writer`):
thousands of trace infos, assessments attached, per transaction, then the spans of many
traces per ``log_spans`` call.
Spans nest as the answer did: the root span is the answer, a call of its strategy a child
of it, a nested strategy member a "CHAIN" child holding its own calls (``Call.parent``).
Each call starts at the answer's start plus its ``start_s`` and lasts its latency, so draws
sent side by side overlap and the root spans exactly the row's ``latency_s``. The answer's
start is its model's first generation step's start (else the run's): wall-clock start times
of answers are not recorded. Traces stored before calls had start times are laid out one
call after another, as they were then.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from llmbench import pricing
from llmbench.retrieval.trace import query_of
from llmbench.schema import PriceEntry
from llmbench.scoring.judged import JUDGE_KEY, turn_key
from llmbench.tables import trace_of
from llmbench.tracking.assessments import assessments_for
from llmbench.tracking.trace_writer import FeedbackRecord, SpanRecord, write_traces
from llmbench.types import Call

PREVIEW_CHARS = 1000
# MLflow's session metadata key (mlflow.tracing.constant.TraceMetadataKey.TRACE_SESSION):
# the traces sharing it are one conversation in the Sessions view.
TRACE_SESSION = "mlflow.trace.session"


def _attributes(trace_id: str, span_type: str, **values: Any) -> dict[str, str]:
    attributes = {
        "mlflow.traceRequestId": json.dumps(trace_id),
        "mlflow.spanType": json.dumps(span_type),
    }
    for key, value in values.items():
        if value is not None:
            attributes[key] = json.dumps(value, default=str)
    return attributes


def _call_span_values(call: Call, price: PriceEntry | None, provider: str) -> dict[str, Any]:
    input_cost, output_cost = pricing.cost_parts(price, call)
    usage = {
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "total_tokens": call.input_tokens + call.output_tokens,
    }
    if call.cached_tokens:
        usage["cache_read_input_tokens"] = call.cached_tokens
    if call.cache_write_tokens:
        usage["cache_creation_input_tokens"] = call.cache_write_tokens
    return {
        "mlflow.spanOutputs": call.output,
        "mlflow.chat.tokenUsage": usage,
        "mlflow.llm.cost": {
            "input_cost": input_cost,
            "output_cost": output_cost,
            "total_cost": input_cost + output_cost,
        },
        "mlflow.llm.model": call.model,
        "mlflow.llm.provider": provider,
        "llmbench.cached": call.cached,
        "llmbench.attempts": call.attempts,
    }


def _totals(calls: list[Call], prices: Mapping[str, PriceEntry]) -> dict[str, str]:
    """The trace's token usage and cost (the sums over its calls), as trace metadata."""
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    cost = {"input_cost": 0.0, "output_cost": 0.0, "total_cost": 0.0}
    for call in calls:
        usage["input_tokens"] += call.input_tokens
        usage["output_tokens"] += call.output_tokens
        usage["total_tokens"] += call.input_tokens + call.output_tokens
        price = prices.get(call.model) if call.kind == "model" else None
        input_cost, output_cost = pricing.cost_parts(price, call)
        cost["input_cost"] += input_cost
        cost["output_cost"] += output_cost
        cost["total_cost"] += input_cost + output_cost
    if not calls:
        return {}
    return {"mlflow.trace.tokenUsage": json.dumps(usage), "mlflow.trace.cost": json.dumps(cost)}


def _placed(calls: list[Call]) -> tuple[list[Call], bool]:
    """``calls`` with start times, and whether they were recorded: a trace stored before
    calls had them (no ``start_s`` in what was stored) is laid out one call after another,
    as it was then."""
    if all("start_s" in call.model_fields_set for call in calls):
        return calls, True
    placed, at = [], 0.0
    for call in calls:
        placed.append(call.model_copy(update={"start_s": at}))
        at += call.latency_s
    return placed, False


def _duration(calls: list[Call], latency: object, timed: bool) -> float:
    """The root span's length: the row's latency, what the leaderboard reports (calls
    placed on its clock end by then); an old trace's calls laid end to end may run longer."""
    ends = max((c.start_s + c.latency_s for c in calls), default=0.0)
    if not isinstance(latency, int | float) or math.isnan(latency):
        return ends
    return float(latency) if timed else max(float(latency), ends)


SPAN_TYPES = {
    "model": "LLM",
    "strategy": "CHAIN",
    "agent": "AGENT",
    "tool": "TOOL",
    "retriever": "RETRIEVER",
}


def tool_arguments(call: Call) -> Any:
    """A tool call's arguments as its TOOL span's inputs, the way MLflow's tool-call judges
    read them (a span named after the tool, its arguments as inputs, its result as
    outputs): the JSON object the model wrote, or its text as written when it is not one."""
    written = (call.input or [{}])[0].get("arguments", "")
    try:
        parsed = json.loads(written)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"arguments": written}


def _call_spans(
    calls: list[Call],
    trace_id: str,
    otel_id: int,
    root: int,
    start_ns: int,
    conversation: list[dict[str, str]],
    prices: Mapping[str, PriceEntry],
    providers: Mapping[str, str],
) -> list[SpanRecord]:
    """A span per call, under the span of the nested strategy or member agent loop it
    belongs to (the "strategy" or "agent" call whose path is its ``parent``) or under the
    root; ``conversation``: the sample's
    own, the inputs of a call that sent it (``Call.input`` None)."""
    ids = {n: n + root + 1 for n in range(len(calls))}
    paths = {
        "/".join(filter(None, (call.parent, f"{call.role}:{call.model}"))): ids[n]
        for n, call in enumerate(calls)
        if call.kind in ("strategy", "agent")
    }
    found = []
    for n, call in enumerate(calls):
        begin = start_ns + int(call.start_s * 1e9)
        span_type = SPAN_TYPES[call.kind]
        common: dict[str, Any] = {
            "mlflow.spanInputs": {"messages": call.input or conversation},
            "llmbench.role": call.role,
            "llmbench.purpose": call.purpose,
            "llmbench.round": call.round,
            "llmbench.parent": call.parent,
            "llmbench.note": call.note,
            "llmbench.route_score": call.score,
        }
        priced: dict[str, Any] = {}
        provider = providers.get(call.model, "")
        name = f"{call.model}: {call.purpose}"
        if call.kind == "model":
            priced = _call_span_values(call, prices.get(call.model), provider)
        elif call.kind == "retriever":  # MLflow's shape: a query in, Document dicts out
            common["mlflow.spanInputs"] = {"query": query_of(call)}
            common["mlflow.spanOutputs"] = json.loads(call.output or "[]")
        else:
            common["mlflow.spanOutputs"] = call.output
        if call.kind == "tool":
            name = call.model
            provider = ""
            common["mlflow.spanInputs"] = tool_arguments(call)
            common["llmbench.tool_source"] = common.pop("llmbench.role")
            common["llmbench.tool_call_id"] = (call.input or [{}])[0].get("id")
        found.append(
            SpanRecord(
                trace_id,
                otel_id,
                ids[n],
                paths.get(call.parent, root) if call.parent is not None else root,
                name,
                span_type,
                begin,
                begin + int(call.latency_s * 1e9),
                _attributes(trace_id, span_type, **common, **priced),
                call.error,
                cost=priced.get("mlflow.llm.cost", {}),
                model=call.model if priced else None,
                provider=(provider or None) if priced else None,
                exception=call.error if call.kind == "tool" else None,
            )
        )
    return found


@dataclass(frozen=True)
class _Answer:
    """What one trace shows: the whole row, or one turn of a conversation's row."""

    prompt: str
    output: str
    calls: list[Call]
    begin_ms: int
    total_s: float
    error: str | None
    metadata: dict[str, str]
    feedback: list[FeedbackRecord]


def _texts(value: object) -> list[str]:
    """A JSON list-of-texts cell (``follow_ups``, ``turn_answers``) as a list."""
    if isinstance(value, str):
        value = json.loads(value) if value else []
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [str(v) for v in value] if isinstance(value, list) else []


def _turns(record: Mapping[str, Any], whole: _Answer, session: str) -> list[_Answer]:
    """A conversation's row as one trace per user turn, one after another, each holding that
    turn's calls (``Call.turn``: a model's call, a strategy's calls nested as they were),
    question and answer, all of one MLflow session: the Sessions view then shows the
    conversation turn by turn. The turn's own judge grade is on its trace; the row's other
    scores on the last turn's (the conversation's answer). Rows stored before calls had a
    turn numbered a model's turns by ``Call.round``."""
    questions = [str(record["prompt"]), *_texts(record.get("follow_ups"))]
    answers = _texts(record.get("turn_answers"))
    numbered = any(c.turn is not None for c in whole.calls)

    def turn_of(call: Call) -> int:
        return (call.turn or 0) if numbered else call.round

    asked = max((turn_of(c) for c in whole.calls), default=0) + 1
    out = []
    for turn in range(min(asked, len(questions))):
        calls = [c for c in whole.calls if turn_of(c) == turn]
        offset = min((c.start_s for c in calls), default=0.0)
        length = max((c.start_s + c.latency_s for c in calls), default=offset) - offset
        last = turn == asked - 1
        out.append(
            _Answer(
                prompt=questions[turn],
                output=answers[turn] if turn < len(answers) else "",
                calls=[c.model_copy(update={"start_s": c.start_s - offset}) for c in calls],
                begin_ms=whole.begin_ms + int(offset * 1000),
                total_s=length,
                error=whole.error if last else None,
                metadata={
                    **whole.metadata,
                    TRACE_SESSION: session,
                    "llmbench.turn": str(turn + 1),
                },
                feedback=[
                    f
                    for f in whole.feedback
                    if f.name == turn_key(turn + 1)
                    or (last and not f.name.startswith(f"{JUDGE_KEY}_turn"))
                ],
            )
        )
    return out


def log_traces(
    results: pd.DataFrame,
    experiment_id: str,
    run_ids: Mapping[str, str],
    prices: Mapping[str, PriceEntry],
    providers: Mapping[str, str],
    *,
    started_ms: int,
    run_name: str = "",
    model_started_ms: Mapping[str, int] | None = None,
) -> list[str]:
    """A trace per result row (a conversation's: one per user turn, of one MLflow session),
    linked to its entrant's MLflow run and carrying its scores as assessments; returns the
    trace ids in row order. A trace starts at its model's ``model_started_ms`` (its first
    generation step's start) where known, else at ``started_ms``."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState

    infos: list[Any] = []
    feedback: list[list[FeedbackRecord]] = []
    spans: list[list[SpanRecord]] = []
    starts = dict(model_started_ms or {})
    for record in results.to_dict("records"):
        model, task = str(record["model"]), str(record["task"])
        begin_ms = starts.get(model, started_ms)
        calls, timed = _placed(trace_of(record.get("trace")))
        total_s = _duration(calls, record.get("latency_s"), timed)
        labels = {"llmbench.model": model, "llmbench.task": task, "llmbench.run": run_name}
        whole = _Answer(
            prompt=str(record["prompt"]),
            output=str(record.get("output") or ""),
            calls=calls,
            begin_ms=begin_ms,
            total_s=total_s,
            error=record.get("error") if isinstance(record.get("error"), str) else None,
            metadata={
                "mlflow.sourceRun": run_ids.get(model, ""),
                "llmbench.sample_id": str(record["sample_id"]),
                **labels,
            },
            feedback=assessments_for(record, begin_ms + int(total_s * 1000)),
        )
        answers = [whole]
        if _texts(record.get("follow_ups")) and calls:
            run = run_ids.get(model) or run_name or uuid.uuid4().hex
            answers = _turns(record, whole, f"{run}/{model}/{task}/{record['sample_id']}")
        for answer in answers:
            hex_id = uuid.uuid4().hex
            trace_id, otel_id = f"tr-{hex_id}", int(hex_id, 16)
            start_ns = answer.begin_ms * 1_000_000
            end_ns = start_ns + int(answer.total_s * 1e9)
            feedback.append(answer.feedback)
            infos.append(
                TraceInfo(
                    trace_id=trace_id,
                    trace_location=TraceLocation.from_experiment_id(experiment_id),
                    request_time=answer.begin_ms,
                    state=TraceState.ERROR if answer.error else TraceState.OK,
                    request_preview=answer.prompt[:PREVIEW_CHARS],
                    response_preview=answer.output[:PREVIEW_CHARS],
                    execution_duration=int(answer.total_s * 1000),
                    trace_metadata={**answer.metadata, **_totals(answer.calls, prices)},
                    tags={"mlflow.traceName": f"{model} / {task}", **labels},
                )
            )
            spans.append(
                _answer_spans(
                    record, answer, trace_id, otel_id, start_ns, end_ns, prices, providers
                )
            )
    write_traces(experiment_id, infos, feedback, spans)
    return [info.trace_id for info in infos]


def _answer_spans(
    record: Mapping[str, Any],
    answer: _Answer,
    trace_id: str,
    otel_id: int,
    start_ns: int,
    end_ns: int,
    prices: Mapping[str, PriceEntry],
    providers: Mapping[str, str],
) -> list[SpanRecord]:
    """The root span of one answer (or turn) and a span per call under it."""
    model, task = str(record["model"]), str(record["task"])
    root = 1
    agent = any(c.kind == "tool" for c in answer.calls)
    strategy = providers.get(model, "").startswith("strategy")
    root_type = "CHAIN" if strategy or (not agent and len(answer.calls) > 1) else "AGENT"
    spans = [
        SpanRecord(
            trace_id,
            otel_id,
            root,
            None,
            model,
            root_type,
            start_ns,
            end_ns,
            _attributes(
                trace_id,
                root_type,
                **{
                    "mlflow.spanInputs": {"prompt": answer.prompt, "task": task},
                    "mlflow.spanOutputs": {
                        "answer": answer.output,
                        "answered_by": record.get("answered_by"),
                    },
                },
            ),
            answer.error,
        )
    ]
    conversation = [{"role": "user", "content": str(record["prompt"])}]
    if isinstance(record.get("system"), str):
        conversation.insert(0, {"role": "system", "content": record["system"]})
    spans.extend(
        _call_spans(
            answer.calls, trace_id, otel_id, root, start_ns, conversation, prices, providers
        )
    )
    return spans
