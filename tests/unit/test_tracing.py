"""Traces (telemetry/tracing.py) on real in-process servers over the in-memory stores: one
server span per call with its gRPC status, the decision ids on the Predict spans, the caller's
trace continued, a decision's trace context carried through the real spool and the real
StreamDecisions stream to the AuditService, whose write of the decision is a child of the
Predict span that made it; and with tracing off (the default), no span at all.

The AuditService here stores into a small in-memory fake: the write span wraps the store call,
whatever the store is, so HBase would add nothing to what is proved (see test_spool_sink.py for
the same pieces without tracing)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from rowcast.config import Settings, TracingSettings
from rowcast.core.keys import new_decision_id
from rowcast.core.records import Decision, Source
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
from rowcast.prediction.servicer import STREAM_MESSAGE_SPAN
from rowcast.spool.spool import Spool
from rowcast.telemetry import tracing
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import resources_pb2 as pb
from tests.unit.inprocess import MODEL, VERSION, Suite, request, start_suite, stop_suite

PREDICT = "rowcast.v1.PredictionService/Predict"
PREDICT_BATCH = "rowcast.v1.PredictionService/PredictBatch"
STREAM_PREDICT = "rowcast.v1.PredictionService/StreamPredict"
STREAM_DECISIONS = "rowcast.v1.AuditService/StreamDecisions"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    # Synchronous export: a span is in the exporter as soon as it ends.
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest_asyncio.fixture
async def traced(tmp_path: Path, provider: TracerProvider) -> AsyncIterator[Suite]:
    suite = await start_suite(tmp_path, provider)
    yield suite
    await stop_suite(suite)


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _fail_store(suite: Suite) -> None:
    suite.predictions.fail()


#: (case, request, what to do to the suite first, expected code, span status)
CASES = [
    ("ok", request(), None, grpc.StatusCode.OK, StatusCode.UNSET),
    ("unknown model", request(model="nope"), None, grpc.StatusCode.NOT_FOUND, StatusCode.UNSET),
    (
        "bad input",
        pred_pb.PredictRequest(model=MODEL),
        None,
        grpc.StatusCode.INVALID_ARGUMENT,
        StatusCode.UNSET,
    ),
    ("store down", request(), _fail_store, grpc.StatusCode.UNAVAILABLE, StatusCode.ERROR),
]


@pytest.mark.parametrize(
    ("request_pb", "prepare", "code", "status"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_each_predict_gets_a_server_span_with_its_status(
    traced: Suite,
    exporter: InMemorySpanExporter,
    request_pb: pred_pb.PredictRequest,
    prepare: Callable[[Suite], None] | None,
    code: grpc.StatusCode,
    status: StatusCode,
) -> None:
    """A Predict makes one SERVER span named service/method whose rpc.grpc.status_code is the
    code the caller got (rowcast's errors, aborted with rich status, included); the span fails
    only for server-side codes (UNAVAILABLE here), not for the caller's mistakes."""
    if prepare is not None:
        prepare(traced)
    try:
        await traced.stub.Predict(request_pb, timeout=5)
        got = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        got = exc.code()

    assert got is code
    # The caller may see the status before the server's interceptor has ended the span.
    await eventually(lambda: len(spans_named(exporter, PREDICT)) >= 1)
    (span,) = spans_named(exporter, PREDICT)
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]
    assert (span.attributes["rpc.service"], span.attributes["rpc.method"]) == (
        "rowcast.v1.PredictionService",
        "Predict",
    )
    assert span.status.status_code is status


async def test_predict_spans_carry_the_decision_model_and_version(
    traced: Suite, exporter: InMemorySpanExporter
) -> None:
    """Predict's span has the decision id it answered, the model and the version; PredictBatch's
    has every decision id in input order; each StreamPredict request gets a span of its own
    (a child of the stream's span) with its decision id."""
    one = await traced.stub.Predict(request(), timeout=5)
    batch = await traced.stub.PredictBatch(
        pred_pb.PredictBatchRequest(
            model=MODEL,
            inputs=[
                pred_pb.PredictInput(features={"balance": pb.FeatureValue(number_value=b)})
                for b in (10.0, 150.0, 60.0)
            ],
        ),
        timeout=5,
    )
    call = traced.stub.StreamPredict(timeout=5)
    streamed = []
    for balance in (20.0, 180.0):
        await call.write(pred_pb.StreamPredictRequest(request=request(balance)))
        reply = await call.read()
        assert isinstance(reply, pred_pb.StreamPredictResponse)
        streamed.append(reply.response.decision_id)
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF

    (predict,) = spans_named(exporter, PREDICT)
    assert predict.attributes is not None
    assert predict.attributes[tracing.DECISION_ID] == one.decision_id
    assert predict.attributes[tracing.MODEL] == MODEL
    assert predict.attributes[tracing.MODEL_VERSION] == VERSION
    (batch_span,) = spans_named(exporter, PREDICT_BATCH)
    assert batch_span.attributes is not None
    assert list(batch_span.attributes[tracing.DECISION_ID]) == [  # type: ignore[arg-type]
        r.decision_id for r in batch.responses
    ]
    await eventually(lambda: bool(spans_named(exporter, STREAM_PREDICT)))
    (stream,) = spans_named(exporter, STREAM_PREDICT)
    messages = spans_named(exporter, STREAM_MESSAGE_SPAN)
    assert [m.attributes[tracing.DECISION_ID] for m in messages if m.attributes] == streamed
    assert stream.context is not None
    for message in messages:
        assert message.parent is not None
        assert message.parent.span_id == stream.context.span_id


async def test_a_callers_trace_context_is_continued(
    traced: Suite, exporter: InMemorySpanExporter
) -> None:
    """A call that carries a W3C traceparent gets a span in the caller's trace, whose parent is
    the caller's span; the request id it sends (x-request-id) is an attribute."""
    trace_id, span_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
    parent = f"00-{trace_id:032x}-{span_id:016x}-01"

    await traced.stub.Predict(
        request(), timeout=5, metadata=(("traceparent", parent), ("x-request-id", "req-7"))
    )

    (span,) = spans_named(exporter, PREDICT)
    assert span.context is not None and span.parent is not None
    assert span.context.trace_id == trace_id
    assert span.parent.span_id == span_id
    assert span.attributes is not None
    assert span.attributes[tracing.REQUEST_ID] == "req-7"


async def test_the_audit_write_of_a_decision_is_a_child_of_its_predict_span(
    traced: Suite, exporter: InMemorySpanExporter
) -> None:
    """A decision's trace context goes through the spool and StreamDecisions: once the
    AuditService has stored it, an `audit.write` span for that decision exists, in the Predict
    call's trace, child of the Predict span, and linked to the StreamDecisions call."""
    answers = [await traced.stub.Predict(request(b), timeout=5) for b in (30.0, 170.0)]
    await traced.sink.delivered()
    await eventually(lambda: len(spans_named(exporter, tracing.AUDIT_WRITE_SPAN)) == 2)

    writes = {
        s.attributes[tracing.DECISION_ID]: s
        for s in spans_named(exporter, tracing.AUDIT_WRITE_SPAN)
        if s.attributes
    }
    predicts = {
        s.attributes[tracing.DECISION_ID]: s for s in spans_named(exporter, PREDICT) if s.attributes
    }
    assert set(writes) == set(predicts) == {a.decision_id for a in answers}
    for decision_id, write in writes.items():
        predict = predicts[decision_id]
        assert predict.context is not None and write.context is not None
        assert write.parent is not None
        assert write.context.trace_id == predict.context.trace_id
        assert write.parent.span_id == predict.context.span_id
        (link,) = write.links
        assert write.attributes is not None
        assert write.attributes[tracing.MODEL_VERSION] == VERSION
        assert link.context.trace_id != predict.context.trace_id
    # Every write links to the one StreamDecisions call (still open: its span ends with it).
    assert len({w.links[0].context.span_id for w in writes.values()}) == 1
    assert set(traced.store.rows) == set(writes)


async def test_a_spooled_decision_keeps_its_trace_context(tmp_path: Path) -> None:
    """A decision written to the spool with a traceparent reads back with the same one, and it
    names the same span context."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    decision = pb.Decision(decision_id=new_decision_id(), model=MODEL, trace_parent=parent)
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    try:
        spool.append([decision.SerializeToString()])
        batch = spool.read(spool.cursor, 10, 1 << 20)
    finally:
        spool.close()

    (payload,) = batch.payloads
    read_back = pb.Decision.FromString(payload)
    assert read_back.trace_parent == parent
    found = tracing.parse_traceparent(read_back.trace_parent)
    assert found is not None
    assert (found.trace_id, found.span_id) == (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
    )


async def test_the_audit_sink_spools_the_current_trace_context(
    tmp_path: Path, provider: TracerProvider
) -> None:
    """Decisions recorded inside a recording span are spooled with that span's traceparent;
    outside any span, with none."""
    sink = AuditSink("127.0.0.1:1", SpoolConfig(tmp_path, adopt_orphans=False))
    await sink.start()
    try:
        with provider.get_tracer("test").start_as_current_span("predict") as span:
            await sink.record([_decision()])
        await sink.record([_decision()])
    finally:
        await sink.stop(drain_timeout_s=0.0)
    spool = Spool(tmp_path, max_bytes=1 << 20, writable=False)
    spool.open()
    try:
        payloads = spool.read(spool.cursor, 10, 1 << 20).payloads
    finally:
        spool.close()

    traced, untraced = (pb.Decision.FromString(p) for p in payloads)
    context = span.get_span_context()
    flags = int(context.trace_flags)
    assert flags & 0x01  # sampled
    assert traced.trace_parent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert untraced.trace_parent == ""


def _decision() -> Decision:
    return Decision(
        decision_id=new_decision_id(),
        model=MODEL,
        model_version=VERSION,
        subject="",
        features={"balance": 1.0},
        key_hex="00",
        output=0.5,
        source=Source.HBASE,
        decide_time_ms=int(time.time() * 1000),
    )


def test_tracing_is_off_by_default() -> None:
    """With no OTEL_* variables tracing is off: no provider, no interceptor; `none` and
    OTEL_SDK_DISABLED turn it off too."""
    for env in (
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_SDK_DISABLED": "true",
        },
    ):
        settings = Settings.from_env(env).tracing
        assert not settings.enabled
        assert tracing.build_provider(settings, "rowcast-prediction") is None
    assert tracing.server_interceptors(None) == []


def test_the_otel_variables_choose_the_exporter_and_sampler() -> None:
    """OTEL_TRACES_EXPORTER, OTEL_SERVICE_NAME, the OTLP endpoint and the sampler variables are
    read; an exporter or protocol rowcast does not ship is refused at start-up."""
    settings = TracingSettings.from_env(
        {
            "OTEL_TRACES_EXPORTER": "otlp,console",
            "OTEL_SERVICE_NAME": "pred-eu",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    )
    assert settings.exporters == ("otlp", "console")
    assert (settings.service_name, settings.otlp_endpoint) == ("pred-eu", "http://127.0.0.1:4317")
    assert (settings.sampler, settings.sampler_ratio) == ("parentbased_traceidratio", 0.25)
    provider = tracing.build_provider(settings, "rowcast-prediction")
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "pred-eu"
    assert "0.25" in provider.sampler.get_description()
    provider.shutdown()
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        TracingSettings.from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ValueError, match="grpc only"):
        TracingSettings.from_env(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        )


async def test_with_tracing_off_no_span_is_made(tmp_path: Path) -> None:
    """With tracing off, Predict, PredictBatch, StreamPredict and the audit write make no span
    even when an SDK provider is installed globally: nothing in rowcast reaches for the global
    tracer."""
    exporter = InMemorySpanExporter()
    global_provider = TracerProvider()
    global_provider.add_span_processor(SimpleSpanProcessor(exporter))
    original = trace.get_tracer_provider()
    # Set behind the API's back: set_tracer_provider works once per process.
    trace._TRACER_PROVIDER = global_provider
    try:
        off = tracing.build_provider(Settings.from_env({}).tracing, "rowcast-prediction")
        suite = await start_suite(tmp_path, off)
        try:
            await suite.stub.Predict(request(), timeout=5)
            await suite.stub.PredictBatch(
                pred_pb.PredictBatchRequest(
                    model=MODEL,
                    inputs=[
                        pred_pb.PredictInput(features={"balance": pb.FeatureValue(number_value=1)})
                    ],
                ),
                timeout=5,
            )
            call = suite.stub.StreamPredict(timeout=5)
            await call.write(pred_pb.StreamPredictRequest(request=request()))
            await call.read()
            await call.done_writing()
            await suite.sink.delivered()
        finally:
            await stop_suite(suite)
    finally:
        trace._TRACER_PROVIDER = original
        global_provider.shutdown()

    assert exporter.get_finished_spans() == ()
    assert len(suite.store.rows) == 3


async def test_the_off_path_costs_under_a_hundredth_of_a_predict(tmp_path: Path) -> None:
    """What the hot path calls per Predict when tracing is off (annotate the span, read the
    trace context to spool, enter the stream message span) costs under 1 % of the CPU time of
    a cached Predict in process (about 1 µs against about 1 ms, client included; compared
    rather than timed alone, so that a loaded machine slows both)."""
    decisions = [_decision()]

    def helpers() -> None:
        tracing.annotate_decisions(MODEL, "current", decisions)
        tracing.current_traceparent()
        with tracing.message_span(STREAM_MESSAGE_SPAN):
            pass

    suite = await start_suite(tmp_path, None)
    try:
        for _ in range(100):
            await suite.stub.Predict(request(), timeout=5)
        predict = []
        for _ in range(3):
            started = time.process_time()
            for _ in range(300):
                await suite.stub.Predict(request(), timeout=5)
            predict.append((time.process_time() - started) / 300)
    finally:
        await stop_suite(suite)
    off_path = min(_timed(helpers, 20_000) for _ in range(5))

    assert off_path < min(predict) / 100, f"{off_path * 1e6:.2f} µs vs {min(predict) * 1e6:.0f} µs"


def _timed(fn: Callable[[], None], runs: int) -> float:
    started = time.process_time()
    for _ in itertools.repeat(None, runs):
        fn()
    return (time.process_time() - started) / runs
