"""Builds a grpc.aio server with what every rowcast service needs: health, reflection, tuned
options, a bound port (0 picks a free one), its Prometheus metrics, and graceful stop."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from rowcast.config import MetricsAddress
from rowcast.telemetry.metrics import MetricsEndpoint, ServerMetricsInterceptor, serve_metrics

Registrar = Callable[[grpc.aio.Server], None]

#: Options tuned for many short calls from many clients.
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_concurrent_streams", 1000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


class _MethodAwarePool:
    """The default descriptor pool plus what upb's pool lacks: the file of a method symbol
    ("pkg.Service.Method"), which ghz and grpcurl ask server reflection for."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str) -> FileDescriptor:
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service, _, method = symbol.rpartition(".")
            found = self._pool.FindServiceByName(service)  # KeyError again if no such service
            if method not in found.methods_by_name:
                raise
            return found.file


@dataclass
class RunningServer:
    """A started server, the port it bound, its health servicer and its metrics endpoint."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    service_names: tuple[str, ...]
    on_stop: Callable[[], Awaitable[None]] | None = None
    metrics: MetricsEndpoint | None = None
    #: Re-read the TLS certificate and key (what SIGHUP does to `rowcast serve`).
    on_reload: Callable[[], None] | None = None

    @property
    def metrics_port(self) -> int | None:
        """The port of the /metrics endpoint; None when metrics are off."""
        return None if self.metrics is None else self.metrics.port

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, let in-flight calls finish for grace_s, run on_stop, then close
        the metrics endpoint (scrapes see the calls of the grace period)."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        if self.on_stop is not None:
            await self.on_stop()
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)


async def start_server(
    register: Registrar,
    service_names: Sequence[str],
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    max_in_flight: int | None = None,
    max_message_bytes: int | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    metrics: MetricsAddress | None = None,
    credentials: grpc.ServerCredentials | None = None,
    auth: grpc.aio.ServerInterceptor | None = None,
) -> RunningServer:
    """Start a server; beyond max_in_flight concurrent calls, new ones get RESOURCE_EXHAUSTED
    at once instead of queueing without bound.

    With `metrics`, every call is measured (telemetry/metrics.py) and an HTTP /metrics endpoint
    listens there; the metrics interceptor comes after `interceptors` and enforces the in-flight
    limit itself, counting what it refuses (gRPC's own limit refuses calls unseen). An OSError
    if the metrics port is taken, as for the gRPC port.

    `credentials` serves TLS (None: plain text, --insecure); `auth` (security/interceptor.py)
    runs innermost, so that refused calls are measured and traced like any other.
    """
    options = [*SERVER_OPTIONS, ("grpc.so_reuseport", 1 if reuse_port else 0)]
    if max_message_bytes is not None:
        options.append(("grpc.max_receive_message_length", max_message_bytes))
    chain = list(interceptors)
    if metrics is not None:
        main = service_names[0] if service_names else ""
        chain.append(ServerMetricsInterceptor(main, max_in_flight))
    if auth is not None:
        chain.append(auth)
    server = grpc.aio.server(
        options=options,
        interceptors=chain,
        maximum_concurrent_rpcs=max_in_flight if metrics is None else None,
    )
    register(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    reflection.enable_server_reflection(
        (*names, reflection.SERVICE_NAME), server, pool=_MethodAwarePool(descriptor_pool.Default())
    )
    address = f"{host}:{port}"
    bound = (
        server.add_insecure_port(address)
        if credentials is None
        else server.add_secure_port(address, credentials)
    )
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    try:
        endpoint = None if metrics is None else _serve_metrics(metrics)
    except OSError:
        await server.stop(None)  # releases the gRPC port it bound
        raise
    await server.start()
    for name in (*service_names, ""):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, bound, health, tuple(service_names), metrics=endpoint)


def _serve_metrics(address: MetricsAddress) -> MetricsEndpoint:
    try:
        return serve_metrics(address.host, address.port)
    except OSError as exc:
        raise OSError(
            f"could not bind the metrics endpoint {address.host}:{address.port} ({exc}); "
            "ROWCAST_*_METRICS_PORT moves it, ROWCAST_METRICS=off turns it off"
        ) from exc


#: Young-generation threshold while serving (Python's default is 700): a serving process makes
#: and drops a few dozen containers per call, so the default collects every few calls.
GC_GEN0_THRESHOLD = 10_000


def settle_gc() -> None:
    """Move everything start-up made (modules, protobuf descriptors, LightGBM, pandas: ~160,000
    objects) out of the collector's sight, and collect the young generation less often.

    A full collection walks every tracked object: 40 ms on a quiet core and several hundred
    under load were measured here, each one a stall of every call in flight, which is what a
    p99 many times the p50 at moderate load looks like. Frozen objects are never walked again;
    what calls make and drop is still collected."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def serve_until_signal(running: RunningServer, grace_s: float, announce: str) -> None:
    """Print the address, run until SIGINT/SIGTERM, then stop gracefully; SIGHUP re-reads the
    TLS certificate and key (new connections get them). The collector is settled first
    (settle_gc): this is a serving process from here on."""
    settle_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if running.on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, running.on_reload)
    metrics = "" if running.metrics_port is None else f", metrics on port {running.metrics_port}"
    print(f"{announce} listening on port {running.port}{metrics}", flush=True)
    await stop.wait()
    await running.stop(grace_s)
