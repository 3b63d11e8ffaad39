"""The rowcast Python client: async (`AsyncRowcastClient`) and sync (`RowcastClient`).

Every call carries a deadline (the client's default, or `timeout=` per call); failures raise
typed `RowcastClientError`s with the status code, ErrorInfo reason and bad fields. Read-only
calls are retried on UNAVAILABLE by gRPC itself (service config), never Predict or writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import model_service_pb2_grpc as model_grpc
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast.v1 import resources_pb2 as pb
from rowcast_client.errors import RowcastClientError, from_rpc_error
from rowcast_client.model_admin import AsyncModelAdmin, ModelAdmin

FeatureInput = Mapping[str, float | int | str]

DEFAULT_TIMEOUT_S = 2.0

_READ_METHODS = [
    {"service": "rowcast.v1.AuditService", "method": "GetDecision"},
    {"service": "rowcast.v1.AuditService", "method": "ListDecisions"},
    {"service": "rowcast.v1.AuditService", "method": "CountDecisions"},
    {"service": "rowcast.v1.ModelService", "method": "ListModels"},
    {"service": "rowcast.v1.ModelService", "method": "GetModel"},
    {"service": "rowcast.v1.ModelService", "method": "ListVersions"},
    {"service": "rowcast.v1.ModelService", "method": "GetVersion"},
]
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": _READ_METHODS,
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.service_config", SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
]


@dataclass(frozen=True)
class Targets:
    """Addresses (host:port) of the three services."""

    prediction: str = "127.0.0.1:50051"
    audit: str = "127.0.0.1:50052"
    model: str = "127.0.0.1:50053"


def feature_values(features: FeatureInput) -> dict[str, pb.FeatureValue]:
    out: dict[str, pb.FeatureValue] = {}
    for name, value in features.items():
        if isinstance(value, str):
            out[name] = pb.FeatureValue(string_value=value)
        elif isinstance(value, bool):
            raise TypeError(f"feature {name!r}: booleans are not feature values")
        else:
            out[name] = pb.FeatureValue(number_value=float(value))
    return out


def predict_request(
    model: str, features: FeatureInput, subject: str, alias: str = ""
) -> pred_pb.PredictRequest:
    return pred_pb.PredictRequest(
        model=model, features=feature_values(features), subject=subject, alias=alias
    )


def predict_batch_request(
    model: str, inputs: Sequence[FeatureInput], subjects: Sequence[str] | None
) -> pred_pb.PredictBatchRequest:
    subjects = subjects or [""] * len(inputs)
    return pred_pb.PredictBatchRequest(
        model=model,
        inputs=[
            pred_pb.PredictInput(features=feature_values(f), subject=s)
            for f, s in zip(inputs, subjects, strict=True)
        ],
    )


def _timestamp(when: datetime | None) -> Timestamp | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise ValueError("start_time/end_time must be timezone-aware datetimes")
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


def list_decisions_request(
    subject: str,
    *,
    model: str,
    model_version: int,
    key: str,
    start_time: datetime | None,
    end_time: datetime | None,
    page_size: int,
    page_token: str,
) -> audit_pb.ListDecisionsRequest:
    return audit_pb.ListDecisionsRequest(
        subject=subject,
        model=model,
        model_version=model_version,
        key=key,
        start_time=_timestamp(start_time),
        end_time=_timestamp(end_time),
        page_size=page_size,
        page_token=page_token,
    )


def augment_request(
    decision_id: str,
    better_output: float,
    *,
    actor: str,
    source: pb.AugmentationSource,
    reason: str,
    state: pb.AugmentationState,
    request_id: str = "",
) -> audit_pb.AugmentRequest:
    return audit_pb.AugmentRequest(
        decision_id=decision_id,
        augmentation=pb.Augmentation(
            better_output=better_output, source=source, actor=actor, reason=reason, state=state
        ),
        request_id=request_id,
    )


class AsyncRowcastClient(AsyncModelAdmin):
    """Async client of the three rowcast services (grpc.aio)."""

    def __init__(self, targets: Targets, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._channels = [
            grpc.aio.insecure_channel(t, options=CHANNEL_OPTIONS)
            for t in (targets.prediction, targets.audit, targets.model)
        ]
        self._predict = pred_grpc.PredictionServiceStub(self._channels[0])
        self._audit = audit_grpc.AuditServiceStub(self._channels[1])
        self._models = model_grpc.ModelServiceStub(self._channels[2])

    async def __aenter__(self) -> AsyncRowcastClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, timeout=timeout or self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    async def predict(
        self,
        model: str,
        features: FeatureInput,
        *,
        subject: str = "",
        alias: str = "",
        timeout: float | None = None,
    ) -> pred_pb.PredictResponse:
        return await self._call(  # type: ignore[no-any-return]
            self._predict.Predict, predict_request(model, features, subject, alias), timeout
        )

    async def predict_batch(
        self,
        model: str,
        inputs: Sequence[FeatureInput],
        *,
        subjects: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> list[pred_pb.PredictResponse]:
        """Answers for up to 1,000 inputs, all from one model version (all-or-nothing)."""
        request = predict_batch_request(model, inputs, subjects)
        response = await self._call(self._predict.PredictBatch, request, timeout)
        return list(response.responses)

    async def stream_predict(
        self, model: str, inputs: Iterable[FeatureInput], *, timeout: float | None = None
    ) -> AsyncIterator[pred_pb.PredictResponse]:
        """Answers for a stream of inputs over one call, in order."""
        requests = (
            pred_pb.StreamPredictRequest(request=predict_request(model, f, "")) for f in inputs
        )
        call = self._predict.StreamPredict(requests, timeout=timeout or self._timeout_s)
        try:
            async for message in call:
                yield message.response
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    async def get_decision(self, decision_id: str, *, timeout: float | None = None) -> pb.Decision:
        response = await self._call(
            self._audit.GetDecision, audit_pb.GetDecisionRequest(decision_id=decision_id), timeout
        )
        return response.decision  # type: ignore[no-any-return]

    async def list_decisions(
        self,
        subject: str = "",
        *,
        model: str = "",
        model_version: int = 0,
        key: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> audit_pb.ListDecisionsResponse:
        """One page of decisions, newest first: of a subject, of a model version (model +
        model_version), of an input key (model + key) or all; optionally in [start, end)."""
        request = list_decisions_request(
            subject,
            model=model,
            model_version=model_version,
            key=key,
            start_time=start_time,
            end_time=end_time,
            page_size=page_size,
            page_token=page_token,
        )
        return await self._call(self._audit.ListDecisions, request, timeout)  # type: ignore[no-any-return]

    async def count_decisions(
        self, model: str, *, timeout: float | None = None
    ) -> list[audit_pb.DecisionCount]:
        """Decisions of model per version (newest first) and per latest augmentation state."""
        request = audit_pb.CountDecisionsRequest(model=model)
        return list((await self._call(self._audit.CountDecisions, request, timeout)).counts)

    async def augment(
        self,
        decision_id: str,
        better_output: float,
        *,
        actor: str,
        source: pb.AugmentationSource = pb.AUGMENTATION_SOURCE_PERSON,
        reason: str = "",
        state: pb.AugmentationState = pb.AUGMENTATION_STATE_PROPOSED,
        request_id: str = "",
        timeout: float | None = None,
    ) -> pb.Decision:
        """Attach a better answer; with `request_id`, a retry records it only once."""
        response = await self.augment_response(
            decision_id,
            better_output,
            actor=actor,
            source=source,
            reason=reason,
            state=state,
            request_id=request_id,
            timeout=timeout,
        )
        return response.decision

    async def augment_response(
        self,
        decision_id: str,
        better_output: float,
        *,
        actor: str,
        source: pb.AugmentationSource = pb.AUGMENTATION_SOURCE_PERSON,
        reason: str = "",
        state: pb.AugmentationState = pb.AUGMENTATION_STATE_PROPOSED,
        request_id: str = "",
        timeout: float | None = None,
    ) -> audit_pb.AugmentResponse:
        """As `augment`, with the whole response (`replayed`: the request_id was recorded
        before and nothing was written)."""
        request = augment_request(
            decision_id,
            better_output,
            actor=actor,
            source=source,
            reason=reason,
            state=state,
            request_id=request_id,
        )
        return await self._call(self._audit.Augment, request, timeout)  # type: ignore[no-any-return]

    async def list_models(self, *, timeout: float | None = None) -> list[pb.Model]:
        response = await self._call(self._models.ListModels, model_pb.ListModelsRequest(), timeout)
        return list(response.models)

    async def get_model(self, model: str, *, timeout: float | None = None) -> pb.Model:
        response = await self._call(
            self._models.GetModel, model_pb.GetModelRequest(model=model), timeout
        )
        return response.model  # type: ignore[no-any-return]

    async def list_versions(
        self, model: str, *, timeout: float | None = None
    ) -> list[pb.ModelVersion]:
        response = await self._call(
            self._models.ListVersions, model_pb.ListVersionsRequest(model=model), timeout
        )
        return list(response.versions)

    async def get_version(
        self, model: str, version: int, *, timeout: float | None = None
    ) -> pb.ModelVersion:
        response = await self._call(
            self._models.GetVersion,
            model_pb.GetVersionRequest(model=model, version=version),
            timeout,
        )
        return response.version  # type: ignore[no-any-return]

    async def activate_version(
        self,
        model: str,
        version: int,
        *,
        actor: str,
        reason: str = "",
        timeout: float | None = None,
    ) -> pb.Model:
        """Switch MODEL to VERSION; the model after the switch (see `activate` for more)."""
        response = await self.activate(model, version, actor=actor, reason=reason, timeout=timeout)
        return response.model

    async def activate(
        self,
        model: str,
        version: int,
        *,
        actor: str,
        reason: str = "",
        timeout: float | None = None,
    ) -> model_pb.ActivateVersionResponse:
        """Switch MODEL to VERSION; the whole response, with how far the switch had reached
        the running prediction servers (`propagation`)."""
        request = model_pb.ActivateVersionRequest(
            model=model, version=version, actor=actor, reason=reason
        )
        return await self._call(self._models.ActivateVersion, request, timeout)  # type: ignore[no-any-return]

    async def rollback(
        self, model: str, *, actor: str, reason: str = "", timeout: float | None = None
    ) -> model_pb.RollbackModelResponse:
        """Serve the previous version again; the whole response, with `propagation`."""
        request = model_pb.RollbackModelRequest(model=model, actor=actor, reason=reason)
        return await self._call(self._models.RollbackModel, request, timeout)  # type: ignore[no-any-return]


class RowcastClient(ModelAdmin):
    """Blocking client of the three rowcast services, for scripts and the CLI."""

    def __init__(self, targets: Targets, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._channels = [
            grpc.insecure_channel(t, options=CHANNEL_OPTIONS)
            for t in (targets.prediction, targets.audit, targets.model)
        ]
        self._predict = pred_grpc.PredictionServiceStub(self._channels[0])
        self._audit = audit_grpc.AuditServiceStub(self._channels[1])
        self._models = model_grpc.ModelServiceStub(self._channels[2])

    def __enter__(self) -> RowcastClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return method(request, timeout=timeout or self._timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def predict(
        self,
        model: str,
        features: FeatureInput,
        *,
        subject: str = "",
        alias: str = "",
        timeout: float | None = None,
    ) -> pred_pb.PredictResponse:
        return self._call(  # type: ignore[no-any-return]
            self._predict.Predict, predict_request(model, features, subject, alias), timeout
        )

    def predict_batch(
        self,
        model: str,
        inputs: Sequence[FeatureInput],
        *,
        subjects: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> list[pred_pb.PredictResponse]:
        """Answers for up to 1,000 inputs, all from one model version (all-or-nothing)."""
        request = predict_batch_request(model, inputs, subjects)
        return list(self._call(self._predict.PredictBatch, request, timeout).responses)

    def get_decision(self, decision_id: str, *, timeout: float | None = None) -> pb.Decision:
        response = self._call(
            self._audit.GetDecision, audit_pb.GetDecisionRequest(decision_id=decision_id), timeout
        )
        return response.decision  # type: ignore[no-any-return]

    def list_decisions(
        self,
        subject: str = "",
        *,
        model: str = "",
        model_version: int = 0,
        key: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> audit_pb.ListDecisionsResponse:
        """One page of decisions, newest first: of a subject, of a model version (model +
        model_version), of an input key (model + key) or all; optionally in [start, end)."""
        request = list_decisions_request(
            subject,
            model=model,
            model_version=model_version,
            key=key,
            start_time=start_time,
            end_time=end_time,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._audit.ListDecisions, request, timeout)  # type: ignore[no-any-return]

    def count_decisions(
        self, model: str, *, timeout: float | None = None
    ) -> list[audit_pb.DecisionCount]:
        """Decisions of model per version (newest first) and per latest augmentation state."""
        request = audit_pb.CountDecisionsRequest(model=model)
        return list(self._call(self._audit.CountDecisions, request, timeout).counts)

    def augment(
        self,
        decision_id: str,
        better_output: float,
        *,
        actor: str,
        source: pb.AugmentationSource = pb.AUGMENTATION_SOURCE_PERSON,
        reason: str = "",
        state: pb.AugmentationState = pb.AUGMENTATION_STATE_PROPOSED,
        request_id: str = "",
        timeout: float | None = None,
    ) -> pb.Decision:
        """Attach a better answer; with `request_id`, a retry records it only once."""
        request = augment_request(
            decision_id,
            better_output,
            actor=actor,
            source=source,
            reason=reason,
            state=state,
            request_id=request_id,
        )
        return self._call(self._audit.Augment, request, timeout).decision  # type: ignore[no-any-return]

    def list_models(self, *, timeout: float | None = None) -> list[pb.Model]:
        return list(
            self._call(self._models.ListModels, model_pb.ListModelsRequest(), timeout).models
        )

    def get_model(self, model: str, *, timeout: float | None = None) -> pb.Model:
        response = self._call(self._models.GetModel, model_pb.GetModelRequest(model=model), timeout)
        return response.model  # type: ignore[no-any-return]

    def list_versions(self, model: str, *, timeout: float | None = None) -> list[pb.ModelVersion]:
        request = model_pb.ListVersionsRequest(model=model)
        return list(self._call(self._models.ListVersions, request, timeout).versions)

    def get_version(
        self, model: str, version: int, *, timeout: float | None = None
    ) -> pb.ModelVersion:
        request = model_pb.GetVersionRequest(model=model, version=version)
        return self._call(self._models.GetVersion, request, timeout).version  # type: ignore[no-any-return]

    def activate_version(
        self,
        model: str,
        version: int,
        *,
        actor: str,
        reason: str = "",
        timeout: float | None = None,
    ) -> pb.Model:
        """Switch MODEL to VERSION; the model after the switch (see `activate` for more)."""
        return self.activate(model, version, actor=actor, reason=reason, timeout=timeout).model

    def activate(
        self,
        model: str,
        version: int,
        *,
        actor: str,
        reason: str = "",
        timeout: float | None = None,
    ) -> model_pb.ActivateVersionResponse:
        """Switch MODEL to VERSION; the whole response, with how far the switch had reached
        the running prediction servers (`propagation`)."""
        request = model_pb.ActivateVersionRequest(
            model=model, version=version, actor=actor, reason=reason
        )
        return self._call(self._models.ActivateVersion, request, timeout)  # type: ignore[no-any-return]

    def rollback(
        self, model: str, *, actor: str, reason: str = "", timeout: float | None = None
    ) -> model_pb.RollbackModelResponse:
        """Serve the previous version again; the whole response, with `propagation`."""
        request = model_pb.RollbackModelRequest(model=model, actor=actor, reason=reason)
        return self._call(self._models.RollbackModel, request, timeout)  # type: ignore[no-any-return]


__all__ = ["AsyncRowcastClient", "RowcastClient", "RowcastClientError", "Targets"]
