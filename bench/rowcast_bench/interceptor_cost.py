"""The Python work the gRPC metrics interceptor adds to one unary call, timed in process.

No server, no network: a unary handler is called directly, bare and through
`ServerMetricsInterceptor` (method lookup, started and handled counters, the handling-time
histogram, the in-flight gate), N times each, on CPU time. What the end-to-end pair in
`rowcast bench` (metrics on / off) cannot resolve on a noisy machine, this can: the floor of
what metrics cost a call.

    python -m rowcast_bench.interceptor_cost [--calls 200000] [--repeats 3]
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click
import grpc
from prometheus_client import CollectorRegistry

from rowcast.telemetry.metrics import GrpcServerMetrics, ServerMetricsInterceptor

_METHOD = "/rowcast.v1.PredictionService/Predict"


class _Context:
    """The two calls the interceptor makes on a servicer context."""

    def code(self) -> None:
        return None

    def time_remaining(self) -> float:
        return 5.0


class _Details:
    method = _METHOD
    invocation_metadata = ()


async def _behavior(request: Any, context: Any) -> Any:
    return request


async def _time(calls: int, intercepted: bool) -> float:
    """CPU microseconds per call."""
    handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(_behavior)

    async def continuation(details: Any) -> Any:
        return handler

    interceptor = ServerMetricsInterceptor(
        "rowcast.v1.PredictionService", 2000, GrpcServerMetrics(CollectorRegistry())
    )
    # Stand-ins for what gRPC passes: only the attributes the interceptor reads.
    context: Any = _Context()
    details: Any = _Details()
    start = time.process_time()
    for _ in range(calls):
        chosen: Any
        if intercepted:
            chosen = await interceptor.intercept_service(continuation, details)
        else:
            chosen = await continuation(details)
        await chosen.unary_unary(None, context)
    return (time.process_time() - start) / calls * 1e6


@click.command()
@click.option("--calls", type=click.IntRange(min=1000), default=200_000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
def main(calls: int, repeats: int) -> None:
    """Print the interceptor's added CPU per call (median of the repeats)."""
    added = []
    for _ in range(repeats):
        bare = asyncio.run(_time(calls, intercepted=False))
        measured = asyncio.run(_time(calls, intercepted=True))
        added.append(measured - bare)
        click.echo(f"bare {bare:.2f} us/call, with the metrics interceptor {measured:.2f} us/call")
    click.echo(f"added: {sorted(added)[len(added) // 2]:.2f} us of CPU per call (median)")


if __name__ == "__main__":
    main()
