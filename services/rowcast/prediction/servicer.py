"""PredictionService: bin the inputs, look the answer up in the active version's table, record
the decision."""

from __future__ import annotations

import time

import grpc

from rowcast.convert import SOURCE_TO_PB, features_from_pb
from rowcast.core.keys import new_decision_id, prediction_key
from rowcast.core.records import Decision, Source, check_model_name, check_subject
from rowcast.deadlines import remaining_s
from rowcast.errors import RowNotFound
from rowcast.grpc_errors import handles_errors
from rowcast.prediction.audit_sink import AuditSink
from rowcast.prediction.router import VersionRouter
from rowcast.store.predictions import PredictionStore
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc


class PredictionServicer(pred_grpc.PredictionServiceServicer):
    """Answers Predict from HBase tables and hands every decision to the audit sink."""

    def __init__(
        self,
        router: VersionRouter,
        predictions: PredictionStore,
        audit: AuditSink,
        store_timeout_s: float,
    ) -> None:
        self._router = router
        self._predictions = predictions
        self._audit = audit
        self._store_timeout_s = store_timeout_s

    @handles_errors
    async def Predict(
        self, request: pred_pb.PredictRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pred_pb.PredictResponse:
        model = check_model_name(request.model)
        subject = check_subject(request.subject)
        raw = features_from_pb(request.features)
        timeout_s = remaining_s(context, self._store_timeout_s)
        active = await self._router.resolve(model, timeout_s)
        binned = active.signature.bin(raw)
        key = prediction_key(binned.bins, active.salt_buckets)
        row = await self._predictions.get(active.table, key, remaining_s(context, timeout_s))
        if row is None:
            raise RowNotFound(
                f"version {active.version} of {model!r} has no row for key {key.hex()} "
                "(its table is incomplete)"
            )
        decision = Decision(
            decision_id=new_decision_id(),
            model=model,
            model_version=row.version,
            subject=subject,
            features=raw,
            key_hex=key.hex(),
            output=row.output,
            source=Source.HBASE,
            decide_time_ms=int(time.time() * 1000),
        )
        await self._audit.record([decision])
        return pred_pb.PredictResponse(
            output=row.output,
            model_version=row.version,
            decision_id=decision.decision_id,
            source=SOURCE_TO_PB[decision.source],
            key=decision.key_hex,
            clamped_features=binned.clamped,
        )
