"""The client's own Prometheus metrics (optional): `grpc_client_started_total`,
`grpc_client_handled_total` and `grpc_client_handling_seconds`, with the labels of
go-grpc-prometheus (grpc_type, grpc_service, grpc_method; grpc_code on handled).

Imported only by a client made with `metrics=True`; it needs prometheus_client
(`pip install 'rowcast-client[metrics]'`). The series go to prometheus_client's default registry:
expose it the way the application exposes its other metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from time import perf_counter
from typing import Any

import grpc

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "rowcast_client's metrics need prometheus_client: pip install 'rowcast-client[metrics]'"
    ) from exc

#: The server's buckets (rowcast.telemetry.metrics.HANDLING_BUCKETS): fine below 1 ms.
HANDLING_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_LABELS = ("grpc_type", "grpc_service", "grpc_method")
_OK = grpc.StatusCode.OK


class GrpcClientMetrics:
    """The grpc_client_* families, registered once in one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.started = Counter(
            "grpc_client_started_total",
            "RPCs started by the client.",
            _LABELS,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_client_handled_total",
            "RPCs completed by the client, by gRPC status code (grpc_code: OK, NOT_FOUND, ...).",
            (*_LABELS, "grpc_code"),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_client_handling_seconds",
            "Time from the start of an RPC by the client to its status, in seconds.",
            _LABELS,
            buckets=HANDLING_BUCKETS,
            registry=registry,
        )
        self._methods: dict[tuple[str | bytes, str], _MethodMetrics] = {}

    def of(self, method: str | bytes, kind: str) -> _MethodMetrics:
        """The series of one method, resolved on its first call."""
        found = self._methods.get((method, kind))
        if found is None:
            found = self._methods[(method, kind)] = _MethodMetrics(self, method, kind)
        return found


@cache
def client_metrics() -> GrpcClientMetrics:
    """The process's client metrics in the default registry, registered on first use."""
    return GrpcClientMetrics()


class _MethodMetrics:
    __slots__ = ("_by_code", "_handled", "_labels", "_ok", "seconds", "started")

    def __init__(self, metrics: GrpcClientMetrics, method: str | bytes, kind: str) -> None:
        name = method.decode() if isinstance(method, bytes) else method
        service, _, rpc = name.lstrip("/").partition("/")
        self._labels = (kind, service, rpc)
        self.started = metrics.started.labels(*self._labels)
        self.seconds = metrics.handling_seconds.labels(*self._labels)
        self._handled = metrics.handled
        self._ok = metrics.handled.labels(*self._labels, "OK")
        self._by_code: dict[grpc.StatusCode, Any] = {}

    def finish(self, started_at: float, code: grpc.StatusCode) -> None:
        self.seconds.observe(perf_counter() - started_at)
        if code is _OK:
            self._ok.inc()
            return
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._handled.labels(*self._labels, code.name)
        child.inc()


def _done_callback(calls: _MethodMetrics, started_at: float) -> Callable[[Any], None]:
    def done(call: Any) -> None:
        calls.finish(started_at, call.code())

    return done


class ClientMetricsInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Counts the blocking client's calls: started, handled by final status, seconds taken."""

    def __init__(self, metrics: GrpcClientMetrics | None = None) -> None:
        self._metrics = metrics or client_metrics()

    def _intercept(self, kind: str, continuation: Any, details: Any, request: Any) -> Any:
        calls = self._metrics.of(details.method, kind)
        calls.started.inc()
        started_at = perf_counter()
        call = continuation(details, request)
        # Called at once for a finished call, else on gRPC's thread when it finishes.
        call.add_done_callback(_done_callback(calls, started_at))
        return call

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._intercept("unary", continuation, client_call_details, request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._intercept("server_stream", continuation, client_call_details, request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._intercept("client_stream", continuation, client_call_details, request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._intercept("bidi_stream", continuation, client_call_details, request_iterator)


class AsyncClientMetricsInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Counts the async client's calls: started, handled by final status, seconds taken."""

    def __init__(self, metrics: GrpcClientMetrics | None = None) -> None:
        self._metrics = metrics or client_metrics()

    async def _unary_response(
        self, kind: str, continuation: Any, details: Any, request: Any
    ) -> Any:
        calls = self._metrics.of(details.method, kind)
        calls.started.inc()
        started_at = perf_counter()
        call = await continuation(details, request)
        # The caller awaits this call's response next: waiting for its status here delays
        # nothing, and needs no task of its own.
        try:
            code = await call.code()
        except asyncio.CancelledError:
            calls.finish(started_at, grpc.StatusCode.CANCELLED)
            raise
        calls.finish(started_at, code)
        return call

    async def _stream_response(
        self, kind: str, continuation: Any, details: Any, request: Any
    ) -> Any:
        calls = self._metrics.of(details.method, kind)
        calls.started.inc()
        started_at = perf_counter()
        call = await continuation(details, request)
        call.add_done_callback(_async_done_callback(calls, started_at))
        return call

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self._unary_response("unary", continuation, client_call_details, request)

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self._stream_response(
            "server_stream", continuation, client_call_details, request
        )

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._unary_response(
            "client_stream", continuation, client_call_details, request_iterator
        )

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._stream_response(
            "bidi_stream", continuation, client_call_details, request_iterator
        )


def _async_done_callback(calls: _MethodMetrics, started_at: float) -> Callable[[Any], None]:
    """A stream's status, once it is done: grpc.aio offers the code only as a coroutine, so one
    small task reads it (streams are long; unary calls avoid this)."""

    def done(call: Any) -> None:
        async def record() -> None:
            calls.finish(started_at, await call.code())

        task = asyncio.get_running_loop().create_task(record())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    return done


#: Tasks reading a stream's final status: the loop keeps only weak references to tasks.
_pending: set[asyncio.Task[None]] = set()
