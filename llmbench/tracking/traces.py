"""Every answer of a run as an MLflow trace: a root span for the answer (a model's or a
strategy's) and an LLM span per model call, each with ``mlflow.chat.tokenUsage`` and
``mlflow.llm.cost`` from the run's price snapshot, so MLflow never looks a price up.

Every score is an assessment on its answer's trace (:mod:`llmbench.tracking.assessments`).
Written by the single tracking step, in batches (:mod:`llmbench.tracking.trace_writer`):
thousands of trace infos, assessments attached, per transaction, then the spans of many
traces per ``log_spans`` call.
Call times are laid out from each call's own latency (sequential in trace order), anchored
at the run's start, since the calls' wall-clock start times are not recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import pandas as pd

from llmbench import pricing
from llmbench.schema import PriceEntry
from llmbench.tables import trace_of
from llmbench.tracking.assessments import assessments_for
from llmbench.tracking.trace_writer import FeedbackRecord, SpanRecord, write_traces
from llmbench.types import Call

PREVIEW_CHARS = 1000


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
        "llmbench.role": call.role,
        "llmbench.purpose": call.purpose,
        "llmbench.cached": call.cached,
        "llmbench.attempts": call.attempts,
        "llmbench.note": call.note,
        "llmbench.route_score": call.score,
    }


def _totals(calls: list[Call], prices: Mapping[str, PriceEntry]) -> dict[str, str]:
    """The trace's token usage and cost (the sums over its calls), as trace metadata."""
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    cost = {"input_cost": 0.0, "output_cost": 0.0, "total_cost": 0.0}
    for call in calls:
        usage["input_tokens"] += call.input_tokens
        usage["output_tokens"] += call.output_tokens
        usage["total_tokens"] += call.input_tokens + call.output_tokens
        input_cost, output_cost = pricing.cost_parts(prices.get(call.model), call)
        cost["input_cost"] += input_cost
        cost["output_cost"] += output_cost
        cost["total_cost"] += input_cost + output_cost
    if not calls:
        return {}
    return {"mlflow.trace.tokenUsage": json.dumps(usage), "mlflow.trace.cost": json.dumps(cost)}


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
    """A trace per result row, linked to its entrant's MLflow run and carrying its scores
    as assessments; returns the trace ids in row order. A trace starts at its model's
    ``model_started_ms`` (its first generation step's start) where known, else at
    ``started_ms``."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState

    infos: list[Any] = []
    feedback: list[list[FeedbackRecord]] = []
    spans: list[list[SpanRecord]] = []
    starts = dict(model_started_ms or {})
    for record in results.to_dict("records"):
        model, task = str(record["model"]), str(record["task"])
        begin_ms = starts.get(model, started_ms)
        start_ns = begin_ms * 1_000_000
        calls = trace_of(record.get("trace"))
        total_s = sum(c.latency_s for c in calls) or float(record.get("latency_s") or 0.0)
        end_ns = start_ns + int(total_s * 1e9)
        hex_id = uuid.uuid4().hex
        trace_id, otel_id = f"tr-{hex_id}", int(hex_id, 16)
        error = record.get("error") if isinstance(record.get("error"), str) else None
        output = str(record.get("output") or "")
        labels = {"llmbench.model": model, "llmbench.task": task, "llmbench.run": run_name}
        mine: list[SpanRecord] = []
        spans.append(mine)
        feedback.append(assessments_for(record, begin_ms + int(total_s * 1000)))
        infos.append(
            TraceInfo(
                trace_id=trace_id,
                trace_location=TraceLocation.from_experiment_id(experiment_id),
                request_time=begin_ms,
                state=TraceState.ERROR if error else TraceState.OK,
                request_preview=str(record["prompt"])[:PREVIEW_CHARS],
                response_preview=output[:PREVIEW_CHARS],
                execution_duration=int(total_s * 1000),
                trace_metadata={
                    "mlflow.sourceRun": run_ids.get(model, ""),
                    "llmbench.sample_id": str(record["sample_id"]),
                    **labels,
                    **_totals(calls, prices),
                },
                tags={"mlflow.traceName": f"{model} / {task}", **labels},
            )
        )
        root = 1
        root_type = (
            "CHAIN"
            if len(calls) > 1 or providers.get(model, "").startswith("strategy")
            else "AGENT"
        )
        mine.append(
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
                        "mlflow.spanInputs": {"prompt": record["prompt"], "task": task},
                        "mlflow.spanOutputs": {
                            "answer": output,
                            "answered_by": record.get("answered_by"),
                        },
                    },
                ),
                error,
            )
        )
        at = start_ns
        for n, call in enumerate(calls, start=2):
            finish = at + int(call.latency_s * 1e9)
            provider = providers.get(call.model, "")
            values = _call_span_values(call, prices.get(call.model), provider)
            mine.append(
                SpanRecord(
                    trace_id,
                    otel_id,
                    n,
                    root,
                    f"{call.model}: {call.purpose}",
                    "LLM",
                    at,
                    finish,
                    _attributes(trace_id, "LLM", **values),
                    call.error,
                    cost=values["mlflow.llm.cost"],
                    model=call.model,
                    provider=provider or None,
                )
            )
            at = finish
    write_traces(experiment_id, infos, feedback, spans)
    return [info.trace_id for info in infos]
