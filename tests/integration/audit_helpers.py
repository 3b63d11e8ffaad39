"""Helpers of the audit integration tests: an AuditService wired as in production (real store,
real registry) on a free port, and decisions made up for a registered model."""

from __future__ import annotations

import time

from rowcast.audit.servicer import AuditServicer
from rowcast.config import Settings
from rowcast.core.keys import new_decision_id
from rowcast.core.records import Decision, Source
from rowcast.server import RunningServer, start_server
from rowcast.store.audit import AuditStore
from rowcast.store.client import HBaseClient
from rowcast.store.models import ModelStore
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc


async def start_audit(settings: Settings, port: int = 0) -> RunningServer:
    """An AuditService over the settings' HBase, with output-kind checks on augmentation."""
    client = HBaseClient(settings.hbase)
    servicer = AuditServicer(AuditStore(client), settings.hbase.timeout_s, ModelStore(client))
    running = await start_server(
        lambda s: audit_grpc.add_AuditServiceServicer_to_server(servicer, s),
        ["rowcast.v1.AuditService"],
        "127.0.0.1",
        port,
    )

    async def on_stop() -> None:
        client.close()

    running.on_stop = on_stop
    return running


def made_up(
    model: str,
    version: int,
    *,
    subject: str = "",
    key_hex: str = "0a00010002",
    time_ms: int | None = None,
    output: float = 0.5,
) -> Decision:
    """A decision as a prediction server would record it (not served by any server)."""
    ms = int(time.time() * 1000) if time_ms is None else time_ms
    return Decision(
        decision_id=new_decision_id(ms),
        model=model,
        model_version=version,
        subject=subject,
        features={"balance": 1000.0, "income": 20000.0, "student": "No"},
        key_hex=key_hex,
        output=output,
        source=Source.HBASE,
        decide_time_ms=ms,
    )
