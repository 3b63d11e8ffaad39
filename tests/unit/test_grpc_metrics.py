"""The gRPC metrics: every call of every kind is counted once, under its final status, with its
time and its stream messages, on a real in-process grpc.aio server called through a real
channel; the /metrics endpoint serves them; the client's optional interceptor counts its own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from rowcast.config import MetricsAddress, MetricsSettings, Settings
from rowcast.server import start_server
from rowcast.telemetry.metrics import (
    HANDLING_BUCKETS,
    GrpcServerMetrics,
    ServerMetricsInterceptor,
    serve_metrics,
)
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast_client import AsyncRowcastClient, NotFoundError, RowcastClient, Targets
from rowcast_client import metrics as client_metrics

SERVICE = "test.Echo"
Code = grpc.StatusCode


# -- a test service with one method of each kind; the request says what the handler does ------


async def _act(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if request == b"invalid":
        await context.abort(Code.INVALID_ARGUMENT, "bad input")
    if request == b"missing":
        await context.abort(Code.NOT_FOUND, "no such thing")
    if request == b"set_code":
        context.set_code(Code.FAILED_PRECONDITION)
    if request == b"boom":
        raise RuntimeError("a bug")
    if request == b"hang":
        await asyncio.sleep(60)
    if request == b"slow":
        await asyncio.sleep(0.3)


async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    await _act(request, context)
    return request


async def server_stream(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    """Yields `request`'s length in messages; a message naming an action acts after one."""
    count = int(request) if request.isdigit() else 1
    for _ in range(count):
        yield b"x"
    await _act(request, context)


async def server_stream_writer(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """The reader/writer style: writes through the context, returns None."""
    for _ in range(int(request)):
        await context.write(b"x")


async def client_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> bytes:
    seen = 0
    async for request in requests:
        seen += 1
        await _act(request, context)
    return str(seen).encode()


async def bidi_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    async for request in requests:
        await _act(request, context)
        yield request


def register(server: grpc.aio.Server) -> None:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ServerStreamWriter": grpc.unary_stream_rpc_method_handler(server_stream_writer),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "BidiStream": grpc.stream_stream_rpc_method_handler(bidi_stream),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])


class Echo:
    """A server with the interceptor recording into a registry of this test's own."""

    def __init__(self, max_in_flight: int | None = None, grpc_limit: int | None = None) -> None:
        self.registry = CollectorRegistry()
        self.metrics = GrpcServerMetrics(self.registry)
        self.server = grpc.aio.server(
            interceptors=[ServerMetricsInterceptor(SERVICE, max_in_flight, self.metrics)],
            maximum_concurrent_rpcs=grpc_limit,
        )
        register(self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")

    def value(self, name: str, method: str, kind: str, **labels: str) -> float:
        """A sample of the registry (0 when the series does not exist)."""
        found = self.registry.get_sample_value(
            name, {"grpc_type": kind, "grpc_service": SERVICE, "grpc_method": method, **labels}
        )
        return 0.0 if found is None else found

    def handled(self, method: str, kind: str) -> dict[str, float]:
        """grpc_server_handled_total of a method, by code (codes never seen left out)."""
        out: dict[str, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if (
                    sample.name == "grpc_server_handled_total"
                    and sample.labels["grpc_method"] == method
                    and sample.labels["grpc_type"] == kind
                    and sample.value
                ):
                    out[sample.labels["grpc_code"]] = sample.value
        return out

    def unary_stream(self, method: str) -> grpc.aio.UnaryStreamMultiCallable[bytes, bytes]:
        return self.channel.unary_stream(f"/{SERVICE}/{method}")

    def stream_unary(self, method: str) -> grpc.aio.StreamUnaryMultiCallable[bytes, bytes]:
        return self.channel.stream_unary(f"/{SERVICE}/{method}")

    def stream_stream(self, method: str) -> grpc.aio.StreamStreamMultiCallable[bytes, bytes]:
        return self.channel.stream_stream(f"/{SERVICE}/{method}")

    async def settled(self, method: str, kind: str, calls: int) -> None:
        """Wait until `calls` calls of the method are recorded as handled: the client can see
        a call's status before the server's interceptor has recorded it (grpcio 1.75)."""
        await self.until(lambda: sum(self.handled(method, kind).values()) >= calls)

    async def until(self, check: Callable[[], bool]) -> None:
        """A cancelled call is recorded once the server sees the cancellation: wait for it."""
        for _ in range(200):
            if check():
                return
            await asyncio.sleep(0.01)
        assert check()


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[Echo]:
    server = Echo()
    await server.server.start()
    yield server
    await server.channel.close()
    await server.server.stop(None)


def unary_call(echo: Echo) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return unary_of(echo.channel)


def unary_of(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(f"/{SERVICE}/Unary")


async def test_ok_unary_calls_are_started_handled_ok_and_timed(echo: Echo) -> None:
    """Three OK calls: started 3, handled{OK} 3, three observations in the histogram."""
    for _ in range(3):
        assert await unary_call(echo)(b"ok") == b"ok"
    assert echo.value("grpc_server_started_total", "Unary", "unary") == 3
    await echo.settled("Unary", "unary", 3)
    assert echo.handled("Unary", "unary") == {"OK": 3}
    assert echo.value("grpc_server_handling_seconds_count", "Unary", "unary") == 3
    assert echo.value("grpc_server_handling_seconds_bucket", "Unary", "unary", le="+Inf") == 3
    assert 0 < echo.value("grpc_server_handling_seconds_sum", "Unary", "unary") < 1
    # Unary calls have no stream messages to count.
    assert echo.value("grpc_server_msg_received_total", "Unary", "unary") == 0


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (b"invalid", Code.INVALID_ARGUMENT),  # context.abort
        (b"missing", Code.NOT_FOUND),  # context.abort
        (b"set_code", Code.FAILED_PRECONDITION),  # context.set_code, then a normal return
        (b"boom", Code.UNKNOWN),  # an unexpected exception
    ],
)
async def test_a_failed_unary_call_is_handled_under_the_code_the_client_gets(
    echo: Echo, request_bytes: bytes, code: grpc.StatusCode
) -> None:
    """The recorded grpc_code is the status the client receives, and nothing counts as OK."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary_call(echo)(request_bytes)
    assert caught.value.code() == code
    assert echo.value("grpc_server_started_total", "Unary", "unary") == 1
    await echo.settled("Unary", "unary", 1)
    assert echo.handled("Unary", "unary") == {code.name: 1}
    assert echo.value("grpc_server_handling_seconds_count", "Unary", "unary") == 1


async def test_a_call_cancelled_by_the_client_is_handled_cancelled(echo: Echo) -> None:
    """The client cancels a call in progress: the server records CANCELLED."""
    call = unary_call(echo)(b"hang")
    await echo.until(lambda: echo.value("grpc_server_started_total", "Unary", "unary") == 1)
    call.cancel()
    await echo.until(lambda: bool(echo.handled("Unary", "unary")))
    assert echo.handled("Unary", "unary") == {"CANCELLED": 1}


async def test_a_call_past_its_deadline_is_handled_deadline_exceeded(echo: Echo) -> None:
    """The client's deadline passes while the handler works: DEADLINE_EXCEEDED on both sides."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary_call(echo)(b"hang", timeout=0.2)
    assert caught.value.code() == Code.DEADLINE_EXCEEDED
    await echo.until(lambda: bool(echo.handled("Unary", "unary")))
    assert echo.handled("Unary", "unary") == {"DEADLINE_EXCEEDED": 1}


@pytest.mark.parametrize("method", ["ServerStream", "ServerStreamWriter"])
async def test_a_server_stream_counts_the_messages_it_sends(echo: Echo, method: str) -> None:
    """Yielded (async generator) or written (context.write), each message sent counts once."""
    call = echo.unary_stream(method)(b"4")
    assert [m async for m in call] == [b"x"] * 4
    assert echo.value("grpc_server_msg_sent_total", method, "server_stream") == 4
    assert echo.value("grpc_server_started_total", method, "server_stream") == 1
    await echo.settled(method, "server_stream", 1)
    assert echo.handled(method, "server_stream") == {"OK": 1}
    assert echo.value("grpc_server_handling_seconds_count", method, "server_stream") == 1


async def test_a_server_stream_aborted_midway_is_handled_under_its_code(echo: Echo) -> None:
    """One message, then NOT_FOUND: one sent, handled{NOT_FOUND}."""
    call = echo.unary_stream("ServerStream")(b"missing")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [m async for m in call]
    assert caught.value.code() == Code.NOT_FOUND
    assert echo.value("grpc_server_msg_sent_total", "ServerStream", "server_stream") == 1
    await echo.settled("ServerStream", "server_stream", 1)
    assert echo.handled("ServerStream", "server_stream") == {"NOT_FOUND": 1}


async def test_a_client_stream_counts_the_messages_it_receives(echo: Echo) -> None:
    """Five messages in, one answer: received 5, handled{OK}."""
    answer = await echo.stream_unary("ClientStream")(iter([b"ok"] * 5))
    assert answer == b"5"
    assert echo.value("grpc_server_msg_received_total", "ClientStream", "client_stream") == 5
    assert echo.value("grpc_server_msg_sent_total", "ClientStream", "client_stream") == 0
    await echo.settled("ClientStream", "client_stream", 1)
    assert echo.handled("ClientStream", "client_stream") == {"OK": 1}


async def test_a_client_stream_that_raises_is_handled_unknown(echo: Echo) -> None:
    """The second message makes the handler raise: UNKNOWN after two received."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await echo.stream_unary("ClientStream")(iter([b"ok", b"boom"]))
    assert caught.value.code() == Code.UNKNOWN
    assert echo.value("grpc_server_msg_received_total", "ClientStream", "client_stream") == 2
    await echo.settled("ClientStream", "client_stream", 1)
    assert echo.handled("ClientStream", "client_stream") == {"UNKNOWN": 1}


async def test_a_bidi_stream_counts_both_directions(echo: Echo) -> None:
    """Three messages each way, then OK."""
    call = echo.stream_stream("BidiStream")(iter([b"a", b"b", b"c"]))
    assert [m async for m in call] == [b"a", b"b", b"c"]
    assert echo.value("grpc_server_msg_received_total", "BidiStream", "bidi_stream") == 3
    assert echo.value("grpc_server_msg_sent_total", "BidiStream", "bidi_stream") == 3
    await echo.settled("BidiStream", "bidi_stream", 1)
    assert echo.handled("BidiStream", "bidi_stream") == {"OK": 1}


async def test_a_bidi_stream_cancelled_by_the_client_is_handled_cancelled(echo: Echo) -> None:
    """The client cancels while the handler works on its second message: CANCELLED, with two
    messages received and one sent."""
    call = echo.stream_stream("BidiStream")()
    await call.write(b"a")
    assert await call.read() == b"a"
    await call.write(b"hang")
    await echo.until(
        lambda: echo.value("grpc_server_msg_received_total", "BidiStream", "bidi_stream") == 2
    )
    call.cancel()
    await echo.until(lambda: bool(echo.handled("BidiStream", "bidi_stream")))
    assert echo.handled("BidiStream", "bidi_stream") == {"CANCELLED": 1}
    assert echo.value("grpc_server_msg_sent_total", "BidiStream", "bidi_stream") == 1


async def test_a_server_stream_cancelled_by_the_client_is_handled_cancelled(echo: Echo) -> None:
    """The client cancels after the first message, while the generator works on: CANCELLED."""
    call = echo.unary_stream("ServerStream")(b"hang")
    assert await call.read() == b"x"
    call.cancel()
    await echo.until(lambda: bool(echo.handled("ServerStream", "server_stream")))
    assert echo.handled("ServerStream", "server_stream") == {"CANCELLED": 1}


async def test_in_flight_calls_beyond_the_limit_are_refused_and_counted() -> None:
    """With a limit of 1, a second concurrent call is RESOURCE_EXHAUSTED, counted as rejected
    (reason max_in_flight) and as handled; the in-flight gauge shows the call being served."""
    echo = Echo(max_in_flight=1)
    await echo.server.start()
    try:
        first = asyncio.ensure_future(unary_call(echo)(b"slow"))
        await echo.until(lambda: echo.value("grpc_server_started_total", "Unary", "unary") == 1)
        in_flight = {"service": SERVICE}
        assert echo.registry.get_sample_value("rowcast_in_flight_calls", in_flight) == 1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unary_call(echo)(b"ok")
        assert caught.value.code() == Code.RESOURCE_EXHAUSTED
        assert await first == b"slow"
        rejected = {"service": SERVICE, "reason": "max_in_flight"}
        assert echo.registry.get_sample_value("rowcast_rejected_calls_total", rejected) == 1
        await echo.settled("Unary", "unary", 2)
        assert echo.handled("Unary", "unary") == {"OK": 1, "RESOURCE_EXHAUSTED": 1}
        assert echo.registry.get_sample_value("rowcast_in_flight_calls", in_flight) == 0
    finally:
        await echo.channel.close()
        await echo.server.stop(None)


async def test_grpcs_own_limit_refuses_calls_no_interceptor_can_count() -> None:
    """Why the interceptor enforces the limit itself: a call refused by gRPC's
    maximum_concurrent_rpcs never reaches the handler the interceptor returned."""
    echo = Echo(grpc_limit=1)
    await echo.server.start()
    try:
        results = await asyncio.gather(
            unary_call(echo)(b"slow"), unary_call(echo)(b"slow"), return_exceptions=True
        )
        codes = sorted(r.code().name for r in results if isinstance(r, grpc.aio.AioRpcError))
        assert codes == ["RESOURCE_EXHAUSTED"]
        assert echo.value("grpc_server_started_total", "Unary", "unary") == 1
        await echo.settled("Unary", "unary", 1)
        assert echo.handled("Unary", "unary") == {"OK": 1}
    finally:
        await echo.channel.close()
        await echo.server.stop(None)


async def test_the_interceptor_builds_a_methods_handler_once() -> None:
    """The same method handler from the server gives the same instrumented handler back: no
    allocation per call beyond the call's own."""
    interceptor = ServerMetricsInterceptor(SERVICE, metrics=GrpcServerMetrics(CollectorRegistry()))
    base: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(unary)

    class Details:
        method = f"/{SERVICE}/Unary"
        invocation_metadata: tuple[tuple[str, str | bytes], ...] = ()

    async def continuation(_: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return base

    first = await interceptor.intercept_service(continuation, Details())
    second = await interceptor.intercept_service(continuation, Details())
    assert first is second
    assert first is not base


def scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


async def test_the_endpoint_serves_the_metrics_in_prometheus_text_format(echo: Echo) -> None:
    """GET /metrics returns the counters in the text exposition format, parseable by
    Prometheus's parser, with the values of the registry."""
    await unary_call(echo)(b"ok")
    with pytest.raises(grpc.aio.AioRpcError):
        await unary_call(echo)(b"missing")
    await echo.settled("Unary", "unary", 2)
    endpoint = serve_metrics("127.0.0.1", 0, echo.registry)
    try:
        content_type, text = await asyncio.to_thread(scrape, endpoint.port)
    finally:
        await asyncio.to_thread(endpoint.stop)
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, s.labels.get("grpc_code"), s.labels.get("le")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("grpc_method") == "Unary"
    }
    assert samples[("grpc_server_started_total", None, None)] == 2
    assert samples[("grpc_server_handled_total", "OK", None)] == 1
    assert samples[("grpc_server_handled_total", "NOT_FOUND", None)] == 1
    assert samples[("grpc_server_handling_seconds_count", None, None)] == 2
    assert samples[("grpc_server_handling_seconds_bucket", None, "0.0001")] >= 0
    assert "_created" not in text


async def test_start_server_with_metrics_serves_an_endpoint_and_measures_calls() -> None:
    """start_server(metrics=...) binds an endpoint (port 0: a free one), counts the server's
    calls in the default registry, and closes the endpoint on stop."""
    running = await start_server(
        register, [SERVICE], "127.0.0.1", 0, metrics=MetricsAddress("127.0.0.1", 0)
    )
    labels = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "Unary"}
    before = REGISTRY.get_sample_value("grpc_server_started_total", labels) or 0.0
    try:
        assert running.metrics_port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await unary_of(channel)(b"ok")
        assert REGISTRY.get_sample_value("grpc_server_started_total", labels) == before + 1
        _, text = await asyncio.to_thread(scrape, running.metrics_port)
        assert 'grpc_server_started_total{grpc_method="Unary"' in text
    finally:
        await running.stop(0.5)
    with pytest.raises(OSError):
        await asyncio.to_thread(scrape, running.metrics_port)


async def test_metrics_off_starts_no_endpoint_and_counts_nothing() -> None:
    """ROWCAST_METRICS=off: no address for any service, and a server started so has no
    metrics port and counts none of its calls."""
    settings = Settings.from_env({"ROWCAST_METRICS": "off"})
    assert settings.metrics.address("prediction") is None
    running = await start_server(
        register, [SERVICE], "127.0.0.1", 0, metrics=settings.metrics.address("prediction")
    )
    labels = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "Unary"}
    before = REGISTRY.get_sample_value("grpc_server_started_total", labels)
    try:
        assert running.metrics_port is None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await unary_of(channel)(b"ok")
        assert REGISTRY.get_sample_value("grpc_server_started_total", labels) == before
    finally:
        await running.stop(0.5)


async def test_a_taken_metrics_port_fails_the_start() -> None:
    """A metrics port already in use is an error at start, as a taken gRPC port is."""
    taken = serve_metrics("127.0.0.1", 0, CollectorRegistry())
    try:
        with pytest.raises(OSError, match="metrics endpoint"):
            await start_server(
                register, [SERVICE], "127.0.0.1", 0, metrics=MetricsAddress("127.0.0.1", taken.port)
            )
    finally:
        await asyncio.to_thread(taken.stop)


def test_metrics_settings_from_the_environment() -> None:
    """Defaults are on, 127.0.0.1 and 9464/9465/9466; replica i of `--processes N` adds 10 * i
    to each port (so replicas never take another service's default port), except a port of 0
    (a free one); a bad ROWCAST_METRICS value is refused."""
    assert Settings.from_env({}).metrics == MetricsSettings(
        enabled=True, host="127.0.0.1", prediction_port=9464, audit_port=9465, model_port=9466
    )
    replica = MetricsSettings.from_env(
        {"ROWCAST_REPLICA_INDEX": "2", "ROWCAST_AUDIT_METRICS_PORT": "0"}
    )
    assert (replica.prediction_port, replica.audit_port, replica.model_port) == (9484, 0, 9486)
    replicas = [MetricsSettings.from_env({"ROWCAST_REPLICA_INDEX": str(i)}) for i in range(8)]
    taken = [p for s in replicas for p in (s.prediction_port, s.audit_port, s.model_port)]
    assert len(taken) == len(set(taken)), "two processes would bind one metrics port"
    moved = MetricsSettings.from_env(
        {"ROWCAST_METRICS_HOST": "0.0.0.0", "ROWCAST_MODEL_METRICS_PORT": "19466"}
    )
    assert moved.address("model") == MetricsAddress("0.0.0.0", 19466)
    with pytest.raises(ValueError, match="ROWCAST_METRICS"):
        MetricsSettings.from_env({"ROWCAST_METRICS": "maybe"})


def test_the_client_and_server_histograms_share_their_buckets() -> None:
    """Client and server latency distributions can be compared bucket by bucket."""
    assert client_metrics.HANDLING_BUCKETS == HANDLING_BUCKETS


# -- the client's interceptor ------------------------------------------------------------------


class Predictions(pred_grpc.PredictionServiceServicer):
    """Answers model "known", NOT_FOUND for any other."""

    async def Predict(
        self, request: pred_pb.PredictRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pred_pb.PredictResponse:
        if request.model != "known":
            await context.abort(Code.NOT_FOUND, "no such model")
        return pred_pb.PredictResponse(output=0.5)

    async def PredictBatch(
        self, request: pred_pb.PredictBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pred_pb.PredictBatchResponse:
        raise NotImplementedError

    async def StreamPredict(
        self,
        request_iterator: AsyncIterator[pred_pb.StreamPredictRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pred_pb.StreamPredictResponse]:
        raise NotImplementedError
        yield  # an async generator, as the servicer's streaming methods are


def client_value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(
        name,
        {
            "grpc_type": "unary",
            "grpc_service": "rowcast.v1.PredictionService",
            "grpc_method": "Predict",
            **labels,
        },
    )
    return 0.0 if found is None else found


@pytest_asyncio.fixture
async def predictions() -> AsyncIterator[Targets]:
    server = grpc.aio.server()
    pred_grpc.add_PredictionServiceServicer_to_server(Predictions(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield Targets(prediction=f"127.0.0.1:{port}")
    await server.stop(None)


async def _client_counts(call: Callable[[], Awaitable[None]]) -> dict[str, float]:
    names = ("grpc_client_started_total", "grpc_client_handling_seconds_count")
    before = {n: client_value(n) for n in names}
    before |= {
        code: client_value("grpc_client_handled_total", grpc_code=code)
        for code in ("OK", "NOT_FOUND")
    }
    await call()
    after = {n: client_value(n) for n in names}
    after |= {
        code: client_value("grpc_client_handled_total", grpc_code=code)
        for code in ("OK", "NOT_FOUND")
    }
    return {key: after[key] - before[key] for key in after}


EXPECTED_CLIENT_COUNTS = {
    "grpc_client_started_total": 2,
    "grpc_client_handling_seconds_count": 2,
    "OK": 1,
    "NOT_FOUND": 1,
}


async def test_the_async_clients_metrics_count_its_calls_by_code(predictions: Targets) -> None:
    """AsyncRowcastClient(metrics=True): one OK and one NOT_FOUND Predict are counted as such."""

    async def calls() -> None:
        async with AsyncRowcastClient(predictions, metrics=True) as client:
            await client.predict("known", {"x": 1.0})
            with pytest.raises(NotFoundError):
                await client.predict("unknown", {"x": 1.0})

    assert await _client_counts(calls) == EXPECTED_CLIENT_COUNTS


async def test_the_blocking_clients_metrics_count_its_calls_by_code(predictions: Targets) -> None:
    """RowcastClient(metrics=True): the same two calls, counted the same way."""

    def blocking() -> None:
        with RowcastClient(predictions, metrics=True) as client:
            client.predict("known", {"x": 1.0})
            with pytest.raises(NotFoundError):
                client.predict("unknown", {"x": 1.0})

    async def calls() -> None:
        await asyncio.to_thread(blocking)

    assert await _client_counts(calls) == EXPECTED_CLIENT_COUNTS


async def test_a_client_without_metrics_counts_nothing(predictions: Targets) -> None:
    """The default client records no metric."""

    async def calls() -> None:
        async with AsyncRowcastClient(predictions) as client:
            await client.predict("known", {"x": 1.0})

    assert set((await _client_counts(calls)).values()) == {0}


CLIENT_WITHOUT_PROMETHEUS = """
import sys
from rowcast_client import RowcastClient, Targets
RowcastClient(Targets()).close()
assert "prometheus_client" not in sys.modules, "imported by the base client"
sys.modules["prometheus_client"] = None  # as if it were not installed
try:
    RowcastClient(Targets(), metrics=True)
except ImportError as exc:
    print(exc)
"""


def test_the_base_client_never_imports_prometheus_client() -> None:
    """rowcast_client works without prometheus_client; metrics=True without it says what to
    install."""
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_WITHOUT_PROMETHEUS],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "rowcast-client[metrics]" in out.stdout
