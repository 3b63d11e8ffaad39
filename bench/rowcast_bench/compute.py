"""The alternative rowcast replaces: a PredictionService that loads the LightGBM model file
and computes every answer on request (no table, no cache, no audit).

It speaks the same contract as rowcast, encodes inputs the way training did (numbers as they
are, categories as vocabulary indices, unknown categories as missing) and predicts one row
per request with LightGBM's Python API, single-threaded, on the event loop: on one pinned
core a thread pool would only add hand-offs.

    python -m rowcast_bench.compute --port 50062 --model-file v1.txt --signature-file sig.json \
        [--tls-dir .rowcast/tls]

--tls-dir serves TLS, as rowcast_bench.echo does.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from pathlib import Path

import click
import grpc
import lightgbm as lgb
import numpy as np

from rowcast.core.keys import new_decision_id
from rowcast.core.signature import CategoricalFeature, Signature
from rowcast.server import serve_until_signal, start_server
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast.v1 import resources_pb2 as pb
from rowcast_bench.echo import tls_credentials

SERVICE_NAME = pred_pb.DESCRIPTOR.services_by_name["PredictionService"].full_name


class RowEncoder:
    """Turns one request's features into the model's input row, as training encoded them."""

    def __init__(self, signature: Signature) -> None:
        self._features = signature.features
        self._vocab = {
            f.name: {v: float(i) for i, v in enumerate(f.vocabulary)}
            for f in signature.features
            if isinstance(f, CategoricalFeature)
        }

    def row(self, features: Mapping[str, pb.FeatureValue]) -> np.ndarray:
        values = []
        for f in self._features:
            given = features.get(f.name)
            if given is None:
                raise KeyError(f.name)
            if f.name in self._vocab:
                values.append(self._vocab[f.name].get(given.string_value, math.nan))
            else:
                values.append(given.number_value)
        return np.asarray([values], dtype=float)


class ComputeServicer(pred_grpc.PredictionServiceServicer):
    """Answers Predict by running the booster on the request's inputs."""

    def __init__(self, booster: lgb.Booster, encoder: RowEncoder, version: int) -> None:
        self._booster = booster
        self._encoder = encoder
        self._version = version

    async def Predict(
        self, request: pred_pb.PredictRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pred_pb.PredictResponse:
        try:
            row = self._encoder.row(request.features)
        except KeyError as missing:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"missing feature {missing}")
        output = float(self._booster.predict(row, num_threads=1)[0])
        return pred_pb.PredictResponse(
            output=output,
            model_version=self._version,
            decision_id=new_decision_id(),
            source=pb.PREDICTION_SOURCE_UNSPECIFIED,
        )


async def serve(
    host: str, port: int, servicer: ComputeServicer, tls_dir: Path | None = None
) -> None:
    running = await start_server(
        lambda s: pred_grpc.add_PredictionServiceServicer_to_server(servicer, s),
        [SERVICE_NAME],
        host,
        port,
        credentials=tls_credentials(tls_dir),
    )
    await serve_until_signal(running, 1.0, "rowcast bench compute server")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, required=True, help="Port to bind (0 picks a free one).")
@click.option(
    "--model-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="LightGBM model file (as `rowcast publish` saves it).",
)
@click.option(
    "--signature-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The model's signature as JSON (Signature.to_dict), for the input encoding.",
)
@click.option("--version", type=int, default=0, show_default=True, help="Version to report.")
@click.option(
    "--tls-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Serve TLS with server.pem and server-key.pem from here (default: plain text).",
)
def main(
    host: str,
    port: int,
    model_file: Path,
    signature_file: Path,
    version: int,
    tls_dir: Path | None,
) -> None:
    """Serve the compute-on-request PredictionService until SIGINT/SIGTERM."""
    booster = lgb.Booster(model_file=str(model_file))
    signature = Signature.from_dict(json.loads(signature_file.read_text()))
    # Predict only, on purpose: the generated base answers the other RPCs UNIMPLEMENTED.
    servicer = ComputeServicer(booster, RowEncoder(signature), version)  # type: ignore[abstract]
    asyncio.run(serve(host, port, servicer, tls_dir))


if __name__ == "__main__":
    main()
