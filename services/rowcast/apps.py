"""Assembles each service's process: stores, servicer, gRPC server; returns it started.

Tests call these with port 0 and get the bound port back; `rowcast serve <service>` calls them
with the configured port and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging

from opentelemetry.sdk.trace import TracerProvider

from rowcast.audit.servicer import AuditServicer
from rowcast.config import Settings
from rowcast.errors import RowcastError
from rowcast.jobs.create import MAX_MODEL_BYTES
from rowcast.prediction.answerer import Answerer, NoAudit
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig, spool_directory
from rowcast.prediction.lookup import Lookup, VersionCaches
from rowcast.prediction.router import VersionRouter
from rowcast.prediction.servicer import PredictionServicer
from rowcast.propagation import Propagator, follow_changes
from rowcast.registry.materializations import Materializations
from rowcast.registry.servicer import ModelServicer
from rowcast.security.runtime import ServerSecurity, audit_channel_credentials
from rowcast.server import RunningServer, start_server
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.artifacts import ArtifactStore
from rowcast.store.audit import AuditStore
from rowcast.store.client import HBaseClient
from rowcast.store.models import ModelStore
from rowcast.store.notify import close_notifier, open_notifier
from rowcast.store.operations import OperationStore
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from rowcast.store.schema import ensure_schema
from rowcast.store.versions import VersionStore
from rowcast.telemetry.tracing import ServerTracing
from rowcast.v1 import audit_service_pb2, model_service_pb2, prediction_service_pb2
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import model_service_pb2_grpc as model_grpc
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc

log = logging.getLogger(__name__)

#: CreateVersion carries a whole model file: allow it (plus framing) through gRPC.
MAX_MODEL_UPLOAD_BYTES = MAX_MODEL_BYTES + 1024 * 1024

PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]
AUDIT_SERVICE = audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"]
MODEL_SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"]


async def _ensure_schema(settings: Settings) -> None:
    """Create the shared tables if HBase is up; a service still starts when it is not."""
    try:
        await asyncio.to_thread(ensure_schema, TableAdmin(settings.hbase), timeout_s=DDL_TIMEOUT_S)
    except RowcastError as exc:
        log.warning("could not check the rowcast tables (HBase down?): %s", exc)


async def start_prediction_server(
    settings: Settings,
    port: int | None = None,
    audit_target: str | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> RunningServer:
    sv = settings.server
    tracing = ServerTracing.start(settings.tracing, "rowcast-prediction", tracer_provider)
    client = HBaseClient(settings.hbase)
    security = await ServerSecurity.start(settings.security, client, settings.hbase.timeout_s)
    caches = VersionCaches(sv.cache_size)
    router = VersionRouter(ModelStore(client), sv.registry_refresh_s, on_change=caches.retain)
    await router.start()
    notifier = await open_notifier(settings.hbase, settings.server.registry_watch)
    target = audit_target or f"{sv.host}:{sv.audit_port}"
    spool = SpoolConfig(
        # Processes sharing a port (SO_REUSEPORT) each need a spool of their own: give them
        # per-process directories (what a dead one leaves is adopted by the next to start).
        spool_directory(
            settings.hbase.home,
            0 if sv.reuse_port else (sv.prediction_port if port is None else port),
        ),
        durability=sv.audit_durability,
        max_bytes=sv.audit_spool_max_bytes,
        chain_key_file=settings.security.chain_key_file,
    )
    sink = AuditSink(
        target,
        spool,
        sv.audit_batch_size,
        credentials=audit_channel_credentials(settings.security) if sv.audit_enabled else None,
    )
    if sv.audit_enabled:
        await sink.start()
    answerer = Answerer(
        router,
        Lookup(PredictionStore(client), caches, settings.hbase.timeout_s),
        sink if sv.audit_enabled else NoAudit(),
        settings.hbase.timeout_s,
        sv.missing_row_default,
    )
    servicer = PredictionServicer(answerer, settings.hbase.timeout_s)
    running = await start_server(
        lambda s: pred_grpc.add_PredictionServiceServicer_to_server(servicer, s),
        [PREDICTION_SERVICE.full_name],
        sv.host,
        sv.prediction_port if port is None else port,
        reuse_port=sv.reuse_port,
        max_in_flight=sv.max_in_flight,
        metrics=settings.metrics.address("prediction"),
        interceptors=tracing.interceptors,
        credentials=security.credentials,
        auth=security.interceptor,
    )
    presence = await follow_changes(notifier, router, f"{sv.host}:{running.port}")

    async def on_stop() -> None:
        if presence is not None:
            await asyncio.to_thread(presence.withdraw)
        if sv.audit_enabled:
            await sink.stop(drain_timeout_s=sv.grace_s)
        await close_notifier(notifier)
        await router.stop()
        await security.stop()
        client.close()
        await tracing.stop()

    running.on_stop = on_stop
    running.on_reload = security.reload_tls
    return running


async def start_audit_server(
    settings: Settings, port: int | None = None, *, tracer_provider: TracerProvider | None = None
) -> RunningServer:
    await _ensure_schema(settings)
    tracing = ServerTracing.start(settings.tracing, "rowcast-audit", tracer_provider)
    client = HBaseClient(settings.hbase)
    security = await ServerSecurity.start(settings.security, client, settings.hbase.timeout_s)
    servicer = AuditServicer(
        AuditStore(client), settings.hbase.timeout_s, ModelStore(client), VersionStore(client)
    )
    running = await start_server(
        lambda s: audit_grpc.add_AuditServiceServicer_to_server(servicer, s),
        [AUDIT_SERVICE.full_name],
        settings.server.host,
        settings.server.audit_port if port is None else port,
        metrics=settings.metrics.address("audit"),
        interceptors=tracing.interceptors,
        credentials=security.credentials,
        auth=security.interceptor,
    )

    async def on_stop() -> None:
        await security.stop()
        client.close()
        await tracing.stop()

    running.on_stop = on_stop
    running.on_reload = security.reload_tls
    return running


async def start_model_server(
    settings: Settings, port: int | None = None, *, tracer_provider: TracerProvider | None = None
) -> RunningServer:
    await _ensure_schema(settings)
    tracing = ServerTracing.start(settings.tracing, "rowcast-model", tracer_provider)
    client = HBaseClient(settings.hbase)
    security = await ServerSecurity.start(settings.security, client, settings.hbase.timeout_s)
    notifier = await open_notifier(settings.hbase, settings.server.registry_watch)
    registry = Registry.over(client)
    propagator = Propagator(
        registry.models,
        notifier,
        wait_s=settings.server.propagation_timeout_s,
        store_timeout_s=settings.hbase.timeout_s,
    )
    admin = TableAdmin(settings.hbase)
    artifacts = ArtifactStore(client)
    materializations = Materializations(
        settings, registry, PredictionStore(client), admin, artifacts, OperationStore(client)
    )
    servicer = ModelServicer(
        settings, registry, artifacts, admin, client, materializations, propagator
    )
    running = await start_server(
        lambda s: model_grpc.add_ModelServiceServicer_to_server(servicer, s),
        [MODEL_SERVICE.full_name],
        settings.server.host,
        settings.server.model_port if port is None else port,
        max_message_bytes=MAX_MODEL_UPLOAD_BYTES,
        metrics=settings.metrics.address("model"),
        interceptors=tracing.interceptors,
        credentials=security.credentials,
        auth=security.interceptor,
    )

    async def on_stop() -> None:
        await materializations.stop()
        await security.stop()
        await close_notifier(notifier)
        client.close()
        await tracing.stop()

    running.on_stop = on_stop
    running.on_reload = security.reload_tls
    return running
