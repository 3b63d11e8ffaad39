"""ModelService: the registry of models and versions, and activation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from rowcast.config import Settings
from rowcast.convert import (
    HISTORY_KIND_TO_PB,
    OUTPUT_KIND_FROM_PB,
    model_to_pb,
    propagation_to_pb,
    signature_from_pb,
    timestamp,
    version_to_pb,
)
from rowcast.core.records import (
    OutputKind,
    VersionInfo,
    VersionState,
    check_alias,
    check_model_name,
)
from rowcast.deadlines import remaining_s
from rowcast.errors import FailedPrecondition, InvalidArgument, RowcastError, VersionNotReady
from rowcast.grpc_errors import abort, handles_errors
from rowcast.jobs.create import Training, create_version
from rowcast.jobs.diff import DIFF_TIMEOUT_S, diff_tables
from rowcast.jobs.spark.options import DEFAULT_MASTER, SparkOptions
from rowcast.jobs.train import TrainParams
from rowcast.paging import paginate
from rowcast.propagation import Propagator
from rowcast.registry.materializations import Materializations
from rowcast.security.identity import recorded_name
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.aliases import RouteChange
from rowcast.store.artifacts import ArtifactStore
from rowcast.store.client import HBaseClient
from rowcast.store.operations import OperationRecord, op_id_from_name
from rowcast.store.registry import Registry
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import model_service_pb2_grpc as model_grpc
from rowcast.v1 import resources_pb2 as resources_pb

Context = grpc.aio.ServicerContext[object, object]

#: After the servers acknowledged that no alias names a retired version any more, requests
#: they had started before may still read its table: give them this long before the drop.
RETIRE_DRAIN_S = 1.0


def check_version(version: int) -> int:
    if version <= 0:
        raise InvalidArgument.field("version", f"must be a positive version number, got {version}")
    return version


def check_actor(actor: str, field: str = "actor") -> str:
    """Who is recorded as doing it: the caller's authenticated name (a given `actor` must
    equal it); without authentication (--insecure), the name given, which is then required."""
    name = recorded_name(actor, field)
    if not name:
        raise InvalidArgument.field(field, "is required (who asks; recorded)")
    if len(name) > 200:
        raise InvalidArgument.field(field, f"at most 200 characters, got {len(name)}")
    return name


def operation_to_pb(r: OperationRecord, version: VersionInfo | None) -> model_pb.Operation:
    return model_pb.Operation(
        name=r.name,
        done=r.done,
        progress=model_pb.MaterializeProgress(
            model=r.model,
            version=r.version,
            rows_written=r.rows_written,
            total_rows=r.total_rows,
            rows_per_second=r.rows_per_second,
            eta_seconds=r.eta_seconds,
            start_time=timestamp(r.start_time_ms),
            update_time=timestamp(r.update_time_ms),
        ),
        error=model_pb.OperationError(code=r.error_code, message=r.error_message)
        if r.error_code
        else None,
        version=version_to_pb(version) if version is not None and r.done else None,
    )


class ModelServicer(model_grpc.ModelServiceServicer):
    """Maps ModelService calls onto the registry, the jobs and the operation runner."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        artifacts: ArtifactStore,
        admin: TableAdmin,
        client: HBaseClient,
        materializations: Materializations,
        propagator: Propagator,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._artifacts = artifacts
        self._admin = admin
        self._client = client
        self._ops = materializations
        self._timeout_s = settings.hbase.timeout_s
        self._propagator = propagator

    def _remaining(self, context: Context) -> float:
        return remaining_s(context, self._timeout_s)

    async def _propagated(self, context: Context) -> model_pb.Propagation:
        """Make the route change just written reach the servers: at most the propagation
        timeout, and within the caller's deadline (less half a second to answer in)."""
        timeout = self._settings.server.propagation_timeout_s
        budget = min(timeout, remaining_s(context, timeout + 0.5) - 0.5)
        return propagation_to_pb(await self._propagator.propagate(budget_s=budget))

    async def _change_routes(
        self, context: Context, change: Callable[[float], Awaitable[RouteChange]]
    ) -> tuple[RouteChange, resources_pb.Model, model_pb.Propagation]:
        """The one path of every alias change (activate, roll back, set and delete an alias):
        write it within the caller's deadline, make it reach the servers, convert."""
        changed = await change(self._remaining(context))
        return changed, model_to_pb(changed.model), await self._propagated(context)

    @handles_errors
    async def ListModels(
        self, request: model_pb.ListModelsRequest, context: Context
    ) -> model_pb.ListModelsResponse:
        models = await self._registry.models.list_models(timeout_s=self._remaining(context))
        page, token = paginate(models, request.page_size, request.page_token)
        return model_pb.ListModelsResponse(
            models=[model_to_pb(m) for m in page], next_page_token=token
        )

    @handles_errors
    async def GetModel(
        self, request: model_pb.GetModelRequest, context: Context
    ) -> model_pb.GetModelResponse:
        model = await self._registry.models.get_model(
            check_model_name(request.model), timeout_s=self._remaining(context)
        )
        return model_pb.GetModelResponse(model=model_to_pb(model))

    @handles_errors
    async def ListVersions(
        self, request: model_pb.ListVersionsRequest, context: Context
    ) -> model_pb.ListVersionsResponse:
        versions = await self._registry.versions.list_versions(
            check_model_name(request.model), timeout_s=self._remaining(context)
        )
        page, token = paginate(versions, request.page_size, request.page_token)
        return model_pb.ListVersionsResponse(
            versions=[version_to_pb(v) for v in page], next_page_token=token
        )

    @handles_errors
    async def GetVersion(
        self, request: model_pb.GetVersionRequest, context: Context
    ) -> model_pb.GetVersionResponse:
        version = await self._registry.versions.get_version(
            check_model_name(request.model),
            check_version(request.version),
            timeout_s=self._remaining(context),
        )
        return model_pb.GetVersionResponse(version=version_to_pb(version))

    @handles_errors
    async def ActivateVersion(
        self, request: model_pb.ActivateVersionRequest, context: Context
    ) -> model_pb.ActivateVersionResponse:
        name = check_model_name(request.model)
        version = check_version(request.version)
        actor = check_actor(request.actor)
        changed, model, propagation = await self._change_routes(
            context,
            lambda t: self._registry.aliases.activate(
                name, version, actor, request.reason, timeout_s=t
            ),
        )
        return model_pb.ActivateVersionResponse(
            model=model, activate_time=timestamp(changed.time_ms), propagation=propagation
        )

    @handles_errors
    async def RegisterModel(
        self, request: model_pb.RegisterModelRequest, context: Context
    ) -> model_pb.RegisterModelResponse:
        if not request.HasField("model"):
            raise InvalidArgument.field("model", "is required")
        m = request.model
        name = check_model_name(m.name, "model.name")
        signature = signature_from_pb(m.signature)
        if signature.grid_size > self._settings.max_grid_rows:
            raise InvalidArgument.field(
                "model.signature",
                f"grid has {signature.grid_size:,} cells, more than the limit of "
                f"{self._settings.max_grid_rows:,}",
            )
        kind = OUTPUT_KIND_FROM_PB.get(m.output.kind)
        if not isinstance(kind, OutputKind):
            raise InvalidArgument.field("model.output.kind", "is required")
        model = await self._registry.models.register_model(
            name,
            signature,
            kind,
            m.output.description,
            m.description,
            self._settings.salt_buckets,
            timeout_s=self._remaining(context),
        )
        return model_pb.RegisterModelResponse(model=model_to_pb(model))

    @handles_errors
    async def CreateVersion(
        self, request: model_pb.CreateVersionRequest, context: Context
    ) -> model_pb.CreateVersionResponse:
        name = check_model_name(request.model)
        creator = check_actor(request.creator, "creator")
        source_kind = request.WhichOneof("source")
        model = await self._registry.models.get_model(name, timeout_s=self._remaining(context))
        source: bytes | Training
        if source_kind == "lightgbm_model":
            source = request.lightgbm_model
        elif source_kind == "training":
            t = request.training
            if not t.dataset:
                raise InvalidArgument.field("training.dataset", "is required")
            defaults = TrainParams()
            source = Training(
                t.dataset,
                TrainParams(
                    num_trees=t.num_trees or defaults.num_trees,
                    num_leaves=t.num_leaves or defaults.num_leaves,
                    learning_rate=t.learning_rate or defaults.learning_rate,
                    seed=t.seed or defaults.seed,
                ),
            )
        else:
            raise InvalidArgument.field("source", "set lightgbm_model or training")
        version, _ = await create_version(
            self._registry,
            self._artifacts,
            model,
            source,
            creator,
            request.evaluation_dataset.strip(),
            timeout_s=self._remaining(context),
        )
        return model_pb.CreateVersionResponse(version=version_to_pb(version))

    @handles_errors
    async def MaterializeVersion(
        self, request: model_pb.MaterializeVersionRequest, context: Context
    ) -> model_pb.MaterializeVersionResponse:
        name = check_model_name(request.model)
        version = check_version(request.version)
        if request.rows_per_second_limit < 0:
            raise InvalidArgument.field("rows_per_second_limit", "must not be negative")
        record = await self._ops.start(
            name,
            version,
            request.rows_per_second_limit or None,
            timeout_s=self._remaining(context),
            spark=spark_options(request, self._settings.spark_staging),
        )
        return model_pb.MaterializeVersionResponse(operation=operation_to_pb(record, None))

    async def _operation(self, name: str, context: Context) -> model_pb.Operation:
        record = await self._ops.get(op_id_from_name(name), timeout_s=self._remaining(context))
        return await self._with_version(record, context)

    async def _with_version(self, record: OperationRecord, context: Context) -> model_pb.Operation:
        """The operation, with its version once it is done (read within the caller's time)."""
        version = (
            await self._registry.versions.get_version(
                record.model, record.version, timeout_s=self._remaining(context)
            )
            if record.done
            else None
        )
        return operation_to_pb(record, version)

    @handles_errors
    async def GetOperation(
        self, request: model_pb.GetOperationRequest, context: Context
    ) -> model_pb.GetOperationResponse:
        return model_pb.GetOperationResponse(operation=await self._operation(request.name, context))

    async def WatchOperation(
        self, request: model_pb.WatchOperationRequest, context: Context
    ) -> AsyncIterator[model_pb.WatchOperationResponse]:
        try:
            async for record in self._ops.watch(
                op_id_from_name(request.name), timeout_s=self._timeout_s
            ):
                yield model_pb.WatchOperationResponse(
                    operation=await self._with_version(record, context)
                )
        except RowcastError as error:
            await abort(context, error)

    @handles_errors
    async def CancelOperation(
        self, request: model_pb.CancelOperationRequest, context: Context
    ) -> model_pb.CancelOperationResponse:
        record = await self._ops.cancel(
            op_id_from_name(request.name), timeout_s=remaining_s(context, self._timeout_s)
        )
        return model_pb.CancelOperationResponse(operation=await self._with_version(record, context))

    @handles_errors
    async def RollbackModel(
        self, request: model_pb.RollbackModelRequest, context: Context
    ) -> model_pb.RollbackModelResponse:
        name = check_model_name(request.model)
        actor = check_actor(request.actor)
        _, model, propagation = await self._change_routes(
            context,
            lambda t: self._registry.aliases.rollback(name, actor, request.reason, timeout_s=t),
        )
        return model_pb.RollbackModelResponse(model=model, propagation=propagation)

    @handles_errors
    async def RetireVersion(
        self, request: model_pb.RetireVersionRequest, context: Context
    ) -> model_pb.RetireVersionResponse:
        name = check_model_name(request.model)
        number = check_version(request.version)
        actor = check_actor(request.actor)
        running = await self._ops.running_for(name, number, timeout_s=self._remaining(context))
        if running is not None:
            raise FailedPrecondition(
                f"version {number} of {name!r} is being materialised by {running.name}; "
                "cancel it (rowcast models operation NAME --cancel) before retiring the version"
            )
        retired = await self._registry.aliases.begin_retire(
            name, number, actor, timeout_s=self._remaining(context)
        )
        version = retired.version
        response = model_pb.RetireVersionResponse(version=version_to_pb(version))
        if retired.aliases_dropped:
            # An alias (say `canary`) named it: the table goes only once the servers route no
            # more requests to it, and after the requests they had started have finished.
            response.propagation.CopyFrom(await self._propagated(context))
            await asyncio.sleep(RETIRE_DRAIN_S)
        # A drop is DDL (the master disables every region first): the store's per-call
        # default would be too short.
        await asyncio.to_thread(
            self._admin.drop, version.table, timeout_s=remaining_s(context, DDL_TIMEOUT_S)
        )
        dropped = await self._registry.aliases.table_dropped(
            name, number, timeout_s=self._remaining(context)
        )
        response.version.CopyFrom(version_to_pb(dropped))
        return response

    @handles_errors
    async def DeleteModel(
        self, request: model_pb.DeleteModelRequest, context: Context
    ) -> model_pb.DeleteModelResponse:
        """Delete a model that serves nothing: its versions retired, their tables dropped, its
        records and history kept (and its version numbers never reused)."""
        name = check_model_name(request.model)
        actor = check_actor(request.actor)
        if len(request.reason) > 1000:
            raise InvalidArgument.field("reason", "at most 1000 characters")
        retired = await self._registry.aliases.begin_delete(
            name, actor, request.reason, timeout_s=self._remaining(context)
        )
        for version in retired:
            await asyncio.to_thread(
                self._admin.drop, version.table, timeout_s=remaining_s(context, DDL_TIMEOUT_S)
            )
            await self._registry.aliases.table_dropped(
                name, version.version, timeout_s=self._remaining(context)
            )
        return model_pb.DeleteModelResponse(retired_versions=[v.version for v in retired])

    @handles_errors
    async def ListActivations(
        self, request: model_pb.ListActivationsRequest, context: Context
    ) -> model_pb.ListActivationsResponse:
        name = check_model_name(request.model)
        await self._registry.models.get_model(name, timeout_s=self._remaining(context))
        activations = await self._registry.aliases.list_activations(
            name, timeout_s=self._remaining(context)
        )
        page, token = paginate(activations, request.page_size, request.page_token)
        return model_pb.ListActivationsResponse(
            activations=[
                model_pb.Activation(
                    from_version=a.from_version,
                    to_version=a.to_version,
                    actor=a.actor,
                    reason=a.reason,
                    activate_time=timestamp(a.time_ms),
                    kind=HISTORY_KIND_TO_PB[a.kind],
                )
                for a in page
            ],
            next_page_token=token,
        )

    @handles_errors
    async def SetAlias(
        self, request: model_pb.SetAliasRequest, context: Context
    ) -> model_pb.SetAliasResponse:
        name = check_model_name(request.model)
        alias = check_alias(request.alias)
        version = check_version(request.version)
        _, model, propagation = await self._change_routes(
            context,
            lambda t: self._registry.aliases.set_alias(name, alias, version, timeout_s=t),
        )
        return model_pb.SetAliasResponse(model=model, propagation=propagation)

    @handles_errors
    async def DeleteAlias(
        self, request: model_pb.DeleteAliasRequest, context: Context
    ) -> model_pb.DeleteAliasResponse:
        name = check_model_name(request.model)
        alias = check_alias(request.alias)
        _, model, propagation = await self._change_routes(
            context, lambda t: self._registry.aliases.delete_alias(name, alias, timeout_s=t)
        )
        return model_pb.DeleteAliasResponse(model=model, propagation=propagation)

    @handles_errors
    async def DiffVersions(
        self, request: model_pb.DiffVersionsRequest, context: Context
    ) -> model_pb.DiffVersionsResponse:
        name = check_model_name(request.model)
        if request.tolerance < 0:
            raise InvalidArgument.field("tolerance", "must not be negative")
        model = await self._registry.models.get_model(name, timeout_s=self._remaining(context))
        tables = []
        for field, number in (("version_a", request.version_a), ("version_b", request.version_b)):
            if number <= 0:
                raise InvalidArgument.field(field, "must be a positive version number")
            v = await self._registry.versions.get_version(
                name, number, timeout_s=self._remaining(context)
            )
            if v.state is not VersionState.READY:
                raise VersionNotReady(f"{field}: version {number} is {v.state.value}, not READY")
            tables.append(v.table)
        d = await asyncio.to_thread(
            diff_tables,
            self._client,
            model.signature,
            tables[0],
            tables[1],
            request.tolerance,
            timeout_s=remaining_s(context, DIFF_TIMEOUT_S),
        )
        return model_pb.DiffVersionsResponse(
            cells=d.cells,
            changed_cells=d.changed_cells,
            max_abs_delta=d.max_abs_delta,
            mean_abs_delta=d.mean_abs_delta,
            histogram=[
                model_pb.HistogramBucket(lower=lo, upper=hi, count=c) for lo, hi, c in d.histogram
            ],
            features=[
                model_pb.FeatureChange(
                    feature=f.feature,
                    changed_cells_per_bin=f.changed_per_bin,
                    mean_abs_delta_per_bin=f.mean_abs_delta_per_bin,
                    concentration=f.concentration,
                )
                for f in d.features
            ],
        )


def spark_options(
    request: model_pb.MaterializeVersionRequest, staging: str | None = None
) -> SparkOptions | None:
    """The Spark engine's options of a MaterializeVersion request (None: the built-in one);
    `staging` is the server's ROWCAST_SPARK_STAGING."""
    if request.engine != model_pb.MATERIALIZE_ENGINE_SPARK:
        if request.spark_master:
            raise InvalidArgument.field(
                "spark_master", "applies only to engine MATERIALIZE_ENGINE_SPARK"
            )
        return None
    return SparkOptions(master=request.spark_master or DEFAULT_MASTER, staging=staging)
