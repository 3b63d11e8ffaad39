"""The durable audit path on a real HBase: decisions spooled by a prediction server's sink
reach the audit table through StreamDecisions, survive an HBase outage and a kill -9 of the
process that spooled them, and are stored exactly once; a full spool makes Predict answer
RESOURCE_EXHAUSTED rather than serve a decision that is not on record."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from rowcast.apps import start_audit_server, start_prediction_server
from rowcast.config import Settings
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
from rowcast.security.runtime import audit_channel_credentials
from rowcast_client import AsyncRowcastClient, NotFoundError, ResourceExhaustedError, Targets
from rowcast_dev.hbase.ports import free_port
from tests.integration.audit_helpers import made_up
from tests.integration.conftest import MODEL, Published, credentials

ROOT = Path(__file__).resolve().parents[2]


async def all_stored(client: AsyncRowcastClient, ids: list[str], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    for decision_id in ids:
        while True:
            try:
                await client.get_decision(decision_id)
                break
            except NotFoundError:
                assert time.monotonic() < deadline, f"{decision_id} never stored"
                await asyncio.sleep(0.1)


async def listed(client: AsyncRowcastClient, subject: str) -> list[str]:
    """Every decision id the subject index lists, all pages."""
    ids: list[str] = []
    token = ""
    while True:
        page = await client.list_decisions(subject, page_size=1000, page_token=token)
        ids.extend(d.decision_id for d in page.decisions)
        token = page.next_page_token
        if not token:
            return ids


async def test_spooled_decisions_survive_an_hbase_outage(
    settings: Settings, published: Published, tmp_path: Path
) -> None:
    """With the AuditService's HBase unreachable, record() keeps returning and the spool grows;
    when an AuditService with HBase comes up on the same address, everything is stored."""
    port = free_port()
    dead = replace(settings, hbase=replace(settings.hbase, thrift_port=free_port(), timeout_s=1.0))
    cut_off = await start_audit_server(dead, port)
    sink = AuditSink(
        f"127.0.0.1:{port}",
        SpoolConfig(tmp_path / "spool", durability="fsync"),
        credentials=audit_channel_credentials(settings.security),
    )
    await sink.start()
    made = [made_up(MODEL, 1, subject="outage") for _ in range(200)]
    try:
        for i in range(0, len(made), 10):
            await sink.record(made[i : i + 10])
        await asyncio.sleep(1.5)
        assert sink.pending_bytes > 0 and sink.sent == 0
        await cut_off.stop(0.1)
        healthy = await start_audit_server(settings, port)
        try:
            async with AsyncRowcastClient(
                Targets(audit=f"127.0.0.1:{port}", credentials=credentials(settings.security)), 5.0
            ) as client:
                await all_stored(client, [d.decision_id for d in made])
                stored = await client.get_decision(made[5].decision_id)
                assert stored.subject == "outage" and stored.output == made[5].output
        finally:
            await sink.stop(2.0)
            await healthy.stop(0.5)
    finally:
        await cut_off.stop(0.1)


CRASHER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from rowcast.config import SecuritySettings
    from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
    from rowcast.security.runtime import audit_channel_credentials
    from tests.integration.audit_helpers import made_up

    async def main(target, spool, durability, home):
        # TLS and the recorder token, as a prediction server sends them.
        credentials = audit_channel_credentials(SecuritySettings.under(Path(home)))
        sink = AuditSink(
            target, SpoolConfig(Path(spool), durability=durability), credentials=credentials
        )
        await sink.start()
        while True:
            d = made_up("credit_default", 1, subject="crash")
            await sink.record([d])
            # The id is printed only once record() returned: what a client would have received.
            print(d.decision_id, flush=True)

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_kill_9_of_the_spooling_process_loses_no_acknowledged_decision(
    settings: Settings, published: Published, tmp_path: Path
) -> None:
    """A process spooling decisions is killed with SIGKILL mid-stream; a new sink over its
    spool delivers the rest: every id the process handed out is stored, once."""
    audit = await start_audit_server(settings, 0)
    target = f"127.0.0.1:{audit.port}"
    spool = tmp_path / "spool"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    handed_out: list[str] = []
    try:
        for durability in ("process", "fsync"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CRASHER,
                target,
                str(spool),
                durability,
                str(settings.hbase.home),
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
            assert proc.stdout is not None
            ids: list[str] = []
            deadline = time.monotonic() + 60
            while len(ids) < 2000 and time.monotonic() < deadline:
                line = await proc.stdout.readline()
                if line:
                    ids.append(line.decode().strip())
            proc.send_signal(signal.SIGKILL)
            rest = await proc.stdout.read()
            await proc.wait()
            # Ids printed before the kill are complete lines; a torn last line was never
            # "received" by anyone, so only whole 32-digit ids count.
            ids.extend(i for i in rest.decode().split() if len(i) == 32)
            assert len(ids) >= 2000
            handed_out.extend(ids)
            sink = AuditSink(
                target, SpoolConfig(spool), credentials=audit_channel_credentials(settings.security)
            )
            await sink.start()
            try:
                await asyncio.wait_for(sink.delivered(), 60)
            finally:
                await sink.stop(5.0)
            assert sink.pending_bytes == 0
        async with AsyncRowcastClient(
            Targets(audit=target, credentials=credentials(settings.security)), 10.0
        ) as client:
            stored = await listed(client, "crash")
            some = await client.get_decision(handed_out[-1])
        assert some.model == "credit_default" and some.subject == "crash"
        # Exactly once: the subject index holds each decision id one time.
        assert len(stored) == len(set(stored))
        lost = set(handed_out) - set(stored)
        assert not lost, f"{len(lost)} of {len(handed_out)} acknowledged decisions lost"
        print(json.dumps({"handed_out": len(handed_out), "stored": len(stored)}))
    finally:
        await audit.stop(0.5)


async def test_predict_is_resource_exhausted_while_the_spool_is_full(
    settings: Settings, published: Published, tmp_path: Path
) -> None:
    """A prediction server with a 4 KiB spool and no AuditService answers Predict until the
    spool is full, then RESOURCE_EXHAUSTED (reason OVERLOADED) with nothing on record for the
    refused call; once an AuditService comes up on its address, every decision answered before
    is stored and Predict answers again."""
    audit_port = free_port()
    small = replace(
        settings,
        hbase=replace(settings.hbase, home=tmp_path),  # the server's spool goes under here
        server=replace(settings.server, audit_spool_max_bytes=4096),
    )
    prediction = await start_prediction_server(small, 0, audit_target=f"127.0.0.1:{audit_port}")
    targets = Targets(
        prediction=f"127.0.0.1:{prediction.port}",
        audit=f"127.0.0.1:{audit_port}",
        credentials=credentials(settings.security),
    )
    run = uuid.uuid4().hex[:8]
    customer: dict[str, float | str] = {"balance": 1_800.0, "income": 30_000.0, "student": "No"}
    try:
        async with AsyncRowcastClient(targets, 5.0) as client:
            answered: list[str] = []
            with pytest.raises(ResourceExhaustedError) as full:
                while len(answered) < 100:
                    r = await client.predict(MODEL, customer, subject=f"full-{run}-{len(answered)}")
                    answered.append(r.decision_id)
            assert full.value.reason == "OVERLOADED"
            assert 5 <= len(answered) < 100
            refused_subject = f"full-{run}-{len(answered)}"
            audit = await start_audit_server(settings, audit_port)
            try:
                await all_stored(client, answered)
                stored = await client.get_decision(answered[-1])
                assert stored.subject == f"full-{run}-{len(answered) - 1}"
                assert await listed(client, refused_subject) == []
                # Room again once delivered segments are deleted (the acknowledgement may land
                # just after the decisions are readable).
                deadline = time.monotonic() + 10
                while True:
                    try:
                        after = await client.predict(MODEL, customer, subject=f"full-{run}-after")
                        break
                    except ResourceExhaustedError:
                        assert time.monotonic() < deadline, "the spool stayed full"
                        await asyncio.sleep(0.1)
                await all_stored(client, [after.decision_id])
            finally:
                await audit.stop(0.5)
    finally:
        await prediction.stop(0.5)
