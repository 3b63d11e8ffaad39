"""The Python work an interceptor adds to one unary call, timed in process.

No server, no network: a unary handler is called directly, bare and through the interceptor,
N times each, on CPU time. `metrics`: `ServerMetricsInterceptor` (method lookup, started and
handled counters, the handling-time histogram, the in-flight gate). `auth`: `AuthInterceptor`
with a real Ed25519 token on every call (the metadata scan, the verified-token cache, expiry
and revocation checks, the policy look-up, the identity set for the servicer). What the
end-to-end pairs in `rowcast bench` (metrics on / off, TLS + auth on / off) cannot resolve on
a noisy machine, this can: the floor of what the interceptor costs a call (TLS itself runs in
gRPC's C core and is not in it).

    python -m rowcast_bench.interceptor_cost [--interceptor metrics|auth] [--calls 200000]
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click
import grpc
from prometheus_client import CollectorRegistry

from rowcast.security.identity import Role
from rowcast.security.interceptor import Authenticator, AuthInterceptor
from rowcast.security.tokens import TokenVerifier, issue_token, new_signing_key
from rowcast.telemetry.metrics import GrpcServerMetrics, ServerMetricsInterceptor

_METHOD = "/rowcast.v1.PredictionService/Predict"


class _Context:
    """The calls the interceptors make on a servicer context."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._metadata = metadata

    def code(self) -> None:
        return None

    def time_remaining(self) -> float:
        return 5.0

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def _auth() -> tuple[grpc.aio.ServerInterceptor, _Context]:
    """AuthInterceptor over a fresh signing key, and a context carrying a predictor token,
    as a client sends it (after gRPC's own user-agent metadata)."""
    private, public = new_signing_key()
    token = issue_token(private, "bench", frozenset({Role.PREDICTOR}), 3600).token
    interceptor = AuthInterceptor(Authenticator(TokenVerifier(public), None))
    metadata = (("user-agent", "grpc-python/1.x"), ("authorization", f"Bearer {token}"))
    return interceptor, _Context(metadata)


def _interceptor(kind: str) -> tuple[grpc.aio.ServerInterceptor, _Context]:
    if kind == "auth":
        return _auth()
    metrics = ServerMetricsInterceptor(
        "rowcast.v1.PredictionService", 2000, GrpcServerMetrics(CollectorRegistry())
    )
    return metrics, _Context()


class _Details:
    method = _METHOD
    invocation_metadata = ()


async def _behavior(request: Any, context: Any) -> Any:
    return request


async def _time(calls: int, intercepted: bool, kind: str = "metrics") -> float:
    """CPU microseconds per call."""
    handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(_behavior)

    async def continuation(details: Any) -> Any:
        return handler

    interceptor, stand_in = _interceptor(kind)
    # Stand-ins for what gRPC passes: only the attributes the interceptor reads.
    context: Any = stand_in
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
@click.option(
    "--interceptor",
    "kind",
    type=click.Choice(["metrics", "auth"]),
    default="metrics",
    show_default=True,
    help="Which interceptor to time.",
)
@click.option("--calls", type=click.IntRange(min=1000), default=200_000, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
def main(kind: str, calls: int, repeats: int) -> None:
    """Print the interceptor's added CPU per call (median of the repeats)."""
    added = []
    for _ in range(repeats):
        bare = asyncio.run(_time(calls, intercepted=False, kind=kind))
        measured = asyncio.run(_time(calls, intercepted=True, kind=kind))
        added.append(measured - bare)
        click.echo(f"bare {bare:.2f} us/call, with the {kind} interceptor {measured:.2f} us/call")
    click.echo(f"added: {sorted(added)[len(added) // 2]:.2f} us of CPU per call (median)")


if __name__ == "__main__":
    main()
