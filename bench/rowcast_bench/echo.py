"""The Python gRPC floor: a grpc.aio PredictionService that answers every Predict with one
fixed PredictResponse of a real answer's size, doing no work of its own.

Whatever rowcast's Predict costs beyond this server is rowcast's own; the same server
factory (`rowcast.server.start_server`: same options, health, reflection) builds both. With
--tls-dir it serves TLS with the certificate there, like a secure rowcast server (the
transport is then part of the floor; token checks are not: they are rowcast's own work).

    python -m rowcast_bench.echo --port 50061 [--tls-dir .rowcast/tls]
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import grpc

from rowcast.config import SecuritySettings
from rowcast.core.keys import new_decision_id
from rowcast.security.runtime import ReloadableTls
from rowcast.server import serve_until_signal, start_server
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast.v1 import resources_pb2 as pb

SERVICE_NAME = pred_pb.DESCRIPTOR.services_by_name["PredictionService"].full_name


def fixed_response() -> pred_pb.PredictResponse:
    """A response shaped like a real cache hit: output, version, 32-hex id, 7-byte key."""
    return pred_pb.PredictResponse(
        output=0.0123456789,
        model_version=1,
        decision_id=new_decision_id(),
        source=pb.PREDICTION_SOURCE_CACHE,
        key="0a003100170000",
    )


class EchoServicer(pred_grpc.PredictionServiceServicer):
    """Answers Predict with the same prebuilt response; the other RPCs stay UNIMPLEMENTED."""

    def __init__(self) -> None:
        self._response = fixed_response()

    async def Predict(
        self, request: pred_pb.PredictRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pred_pb.PredictResponse:
        return self._response


def tls_credentials(tls_dir: Path | None) -> grpc.ServerCredentials | None:
    """TLS with the server certificate in `tls_dir` (None: plain text), as rowcast serves it."""
    if tls_dir is None:
        return None
    return ReloadableTls(SecuritySettings(tls_dir=tls_dir)).credentials


async def serve(host: str, port: int, tls_dir: Path | None = None) -> None:
    # Predict only, on purpose: the generated base answers the other RPCs UNIMPLEMENTED.
    servicer = EchoServicer()  # type: ignore[abstract]
    running = await start_server(
        lambda s: pred_grpc.add_PredictionServiceServicer_to_server(servicer, s),
        [SERVICE_NAME],
        host,
        port,
        credentials=tls_credentials(tls_dir),
    )
    await serve_until_signal(running, 1.0, "rowcast bench echo server")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, required=True, help="Port to bind (0 picks a free one).")
@click.option(
    "--tls-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Serve TLS with server.pem and server-key.pem from here (default: plain text).",
)
def main(host: str, port: int, tls_dir: Path | None) -> None:
    """Serve the echo PredictionService until SIGINT/SIGTERM."""
    asyncio.run(serve(host, port, tls_dir))


if __name__ == "__main__":
    main()
