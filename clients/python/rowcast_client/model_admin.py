"""ModelService administration calls, mixed into the async and sync clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc

from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_client.errors import from_rpc_error


def create_version_request(
    model: str,
    creator: str,
    lightgbm_model: bytes | None,
    training: model_pb.TrainingSpec | None,
    evaluation_dataset: str = "",
) -> model_pb.CreateVersionRequest:
    if (lightgbm_model is None) == (training is None):
        raise ValueError("give exactly one of lightgbm_model or training")
    if lightgbm_model is not None:
        return model_pb.CreateVersionRequest(
            model=model,
            creator=creator,
            lightgbm_model=lightgbm_model,
            evaluation_dataset=evaluation_dataset,
        )
    return model_pb.CreateVersionRequest(
        model=model, creator=creator, training=training, evaluation_dataset=evaluation_dataset
    )


class AsyncModelAdmin:
    """Lifecycle calls of ModelService (needs `_models` stub and `_call`)."""

    _models: Any
    _timeout_s: float

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    async def register_model(self, model: pb.Model, *, timeout: float | None = None) -> pb.Model:
        request = model_pb.RegisterModelRequest(model=model)
        return (await self._call(self._models.RegisterModel, request, timeout)).model  # type: ignore[no-any-return]

    async def create_version(
        self,
        model: str,
        *,
        creator: str,
        lightgbm_model: bytes | None = None,
        training: model_pb.TrainingSpec | None = None,
        evaluation_dataset: str = "",
        timeout: float | None = None,
    ) -> pb.ModelVersion:
        """A new REGISTERED version from an uploaded model or by training; an uploaded one is
        evaluated (fidelity, at materialisation) on `evaluation_dataset` when given."""
        request = create_version_request(
            model, creator, lightgbm_model, training, evaluation_dataset
        )
        return (await self._call(self._models.CreateVersion, request, timeout)).version  # type: ignore[no-any-return]

    async def materialize_version(
        self,
        model: str,
        version: int,
        *,
        rows_per_second_limit: float = 0.0,
        timeout: float | None = None,
    ) -> model_pb.Operation:
        request = model_pb.MaterializeVersionRequest(
            model=model, version=version, rows_per_second_limit=rows_per_second_limit
        )
        return (await self._call(self._models.MaterializeVersion, request, timeout)).operation  # type: ignore[no-any-return]

    async def get_operation(self, name: str, *, timeout: float | None = None) -> model_pb.Operation:
        request = model_pb.GetOperationRequest(name=name)
        return (await self._call(self._models.GetOperation, request, timeout)).operation  # type: ignore[no-any-return]

    async def watch_operation(
        self, name: str, *, timeout: float | None = None
    ) -> AsyncIterator[model_pb.Operation]:
        """The operation's state as it changes, until done; `timeout` bounds the whole watch."""
        call = self._models.WatchOperation(
            model_pb.WatchOperationRequest(name=name), timeout=timeout or 3600.0
        )
        try:
            async for message in call:
                yield message.operation
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    async def cancel_operation(
        self, name: str, *, timeout: float | None = None
    ) -> model_pb.Operation:
        request = model_pb.CancelOperationRequest(name=name)
        return (await self._call(self._models.CancelOperation, request, timeout)).operation  # type: ignore[no-any-return]

    async def rollback_model(
        self, model: str, *, actor: str, reason: str = "", timeout: float | None = None
    ) -> pb.Model:
        request = model_pb.RollbackModelRequest(model=model, actor=actor, reason=reason)
        return (await self._call(self._models.RollbackModel, request, timeout)).model  # type: ignore[no-any-return]

    async def retire_version(
        self, model: str, version: int, *, actor: str, timeout: float | None = None
    ) -> pb.ModelVersion:
        request = model_pb.RetireVersionRequest(model=model, version=version, actor=actor)
        return (await self._call(self._models.RetireVersion, request, timeout)).version  # type: ignore[no-any-return]

    async def list_activations(
        self, model: str, *, timeout: float | None = None
    ) -> list[model_pb.Activation]:
        request = model_pb.ListActivationsRequest(model=model, page_size=1000)
        return list((await self._call(self._models.ListActivations, request, timeout)).activations)

    async def set_alias(
        self, model: str, alias: str, version: int, *, timeout: float | None = None
    ) -> pb.Model:
        request = model_pb.SetAliasRequest(model=model, alias=alias, version=version)
        return (await self._call(self._models.SetAlias, request, timeout)).model  # type: ignore[no-any-return]

    async def delete_alias(
        self, model: str, alias: str, *, timeout: float | None = None
    ) -> pb.Model:
        request = model_pb.DeleteAliasRequest(model=model, alias=alias)
        return (await self._call(self._models.DeleteAlias, request, timeout)).model  # type: ignore[no-any-return]

    async def diff_versions(
        self,
        model: str,
        version_a: int,
        version_b: int,
        *,
        tolerance: float = 0.0,
        timeout: float | None = None,
    ) -> model_pb.DiffVersionsResponse:
        request = model_pb.DiffVersionsRequest(
            model=model, version_a=version_a, version_b=version_b, tolerance=tolerance
        )
        return await self._call(self._models.DiffVersions, request, timeout)  # type: ignore[no-any-return]


class ModelAdmin:
    """Blocking lifecycle calls of ModelService (needs `_models` stub and `_call`)."""

    _models: Any
    _timeout_s: float

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    def register_model(self, model: pb.Model, *, timeout: float | None = None) -> pb.Model:
        request = model_pb.RegisterModelRequest(model=model)
        return self._call(self._models.RegisterModel, request, timeout).model  # type: ignore[no-any-return]

    def create_version(
        self,
        model: str,
        *,
        creator: str,
        lightgbm_model: bytes | None = None,
        training: model_pb.TrainingSpec | None = None,
        evaluation_dataset: str = "",
        timeout: float | None = None,
    ) -> pb.ModelVersion:
        """A new REGISTERED version from an uploaded model or by training; an uploaded one is
        evaluated (fidelity, at materialisation) on `evaluation_dataset` when given."""
        request = create_version_request(
            model, creator, lightgbm_model, training, evaluation_dataset
        )
        return self._call(self._models.CreateVersion, request, timeout).version  # type: ignore[no-any-return]

    def materialize_version(
        self,
        model: str,
        version: int,
        *,
        rows_per_second_limit: float = 0.0,
        timeout: float | None = None,
    ) -> model_pb.Operation:
        request = model_pb.MaterializeVersionRequest(
            model=model, version=version, rows_per_second_limit=rows_per_second_limit
        )
        return self._call(self._models.MaterializeVersion, request, timeout).operation  # type: ignore[no-any-return]

    def get_operation(self, name: str, *, timeout: float | None = None) -> model_pb.Operation:
        request = model_pb.GetOperationRequest(name=name)
        return self._call(self._models.GetOperation, request, timeout).operation  # type: ignore[no-any-return]

    def watch_operation(
        self, name: str, *, timeout: float | None = None
    ) -> Iterator[model_pb.Operation]:
        call = self._models.WatchOperation(
            model_pb.WatchOperationRequest(name=name), timeout=timeout or 3600.0
        )
        try:
            for message in call:
                yield message.operation
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def cancel_operation(self, name: str, *, timeout: float | None = None) -> model_pb.Operation:
        request = model_pb.CancelOperationRequest(name=name)
        return self._call(self._models.CancelOperation, request, timeout).operation  # type: ignore[no-any-return]

    def rollback_model(
        self, model: str, *, actor: str, reason: str = "", timeout: float | None = None
    ) -> pb.Model:
        request = model_pb.RollbackModelRequest(model=model, actor=actor, reason=reason)
        return self._call(self._models.RollbackModel, request, timeout).model  # type: ignore[no-any-return]

    def retire_version(
        self, model: str, version: int, *, actor: str, timeout: float | None = None
    ) -> pb.ModelVersion:
        request = model_pb.RetireVersionRequest(model=model, version=version, actor=actor)
        return self._call(self._models.RetireVersion, request, timeout).version  # type: ignore[no-any-return]

    def list_activations(
        self, model: str, *, timeout: float | None = None
    ) -> list[model_pb.Activation]:
        request = model_pb.ListActivationsRequest(model=model, page_size=1000)
        return list(self._call(self._models.ListActivations, request, timeout).activations)

    def set_alias(
        self, model: str, alias: str, version: int, *, timeout: float | None = None
    ) -> pb.Model:
        request = model_pb.SetAliasRequest(model=model, alias=alias, version=version)
        return self._call(self._models.SetAlias, request, timeout).model  # type: ignore[no-any-return]

    def delete_alias(self, model: str, alias: str, *, timeout: float | None = None) -> pb.Model:
        request = model_pb.DeleteAliasRequest(model=model, alias=alias)
        return self._call(self._models.DeleteAlias, request, timeout).model  # type: ignore[no-any-return]

    def diff_versions(
        self,
        model: str,
        version_a: int,
        version_b: int,
        *,
        tolerance: float = 0.0,
        timeout: float | None = None,
    ) -> model_pb.DiffVersionsResponse:
        request = model_pb.DiffVersionsRequest(
            model=model, version_a=version_a, version_b=version_b, tolerance=tolerance
        )
        return self._call(self._models.DiffVersions, request, timeout)  # type: ignore[no-any-return]
