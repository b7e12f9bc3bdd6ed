"""Every answer of a run as an MLflow trace: a root span for the answer (a model's or a
strategy's) and an LLM span per model call, each with ``mlflow.chat.tokenUsage`` and
``mlflow.llm.cost`` from the run's price snapshot, so MLflow never looks a price up.

Written by the single tracking step, in batches: one trace-info row per answer, then the
spans of many traces per ``log_spans`` call (the store groups them by trace in one session).
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
from llmbench.types import Call

SPANS_PER_BATCH = 2000
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


def _span(
    otel_trace_id: int,
    span_id: int,
    parent: int | None,
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: dict[str, str],
    error: str | None,
) -> Any:
    from mlflow.entities import Span
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

    def context(sid: int) -> SpanContext:
        return SpanContext(otel_trace_id, sid, is_remote=False, trace_flags=TraceFlags(1))

    status = Status(StatusCode.ERROR, error) if error else Status(StatusCode.OK)
    otel = ReadableSpan(
        name=name,
        context=context(span_id),
        parent=context(parent) if parent is not None else None,
        start_time=start_ns,
        end_time=end_ns,
        attributes=attributes,
        status=status,
        resource=Resource.get_empty(),
    )
    return Span(otel)


def _call_span_values(call: Call, price: PriceEntry | None, provider: str) -> dict[str, Any]:
    input_cost, output_cost = pricing.cost_parts(price, call)
    usage = {
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "total_tokens": call.input_tokens + call.output_tokens,
    }
    if call.cached_tokens:
        usage["cache_read_input_tokens"] = call.cached_tokens
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


def log_traces(
    results: pd.DataFrame,
    experiment_id: str,
    run_ids: Mapping[str, str],
    prices: Mapping[str, PriceEntry],
    providers: Mapping[str, str],
    *,
    started_ms: int,
) -> list[str]:
    """A trace per result row, linked to its entrant's MLflow run; returns the trace ids in
    row order."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.client import TracingClient

    client = TracingClient()
    spans: list[Any] = []
    ids: list[str] = []
    start_ns = started_ms * 1_000_000
    for record in results.to_dict("records"):
        model, task = str(record["model"]), str(record["task"])
        calls = trace_of(record.get("trace"))
        total_s = sum(c.latency_s for c in calls) or float(record.get("latency_s") or 0.0)
        end_ns = start_ns + int(total_s * 1e9)
        hex_id = uuid.uuid4().hex
        trace_id, otel_id = f"tr-{hex_id}", int(hex_id, 16)
        error = record.get("error") if isinstance(record.get("error"), str) else None
        output = str(record.get("output") or "")
        client.start_trace(
            TraceInfo(
                trace_id=trace_id,
                trace_location=TraceLocation.from_experiment_id(experiment_id),
                request_time=started_ms,
                state=TraceState.ERROR if error else TraceState.OK,
                request_preview=str(record["prompt"])[:PREVIEW_CHARS],
                response_preview=output[:PREVIEW_CHARS],
                execution_duration=int(total_s * 1000),
                trace_metadata={
                    "mlflow.sourceRun": run_ids.get(model, ""),
                    "llmbench.model": model,
                    "llmbench.task": task,
                    "llmbench.sample_id": str(record["sample_id"]),
                },
                tags={
                    "mlflow.traceName": f"{model} / {task}",
                    "llmbench.model": model,
                    "llmbench.task": task,
                },
            )
        )
        root = 1
        spans.append(
            _span(
                otel_id,
                root,
                None,
                model,
                start_ns,
                end_ns,
                _attributes(
                    trace_id,
                    "CHAIN"
                    if len(calls) > 1 or providers.get(model, "").startswith("strategy")
                    else "AGENT",
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
            values = _call_span_values(call, prices.get(call.model), providers.get(call.model, ""))
            spans.append(
                _span(
                    otel_id,
                    n,
                    root,
                    f"{call.model}: {call.purpose}",
                    at,
                    finish,
                    _attributes(trace_id, "LLM", **values),
                    call.error,
                )
            )
            at = finish
        ids.append(trace_id)
        if len(spans) >= SPANS_PER_BATCH:
            client.log_spans(experiment_id, spans)
            spans = []
    if spans:
        client.log_spans(experiment_id, spans)
    return ids
