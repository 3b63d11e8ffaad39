"""Traces through the real services and HBase: a Predict's decision travels through the spool
and StreamDecisions to the AuditService, whose write of it into HBase is a span in the Predict's
trace, child of the Predict span; the stored decision does not keep the trace context."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rowcast.apps import start_audit_server, start_prediction_server
from rowcast.config import Settings
from rowcast.telemetry import tracing
from rowcast_client import AsyncRowcastClient, Targets
from tests.integration.conftest import MODEL, Published, audited, credentials

CUSTOMER: dict[str, float | str] = {"balance": 1_200.0, "income": 40_000.0, "student": "Yes"}
PREDICT = "rowcast.v1.PredictionService/Predict"
GET_DECISION = "rowcast.v1.AuditService/GetDecision"


@pytest_asyncio.fixture(loop_scope="session")
async def traced(
    settings: Settings, published: Published
) -> AsyncIterator[tuple[AsyncRowcastClient, InMemorySpanExporter]]:
    """A traced AuditService and prediction server of their own (one in-memory exporter)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    audit = await start_audit_server(settings, 0, tracer_provider=provider)
    prediction = await start_prediction_server(
        settings, 0, audit_target=f"127.0.0.1:{audit.port}", tracer_provider=provider
    )
    targets = Targets(
        prediction=f"127.0.0.1:{prediction.port}",
        audit=f"127.0.0.1:{audit.port}",
        model="127.0.0.1:1",  # not called
        credentials=credentials(settings.security),
    )
    try:
        async with AsyncRowcastClient(targets, timeout_s=5.0) as client:
            yield client, exporter
    finally:
        await prediction.stop(1.0)
        await audit.stop(1.0)
        provider.shutdown()


async def test_the_hbase_write_of_a_decision_is_in_its_predict_trace(
    traced: tuple[AsyncRowcastClient, InMemorySpanExporter], published: Published
) -> None:
    """The Predict span carries the decision id, model and version; once the decision is in
    HBase, its `audit.write` span is a child of that Predict span (same trace); GetDecision
    gets a span of its own; the stored decision has no trace_parent (it is not kept)."""
    client, exporter = traced

    answer = await client.predict(MODEL, CUSTOMER, subject="trace-1")
    stored = await audited(client, answer.decision_id)

    # The AuditService ends a decision's write span right after HBase took the write, so a
    # reader can see the decision a moment before the span is exported: wait for it.
    deadline = time.monotonic() + 10.0
    while True:
        spans = exporter.get_finished_spans()
        writes = [
            s
            for s in spans
            if s.name == tracing.AUDIT_WRITE_SPAN
            and s.attributes
            and s.attributes[tracing.DECISION_ID] == answer.decision_id
        ]
        if writes or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    (predict,) = [s for s in spans if s.name == PREDICT]
    assert predict.attributes is not None
    assert predict.attributes[tracing.DECISION_ID] == answer.decision_id
    assert predict.attributes[tracing.MODEL] == MODEL
    assert predict.attributes[tracing.MODEL_VERSION] == published.v1.version.version
    (write,) = writes
    assert predict.context is not None and write.context is not None
    assert write.parent is not None
    assert write.context.trace_id == predict.context.trace_id
    assert write.parent.span_id == predict.context.span_id
    assert write.status.is_ok
    assert any(s.name == GET_DECISION for s in spans)
    assert stored.decision_id == answer.decision_id
    assert stored.trace_parent == ""
