"""ModelService: the registry of models and versions, and activation."""

from __future__ import annotations

import grpc

from rowcast.convert import model_to_pb, timestamp, version_to_pb
from rowcast.core.records import check_model_name
from rowcast.deadlines import remaining_s
from rowcast.errors import InvalidArgument
from rowcast.grpc_errors import handles_errors
from rowcast.paging import paginate
from rowcast.store.registry import RegistryStore
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import model_service_pb2_grpc as model_grpc

Context = grpc.aio.ServicerContext[object, object]


def check_version(version: int) -> int:
    if version <= 0:
        raise InvalidArgument.field("version", f"must be a positive version number, got {version}")
    return version


class ModelServicer(model_grpc.ModelServiceServicer):
    """Maps ModelService calls onto the registry store."""

    def __init__(self, registry: RegistryStore, store_timeout_s: float) -> None:
        self._registry = registry
        self._timeout_s = store_timeout_s

    @handles_errors
    async def ListModels(
        self, request: model_pb.ListModelsRequest, context: Context
    ) -> model_pb.ListModelsResponse:
        models = await self._registry.list_models(remaining_s(context, self._timeout_s))
        page, token = paginate(models, request.page_size, request.page_token)
        return model_pb.ListModelsResponse(
            models=[model_to_pb(m) for m in page], next_page_token=token
        )

    @handles_errors
    async def GetModel(
        self, request: model_pb.GetModelRequest, context: Context
    ) -> model_pb.GetModelResponse:
        model = await self._registry.get_model(
            check_model_name(request.model), remaining_s(context, self._timeout_s)
        )
        return model_pb.GetModelResponse(model=model_to_pb(model))

    @handles_errors
    async def ListVersions(
        self, request: model_pb.ListVersionsRequest, context: Context
    ) -> model_pb.ListVersionsResponse:
        versions = await self._registry.list_versions(
            check_model_name(request.model), remaining_s(context, self._timeout_s)
        )
        page, token = paginate(versions, request.page_size, request.page_token)
        return model_pb.ListVersionsResponse(
            versions=[version_to_pb(v) for v in page], next_page_token=token
        )

    @handles_errors
    async def GetVersion(
        self, request: model_pb.GetVersionRequest, context: Context
    ) -> model_pb.GetVersionResponse:
        version = await self._registry.get_version(
            check_model_name(request.model),
            check_version(request.version),
            remaining_s(context, self._timeout_s),
        )
        return model_pb.GetVersionResponse(version=version_to_pb(version))

    @handles_errors
    async def ActivateVersion(
        self, request: model_pb.ActivateVersionRequest, context: Context
    ) -> model_pb.ActivateVersionResponse:
        name = check_model_name(request.model)
        version = check_version(request.version)
        if not request.actor.strip():
            raise InvalidArgument.field("actor", "is required (who asks for the switch)")
        model, when_ms = await self._registry.activate(
            name,
            version,
            request.actor.strip(),
            request.reason,
            remaining_s(context, self._timeout_s),
        )
        return model_pb.ActivateVersionResponse(
            model=model_to_pb(model), activate_time=timestamp(when_ms)
        )
