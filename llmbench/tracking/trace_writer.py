"""Write many MLflow traces, with their spans and assessments, in a few transactions.

MLflow's public writes are a transaction per trace (``start_trace``), per assessment
(``log_feedback``), and per trace again inside ``log_spans`` (an UPDATE of its totals):
on a local sqlite store a 10,000-sample run of three models took minutes. On a SQL store
this module inserts a batch of finished traces (info, tags, metadata, assessments, spans)
in one transaction: the rows ``SqlAlchemyStore.start_trace`` and ``log_spans`` write, built
with MLflow's own models and helpers, the trace totals (tokens, cost) given up front as
``start_trace`` accepts them. Any other store (a tracking server, Databricks) gets the
public ``start_trace`` per trace, assessments attached, then batched ``log_spans``: correct,
only slower.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TRACES_PER_TRANSACTION = 5000
SPANS_PER_CALL = 5000


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """A finished span: ``attributes`` hold JSON text, as MLflow stores them."""

    trace_id: str
    otel_trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    span_type: str
    start_ns: int
    end_ns: int
    attributes: dict[str, str]
    error: str | None = None
    cost: Mapping[str, float] = field(default_factory=dict)
    model: str | None = None
    provider: str | None = None
    # An error that is the call's own failure (a tool that failed) is also an "exception"
    # event, where MLflow's tool-call judges read why a tool call failed.
    exception: str | None = None

    def _exception_event(self) -> dict[str, Any] | None:
        if self.exception is None:
            return None
        attributes = {"exception.type": "ToolError", "exception.message": self.exception}
        return {"name": "exception", "time_unix_nano": self.end_ns, "attributes": attributes}

    def to_span(self) -> Any:
        """As an ``mlflow.entities.Span``, for the public ``log_spans``."""
        from mlflow.entities import Span
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

        def context(sid: int) -> SpanContext:
            return SpanContext(self.otel_trace_id, sid, is_remote=False, trace_flags=TraceFlags(1))

        status = Status(StatusCode.ERROR, self.error) if self.error else Status(StatusCode.OK)
        parent = context(self.parent_id) if self.parent_id is not None else None
        event = self._exception_event()
        events = (
            [Event(event["name"], event["attributes"], event["time_unix_nano"])] if event else []
        )
        return Span(
            ReadableSpan(
                name=self.name,
                context=context(self.span_id),
                parent=parent,
                start_time=self.start_ns,
                end_time=self.end_ns,
                attributes=self.attributes,
                events=events,
                status=status,
                resource=Resource.get_empty(),
            )
        )

    def row(self, experiment_id: str) -> dict[str, Any]:
        """The ``spans`` row ``log_spans`` stores for it (``content``: the span as JSON)."""

        def b64(number: int, size: int) -> str:
            return base64.b64encode(number.to_bytes(size, "big")).decode()

        content: dict[str, Any] = {
            "trace_id": b64(self.otel_trace_id, 16),
            "span_id": b64(self.span_id, 8),
            "parent_span_id": b64(self.parent_id, 8) if self.parent_id is not None else None,
            "name": self.name,
            "start_time_unix_nano": self.start_ns,
            "end_time_unix_nano": self.end_ns,
            "events": [event] if (event := self._exception_event()) else [],
            "status": {
                "code": "STATUS_CODE_ERROR" if self.error else "STATUS_CODE_OK",
                "message": self.error or "",
            },
            "attributes": self.attributes,
            "links": [],
        }
        return {
            "trace_id": self.trace_id,
            "experiment_id": int(experiment_id),
            "span_id": f"{self.span_id:016x}",
            "parent_span_id": f"{self.parent_id:016x}" if self.parent_id is not None else None,
            "name": self.name,
            "type": self.span_type,
            "status": "ERROR" if self.error else "OK",
            "start_time_unix_nano": self.start_ns,
            "end_time_unix_nano": self.end_ns,
            "content": json.dumps(content, ensure_ascii=False),
            "input_cost": self.cost.get("input_cost"),
            "output_cost": self.cost.get("output_cost"),
            "total_cost": self.cost.get("total_cost"),
            "model_name": self.model,
            "model_provider": self.provider,
        }


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One assessment of a trace: a score, a judge's verdict or a human label."""

    name: str
    value: Any
    source_type: str  # CODE, LLM_JUDGE or HUMAN
    source_id: str
    create_time_ms: int
    rationale: str | None = None
    error: str | None = None
    metadata: dict[str, str] | None = None

    def to_feedback(self, trace_id: str) -> Any:
        """As an ``mlflow.entities.Feedback``, for the public ``start_trace``."""
        from mlflow.entities import AssessmentError, AssessmentSource, Feedback

        return Feedback(
            name=self.name,
            value=self.value,
            error=AssessmentError(error_code="JUDGE_ERROR", error_message=self.error)
            if self.error is not None
            else None,
            rationale=self.rationale,
            source=AssessmentSource(source_type=self.source_type, source_id=self.source_id),
            trace_id=trace_id,
            metadata=self.metadata,
            create_time_ms=self.create_time_ms,
        )

    def row(self, trace_id: str, experiment_id: str, trace_time_ms: int) -> dict[str, Any]:
        """``SqlAssessments.from_mlflow_entity``'s row for it."""
        from mlflow.store.tracking.utils.trace_analytics import assessment_aggregate
        from mlflow.tracing.utils import generate_assessment_id

        aggregate_value, is_numeric_value = assessment_aggregate(self.value)
        error = {"error_code": "JUDGE_ERROR", "error_message": self.error}
        return {
            "assessment_id": generate_assessment_id(),
            "trace_id": trace_id,
            "name": self.name,
            "assessment_type": "feedback",
            "value": json.dumps(self.value),
            "error": json.dumps(error) if self.error is not None else None,
            "created_timestamp": self.create_time_ms,
            "last_updated_timestamp": self.create_time_ms,
            "source_type": self.source_type,
            "source_id": self.source_id,
            "run_id": None,
            "span_id": None,
            "rationale": self.rationale,
            "overrides": None,
            "valid": True,
            "assessment_metadata": json.dumps(self.metadata) if self.metadata else None,
            "aggregate_value": aggregate_value,
            "is_numeric_value": is_numeric_value,
            "experiment_id": int(experiment_id),
            "trace_timestamp_ms": trace_time_ms,
        }


def _insert_traces(
    store: Any,
    experiment_id: str,
    infos: Sequence[Any],
    feedback: Sequence[Sequence[FeedbackRecord]],
    spans: Sequence[SpanRecord],
) -> None:
    """``start_trace`` then ``log_spans`` for a batch of finished traces: the same rows,
    inserted table by table in one transaction."""
    from mlflow.store.tracking.dbmodels.models import (
        SqlAssessments,
        SqlSpan,
        SqlTraceInfo,
        SqlTraceMetadata,
        SqlTraceTag,
    )
    from mlflow.store.tracking.utils.sql_trace_rollups import (
        RollupFamily,
        enqueue_rollup_rebuild_partitions,
    )
    from mlflow.store.tracking.utils.trace_analytics import (
        PROMOTED_TRACE_METADATA_KEYS,
        analytics_columns_from_metadata,
        validate_trace_name,
    )
    from mlflow.tracing.constant import SpansLocation, TraceMetadataKey, TraceTagKey
    from sqlalchemy import insert

    experiment = store.get_experiment(experiment_id)
    trace_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    metadata_rows: list[dict[str, Any]] = []
    assessment_rows: list[dict[str, Any]] = []
    for info, scores in zip(infos, feedback, strict=True):
        trace_id = info.trace_id
        metadata = dict(info.trace_metadata)
        trace_rows.append(
            {
                "request_id": trace_id,
                "experiment_id": int(experiment_id),
                "timestamp_ms": info.request_time,
                "execution_time_ms": info.execution_duration,
                "status": info.state.value,
                "client_request_id": info.client_request_id,
                "request_preview": info.request_preview,
                "response_preview": info.response_preview,
                "trace_name": validate_trace_name(info.tags.get(TraceTagKey.TRACE_NAME)),
                **analytics_columns_from_metadata(metadata),
            }
        )
        location = store._get_trace_artifact_location_tag(experiment, trace_id)
        tags = {k: v for k, v in info.tags.items() if k != TraceTagKey.TRACE_NAME}
        tags[location.key] = location.value
        tags[TraceTagKey.SPANS_LOCATION] = SpansLocation.TRACKING_STORE.value
        tag_rows.extend({"request_id": trace_id, "key": k, "value": v} for k, v in tags.items())
        for key in PROMOTED_TRACE_METADATA_KEYS:
            metadata.pop(key, None)
        metadata[TraceMetadataKey.TRACE_INFO_FINALIZED] = "true"
        metadata_rows.extend(
            {"request_id": trace_id, "key": k, "value": v} for k, v in sorted(metadata.items())
        )
        assessment_rows.extend(f.row(trace_id, experiment_id, info.request_time) for f in scores)
    with store.ManagedSessionMaker(read_only=False) as session:
        enqueue_rollup_rebuild_partitions(
            session,
            [
                (family, int(experiment_id), sorted({i.request_time for i in infos}))
                for family in (RollupFamily.TRACE_METRIC, RollupFamily.ASSESSMENT)
            ],
        )
        for model, rows in (
            (SqlTraceInfo, trace_rows),
            (SqlTraceTag, tag_rows),
            (SqlTraceMetadata, metadata_rows),
            (SqlAssessments, assessment_rows),
            (SqlSpan, [span.row(experiment_id) for span in spans]),
        ):
            if rows:  # one executemany per table: every row with the same columns
                columns = {key: None for row in rows for key in row}
                session.connection().execute(
                    insert(model.__table__), [{**columns, **row} for row in rows]
                )


def write_traces(
    experiment_id: str,
    infos: Sequence[Any],
    feedback: Sequence[Sequence[FeedbackRecord]],
    spans: Sequence[Sequence[SpanRecord]],
) -> None:
    """Every trace info with its assessments (``feedback[i]``) and spans (``spans[i]``),
    in batches."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracing.client import TracingClient

    client = TracingClient()
    if isinstance(client.store, SqlAlchemyStore):
        for start in range(0, len(infos), TRACES_PER_TRANSACTION):
            end = start + TRACES_PER_TRANSACTION
            batch = [span for trace in spans[start:end] for span in trace]
            _insert_traces(
                client.store, experiment_id, infos[start:end], feedback[start:end], batch
            )
        return
    for info, scores in zip(infos, feedback, strict=True):
        info.assessments = [f.to_feedback(info.trace_id) for f in scores]
        client.start_trace(info)
    flat = [span.to_span() for trace in spans for span in trace]
    for start in range(0, len(flat), SPANS_PER_CALL):
        client.log_spans(experiment_id, flat[start : start + SPANS_PER_CALL])
