"""The async rowcast client (grpc.aio): one method per RPC of the three services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import model_service_pb2_grpc as model_grpc
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast.v1 import resources_pb2 as pb
from rowcast_client.channel import (
    CHANNEL_OPTIONS,
    DEFAULT_TIMEOUT_S,
    WATCH_TIMEOUT_S,
    Targets,
    aio_channel,
    call_timeout,
    check_default_timeout,
)
from rowcast_client.engines import ENGINES, Engine
from rowcast_client.errors import from_rpc_error
from rowcast_client.messages import (
    FeatureInput,
    augment_request,
    create_version_request,
    list_decisions_request,
    predict_batch_request,
    predict_request,
)

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)


class AsyncRowcastClient:
    """Async client of PredictionService, AuditService and ModelService: one method per RPC
    (RecordDecisions and StreamDecisions are the prediction servers' own), each with a
    deadline (`timeout=`, else the client's `timeout_s`) and typed errors."""

    def __init__(
        self, targets: Targets, timeout_s: float = DEFAULT_TIMEOUT_S, *, metrics: bool = False
    ) -> None:
        """`metrics=True` records the grpc_client_* metrics of every call in
        prometheus_client's default registry (needs `rowcast-client[metrics]`)."""
        self._timeout_s = check_default_timeout(timeout_s)
        interceptors: list[grpc.aio.ClientInterceptor] = []
        if metrics:
            from rowcast_client.metrics import AsyncClientMetricsInterceptor

            interceptors.append(AsyncClientMetricsInterceptor())
        self._channels = [
            aio_channel(t, targets.credentials, CHANNEL_OPTIONS, interceptors)
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
        """Close the three channels; calls in flight are cancelled."""
        for channel in self._channels:
            await channel.close()

    async def _unary(
        self,
        rpc: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        timeout: float | None,
    ) -> _Resp:
        deadline = call_timeout(timeout, self._timeout_s)
        try:
            return await rpc(request, timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    # PredictionService

    async def predict(
        self,
        model: str,
        features: FeatureInput,
        *,
        subject: str = "",
        alias: str = "",
        timeout: float | None = None,
    ) -> pred_pb.PredictResponse:
        """Predict: the answer of the model's current version (or of `alias`) for one input."""
        request = predict_request(model, features, subject, alias)
        return await self._unary(self._predict.Predict, request, timeout)

    async def predict_batch(
        self,
        model: str,
        inputs: Sequence[FeatureInput],
        *,
        subjects: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> list[pred_pb.PredictResponse]:
        """PredictBatch: answers for up to 1,000 inputs, all from one model version
        (all-or-nothing)."""
        request = predict_batch_request(model, inputs, subjects)
        return list((await self._unary(self._predict.PredictBatch, request, timeout)).responses)

    async def stream_predict(
        self, model: str, inputs: Iterable[FeatureInput], *, timeout: float | None = None
    ) -> AsyncIterator[pred_pb.PredictResponse]:
        """StreamPredict: answers for a stream of inputs over one call, in order; `timeout`
        bounds the whole stream."""
        requests = (
            pred_pb.StreamPredictRequest(request=predict_request(model, f, "")) for f in inputs
        )
        deadline = call_timeout(timeout, self._timeout_s)
        call = self._predict.StreamPredict(requests, timeout=deadline)
        try:
            async for message in call:
                yield message.response
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()  # a no-op once the stream is done; ends it if the caller stops early

    # AuditService

    async def get_decision(self, decision_id: str, *, timeout: float | None = None) -> pb.Decision:
        """GetDecision: one decision with its augmentations."""
        request = audit_pb.GetDecisionRequest(decision_id=decision_id)
        return (await self._unary(self._audit.GetDecision, request, timeout)).decision

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
        """ListDecisions: one page of decisions, newest first: of a subject, of a model version
        (model + model_version), of an input key (model + key) or all; optionally in
        [start_time, end_time)."""
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
        return await self._unary(self._audit.ListDecisions, request, timeout)

    async def count_decisions(
        self, model: str, *, timeout: float | None = None
    ) -> list[audit_pb.DecisionCount]:
        """CountDecisions: decisions of model per version (newest first) and per latest
        augmentation state."""
        request = audit_pb.CountDecisionsRequest(model=model)
        return list((await self._unary(self._audit.CountDecisions, request, timeout)).counts)

    async def augment(
        self,
        decision_id: str,
        better_output: float,
        *,
        actor: str = "",
        source: pb.AugmentationSource.ValueType = pb.AUGMENTATION_SOURCE_PERSON,
        reason: str = "",
        state: pb.AugmentationState.ValueType = pb.AUGMENTATION_STATE_PROPOSED,
        request_id: str = "",
        timeout: float | None = None,
    ) -> audit_pb.AugmentResponse:
        """Augment: attach a better answer; the decision after it, and `replayed` when a retry
        with the same `request_id` found it recorded already (nothing written again)."""
        request = augment_request(
            decision_id,
            better_output,
            actor=actor,
            source=source,
            reason=reason,
            state=state,
            request_id=request_id,
        )
        return await self._unary(self._audit.Augment, request, timeout)

    # ModelService: models and versions

    async def list_models(self, *, timeout: float | None = None) -> list[pb.Model]:
        """ListModels: the registered models (the first page, up to 50)."""
        request = model_pb.ListModelsRequest()
        return list((await self._unary(self._models.ListModels, request, timeout)).models)

    async def get_model(self, model: str, *, timeout: float | None = None) -> pb.Model:
        """GetModel: one model."""
        request = model_pb.GetModelRequest(model=model)
        return (await self._unary(self._models.GetModel, request, timeout)).model

    async def register_model(self, model: pb.Model, *, timeout: float | None = None) -> pb.Model:
        """RegisterModel: a new model (name, signature, output kind), as stored."""
        request = model_pb.RegisterModelRequest(model=model)
        return (await self._unary(self._models.RegisterModel, request, timeout)).model

    async def list_versions(
        self, model: str, *, timeout: float | None = None
    ) -> list[pb.ModelVersion]:
        """ListVersions: the model's versions, newest first (the first page, up to 50)."""
        request = model_pb.ListVersionsRequest(model=model)
        return list((await self._unary(self._models.ListVersions, request, timeout)).versions)

    async def get_version(
        self, model: str, version: int, *, timeout: float | None = None
    ) -> pb.ModelVersion:
        """GetVersion: one version of a model."""
        request = model_pb.GetVersionRequest(model=model, version=version)
        return (await self._unary(self._models.GetVersion, request, timeout)).version

    async def create_version(
        self,
        model: str,
        *,
        creator: str = "",
        lightgbm_model: bytes | None = None,
        training: model_pb.TrainingSpec | None = None,
        evaluation_dataset: str = "",
        timeout: float | None = None,
    ) -> pb.ModelVersion:
        """CreateVersion: a new REGISTERED version from an uploaded model or by training (give
        exactly one); an uploaded one is evaluated (fidelity, at materialisation) on
        `evaluation_dataset` when given."""
        request = create_version_request(
            model, creator, lightgbm_model, training, evaluation_dataset
        )
        return (await self._unary(self._models.CreateVersion, request, timeout)).version

    async def delete_model(
        self, model: str, *, actor: str = "", reason: str = "", timeout: float | None = None
    ) -> list[int]:
        """DeleteModel: delete a model that serves nothing; the versions it retired (their
        tables dropped). Its records and history stay; its version numbers are never reused."""
        request = model_pb.DeleteModelRequest(model=model, actor=actor, reason=reason)
        return list(
            (await self._unary(self._models.DeleteModel, request, timeout)).retired_versions
        )

    async def retire_version(
        self, model: str, version: int, *, actor: str = "", timeout: float | None = None
    ) -> pb.ModelVersion:
        """RetireVersion: retire a version and drop its table (refused for the current one)."""
        request = model_pb.RetireVersionRequest(model=model, version=version, actor=actor)
        return (await self._unary(self._models.RetireVersion, request, timeout)).version

    async def diff_versions(
        self,
        model: str,
        version_a: int,
        version_b: int,
        *,
        tolerance: float = 0.0,
        timeout: float | None = None,
    ) -> model_pb.DiffVersionsResponse:
        """DiffVersions: how two READY versions differ over the whole grid."""
        request = model_pb.DiffVersionsRequest(
            model=model, version_a=version_a, version_b=version_b, tolerance=tolerance
        )
        return await self._unary(self._models.DiffVersions, request, timeout)

    # ModelService: materialisation operations

    async def materialize_version(
        self,
        model: str,
        version: int,
        *,
        rows_per_second_limit: float = 0.0,
        engine: Engine = "builtin",
        spark_master: str = "",
        timeout: float | None = None,
    ) -> model_pb.Operation:
        """MaterializeVersion: start (or resume) writing a version's table; the operation.
        `engine="spark"` writes it on Spark (HFiles and a bulk load) at `spark_master`
        (empty: the server's default, local[2,2])."""
        request = model_pb.MaterializeVersionRequest(
            model=model,
            version=version,
            rows_per_second_limit=rows_per_second_limit,
            engine=ENGINES[engine],
            spark_master=spark_master,
        )
        return (await self._unary(self._models.MaterializeVersion, request, timeout)).operation

    async def get_operation(self, name: str, *, timeout: float | None = None) -> model_pb.Operation:
        """GetOperation: the latest state of an operation."""
        request = model_pb.GetOperationRequest(name=name)
        return (await self._unary(self._models.GetOperation, request, timeout)).operation

    async def watch_operation(
        self, name: str, *, timeout: float | None = None
    ) -> AsyncIterator[model_pb.Operation]:
        """WatchOperation: the operation's state as it changes, until done; `timeout` bounds
        the whole watch (an hour when not given)."""
        request = model_pb.WatchOperationRequest(name=name)
        call = self._models.WatchOperation(request, timeout=call_timeout(timeout, WATCH_TIMEOUT_S))
        try:
            async for message in call:
                yield message.operation
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    async def cancel_operation(
        self, name: str, *, timeout: float | None = None
    ) -> model_pb.Operation:
        """CancelOperation: ask a running operation to stop (MaterializeVersion resumes it)."""
        request = model_pb.CancelOperationRequest(name=name)
        return (await self._unary(self._models.CancelOperation, request, timeout)).operation

    # ModelService: what is served

    async def activate_version(
        self,
        model: str,
        version: int,
        *,
        actor: str = "",
        reason: str = "",
        timeout: float | None = None,
    ) -> model_pb.ActivateVersionResponse:
        """ActivateVersion: serve VERSION of MODEL; the model after the switch and how far the
        switch had reached the running prediction servers (`propagation`)."""
        request = model_pb.ActivateVersionRequest(
            model=model, version=version, actor=actor, reason=reason
        )
        return await self._unary(self._models.ActivateVersion, request, timeout)

    async def rollback_model(
        self, model: str, *, actor: str = "", reason: str = "", timeout: float | None = None
    ) -> model_pb.RollbackModelResponse:
        """RollbackModel: serve the previous version again; the model after it and
        `propagation`."""
        request = model_pb.RollbackModelRequest(model=model, actor=actor, reason=reason)
        return await self._unary(self._models.RollbackModel, request, timeout)

    async def list_activations(
        self, model: str, *, timeout: float | None = None
    ) -> list[model_pb.Activation]:
        """ListActivations: the model's activations and rollbacks, newest first (up to 1,000)."""
        request = model_pb.ListActivationsRequest(model=model, page_size=1000)
        return list((await self._unary(self._models.ListActivations, request, timeout)).activations)

    async def set_alias(
        self, model: str, alias: str, version: int, *, timeout: float | None = None
    ) -> pb.Model:
        """SetAlias: point a user alias (e.g. `canary`) at a READY version; the model after."""
        request = model_pb.SetAliasRequest(model=model, alias=alias, version=version)
        return (await self._unary(self._models.SetAlias, request, timeout)).model

    async def delete_alias(
        self, model: str, alias: str, *, timeout: float | None = None
    ) -> pb.Model:
        """DeleteAlias: remove a user alias; the model after."""
        request = model_pb.DeleteAliasRequest(model=model, alias=alias)
        return (await self._unary(self._models.DeleteAlias, request, timeout)).model
