"""A prediction server spooling its decisions to an AuditService, both real and in process over
the in-memory stores, traced or not: what test_tracing.py and test_logs.py call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry.sdk.trace import TracerProvider

from rowcast.audit.servicer import AuditServicer
from rowcast.core.keys import prediction_key
from rowcast.core.records import PredictionRow
from rowcast.core.signature import NumericFeature, Signature
from rowcast.prediction.answerer import Answerer
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
from rowcast.prediction.lookup import Lookup, VersionCaches
from rowcast.prediction.router import VersionRouter
from rowcast.prediction.servicer import PredictionServicer
from rowcast.server import RunningServer, start_server
from rowcast.store.memory import MemoryDecisions, MemoryModels, MemoryPredictions
from rowcast.store.schema import prediction_table
from rowcast.telemetry import tracing
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast.v1 import resources_pb2 as pb

MODEL = "credit"
VERSION = 3
SALT_BUCKETS = 2
#: One feature, two bins (below and above 100).
SIGNATURE = Signature(
    (NumericFeature("balance", edges=(100.0,), representatives=(50.0, 150.0), lower=0, upper=200),)
)


@dataclass
class Suite:
    """The two servers, the sink between them, their stores and a channel to the first."""

    prediction: RunningServer
    audit: RunningServer
    sink: AuditSink
    store: MemoryDecisions
    predictions: MemoryPredictions
    channel: grpc.aio.Channel

    @property
    def stub(self) -> pred_grpc.PredictionServiceAsyncStub:
        return pred_grpc.PredictionServiceStub(self.channel)


async def start_suite(tmp_path: Path, provider: TracerProvider | None) -> Suite:
    """Both servers on free ports, traced with `provider` (None: tracing off)."""
    interceptors = tracing.server_interceptors(provider)
    store = MemoryDecisions()
    audit_servicer = AuditServicer(store, 2.0)
    audit = await start_server(
        lambda s: audit_grpc.add_AuditServiceServicer_to_server(audit_servicer, s),
        ["rowcast.v1.AuditService"],
        "127.0.0.1",
        0,
        interceptors=interceptors,
    )
    models = MemoryModels()
    models.add(MODEL, SIGNATURE, salt_buckets=SALT_BUCKETS, aliases={"current": VERSION})
    predictions = MemoryPredictions()
    table = prediction_table(MODEL, VERSION)
    predictions.create(table)
    for b in range(2):
        key = prediction_key((b,), SALT_BUCKETS)
        predictions.put(table, key, PredictionRow(0.25 + b / 2, VERSION))
    sink = AuditSink(f"127.0.0.1:{audit.port}", SpoolConfig(tmp_path / "spool"))
    await sink.start()
    answerer = Answerer(
        VersionRouter(models, refresh_s=3600.0),
        Lookup(predictions, VersionCaches(100), 2.0),
        sink,
        2.0,
        None,
    )
    servicer = PredictionServicer(answerer, 2.0)
    prediction = await start_server(
        lambda s: pred_grpc.add_PredictionServiceServicer_to_server(servicer, s),
        ["rowcast.v1.PredictionService"],
        "127.0.0.1",
        0,
        interceptors=interceptors,
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{prediction.port}")
    return Suite(prediction, audit, sink, store, predictions, channel)


async def stop_suite(suite: Suite) -> None:
    await suite.channel.close()
    await suite.prediction.stop(0.1)
    await suite.sink.stop(drain_timeout_s=1.0)
    await suite.audit.stop(0.1)


def request(balance: float = 50.0, model: str = MODEL) -> pred_pb.PredictRequest:
    return pred_pb.PredictRequest(
        model=model, features={"balance": pb.FeatureValue(number_value=balance)}
    )
