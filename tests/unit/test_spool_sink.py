"""The audit sink end to end without HBase: decisions go through the spool and the real
StreamDecisions RPC of a real in-process AuditService whose store is a small in-memory fake.
Outages of the service or its store only delay delivery; a full spool says RESOURCE_EXHAUSTED;
a restart delivers what the previous run left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import cast

import pytest
import pytest_asyncio

from rowcast.audit.servicer import AuditServicer
from rowcast.core.keys import new_decision_id
from rowcast.core.records import Decision, RecordResult, Source
from rowcast.errors import Overloaded, StoreUnavailable
from rowcast.prediction.audit_sink import AuditSink, Durability, SpoolConfig, spool_directory
from rowcast.security.tokens import Revoked
from rowcast.server import RunningServer, start_server
from rowcast.spool.files import QUARANTINE_DIR
from rowcast.store.audit import AuditStore
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast_dev.hbase.ports import free_port


class MemoryAuditStore:
    """Keeps decisions in a dict by id (as HBase keeps them by row key); can be made to fail."""

    def __init__(self) -> None:
        self.rows: dict[str, Decision] = {}
        self.writes = 0
        self.down = False

    async def record(
        self, decisions: Sequence[Decision], timeout_s: float | None = None, **_: bool
    ) -> RecordResult:
        if self.down:
            raise StoreUnavailable("HBase is down (test)")
        for d in decisions:
            self.rows[d.decision_id] = d
        self.writes += len(decisions)
        return RecordResult(len(decisions), 0)


def decision(i: int, model: str = "credit_default") -> Decision:
    return Decision(
        decision_id=new_decision_id(),
        model=model,
        model_version=1,
        subject=f"s-{i}",
        features={"balance": float(i), "student": "No"},
        key_hex="0a000100",
        output=0.25,
        source=Source.HBASE,
        decide_time_ms=int(time.time() * 1000),
    )


async def start_audit(store: MemoryAuditStore, port: int = 0) -> RunningServer:
    # The fake is no full AuditStore on purpose: StreamDecisions only calls `record`.
    servicer = AuditServicer(cast(AuditStore, store), 2.0)
    return await start_server(
        lambda s: audit_grpc.add_AuditServiceServicer_to_server(servicer, s),
        ["rowcast.v1.AuditService"],
        "127.0.0.1",
        port,
    )


async def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture(loop_scope="session")
async def store() -> MemoryAuditStore:
    return MemoryAuditStore()


@pytest_asyncio.fixture(loop_scope="session")
async def audit(store: MemoryAuditStore) -> AsyncIterator[RunningServer]:
    running = await start_audit(store)
    yield running
    await running.stop(0.1)


@pytest.mark.parametrize("durability", ["process", "fsync"])
async def test_recorded_decisions_reach_the_audit_service(
    tmp_path: Path, store: MemoryAuditStore, audit: RunningServer, durability: Durability
) -> None:
    """Every decision recorded, concurrently, is stored once it is delivered; the spool empties."""
    sink = AuditSink(f"127.0.0.1:{audit.port}", SpoolConfig(tmp_path, durability=durability))
    await sink.start()
    made = [decision(i) for i in range(500)]
    await asyncio.gather(*(sink.record([d]) for d in made))
    await eventually(lambda: sink.pending_bytes == 0)
    assert {d.decision_id for d in made} <= set(store.rows)
    assert store.rows[made[7].decision_id] == made[7]
    await sink.stop(1.0)


async def test_decisions_wait_in_the_spool_while_the_store_is_down(
    tmp_path: Path, store: MemoryAuditStore, audit: RunningServer
) -> None:
    """While the store fails, record() still returns and the spool grows; on recovery it drains."""
    store.down = True
    sink = AuditSink(f"127.0.0.1:{audit.port}", SpoolConfig(tmp_path))
    await sink.start()
    made = [decision(i) for i in range(50)]
    for d in made:
        await sink.record([d])
    await asyncio.sleep(0.3)
    assert sink.pending_bytes > 0
    assert not {d.decision_id for d in made} & set(store.rows)
    store.down = False
    await eventually(lambda: sink.pending_bytes == 0)
    assert {d.decision_id for d in made} <= set(store.rows)
    await sink.stop(1.0)


async def test_the_audit_service_may_start_after_the_prediction_server(tmp_path: Path) -> None:
    """With no AuditService listening, decisions are spooled; once it starts they arrive."""
    port = free_port()
    sink = AuditSink(f"127.0.0.1:{port}", SpoolConfig(tmp_path))
    await sink.start()
    made = [decision(i) for i in range(20)]
    await sink.record(made)
    store = MemoryAuditStore()
    await asyncio.sleep(0.2)
    running = await start_audit(store, port)
    try:
        await eventually(lambda: sink.pending_bytes == 0, timeout_s=15)
        assert {d.decision_id for d in made} <= set(store.rows)
    finally:
        await sink.stop(1.0)
        await running.stop(0.1)


async def test_a_full_spool_is_overloaded_not_a_drop(tmp_path: Path) -> None:
    """When the spool reaches max_bytes, record() raises Overloaded and stores nothing."""
    sink = AuditSink(f"127.0.0.1:{free_port()}", SpoolConfig(tmp_path, max_bytes=256 << 10))
    await sink.start()
    accepted = 0
    with pytest.raises(Overloaded):
        for i in range(100_000):
            await sink.record([decision(i)])
            accepted += 1
    assert accepted > 100
    await sink.stop(0.0)


async def test_a_restart_delivers_what_the_last_run_left(
    tmp_path: Path, store: MemoryAuditStore
) -> None:
    """Decisions spooled by a run that stopped before delivering are delivered by the next run
    over the same spool directory; none lost, each stored once by id."""
    port = free_port()
    first = AuditSink(f"127.0.0.1:{port}", SpoolConfig(tmp_path))
    await first.start()
    made = [decision(i) for i in range(100)]
    await first.record(made)
    await first.stop(0.0)  # the AuditService is not up: nothing delivered
    running = await start_audit(store, port)
    second = AuditSink(f"127.0.0.1:{port}", SpoolConfig(tmp_path))
    await second.start()
    assert second.recovery is not None and second.recovery.pending_records == 100
    try:
        await eventually(lambda: second.pending_bytes == 0)
        assert {d.decision_id for d in made} <= set(store.rows)
    finally:
        await second.stop(1.0)
        await running.stop(0.1)


async def test_malformed_decisions_are_quarantined_and_the_rest_delivered(
    tmp_path: Path, store: MemoryAuditStore, audit: RunningServer
) -> None:
    """A decision the AuditService refuses does not block the spool: it is kept aside."""
    sink = AuditSink(f"127.0.0.1:{audit.port}", SpoolConfig(tmp_path))
    await sink.start()
    good, bad = decision(1), decision(2, model="Not A Model")
    await sink.record([good, bad])
    await eventually(lambda: sink.pending_bytes == 0)
    assert good.decision_id in store.rows and bad.decision_id not in store.rows
    assert sink.quarantined == 1
    assert any((tmp_path / QUARANTINE_DIR).iterdir())
    await sink.stop(1.0)


async def test_a_new_server_adopts_the_spool_a_dead_one_left(
    tmp_path: Path, store: MemoryAuditStore, audit: RunningServer
) -> None:
    """A spool left in a sibling directory by a server that is gone is delivered by the next
    server that starts; a sibling still owned by a live server is left alone."""
    target = f"127.0.0.1:{audit.port}"
    dead = AuditSink(f"127.0.0.1:{free_port()}", SpoolConfig(tmp_path / "prediction-1"))
    await dead.start()
    left = [decision(i) for i in range(30)]
    await dead.record(left)
    await dead.stop(0.0)
    live_dir = tmp_path / "prediction-2"
    live = AuditSink(f"127.0.0.1:{free_port()}", SpoolConfig(live_dir, adopt_orphans=False))
    await live.start()
    kept = decision(99)
    await live.record([kept])
    newcomer = AuditSink(target, SpoolConfig(tmp_path / "prediction-3"))
    await newcomer.start()
    try:
        await eventually(lambda: {d.decision_id for d in left} <= set(store.rows))
        await asyncio.sleep(0.3)
        assert kept.decision_id not in store.rows  # still in its live owner's spool
    finally:
        await newcomer.stop(1.0)
        await live.stop(0.0)


def test_spool_directories_are_per_port_or_unique() -> None:
    """A fixed port gives a stable directory (found again after a restart); port 0 a fresh one."""
    home = Path("/srv/rowcast")
    assert spool_directory(home, 50051) == home / "spool" / "prediction-50051"
    assert spool_directory(home, 0) != spool_directory(home, 0)
    assert spool_directory(home, 0).parent == home / "spool"


async def test_stop_returns_promptly_while_the_sender_reconnects(tmp_path: Path) -> None:
    """Stopping never hangs, whatever the sender is doing (regression: a cancellation racing
    with a failing stream was swallowed by Python 3.11's TaskGroup)."""
    for i in range(15):
        sink = AuditSink(f"127.0.0.1:{free_port()}", SpoolConfig(tmp_path / f"s{i}"))
        await sink.start()
        await sink.record([decision(j) for j in range(200)])
        await asyncio.sleep(0.01 * (i % 5))
        await asyncio.wait_for(sink.stop(0.0), 5.0)


async def _secure_audit(
    store: MemoryAuditStore,
    tls_dir: Path,
    public_key: bytes,
    revoked: Callable[[], Revoked] = Revoked,
) -> RunningServer:
    """The AuditService with TLS and token authentication, as `rowcast serve audit` runs;
    `revoked` is its revocation list (what security/runtime.py keeps fresh from HBase)."""
    from rowcast.config import SecuritySettings
    from rowcast.security.interceptor import Authenticator, AuthInterceptor
    from rowcast.security.runtime import ReloadableTls
    from rowcast.security.tokens import TokenVerifier

    servicer = AuditServicer(cast(AuditStore, store), 2.0)
    tls = ReloadableTls(SecuritySettings(tls_dir=tls_dir, auth_dir=tls_dir, auth=False))
    return await start_server(
        lambda s: audit_grpc.add_AuditServiceServicer_to_server(servicer, s),
        ["rowcast.v1.AuditService"],
        "127.0.0.1",
        0,
        credentials=tls.credentials,
        auth=AuthInterceptor(Authenticator(TokenVerifier(public_key, revoked), None)),
    )


async def test_a_refused_recorder_token_is_reported_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sender whose token the AuditService refuses (here: signed by another key) logs an
    error naming the cause once, however often it reconnects, and keeps every decision in the
    spool; with a valid token the same spool is delivered whole."""
    import grpc

    from rowcast.security.certs import init_ca
    from rowcast.security.identity import Role
    from rowcast.security.tokens import issue_token, new_signing_key

    init_ca(tmp_path / "tls")
    ca = (tmp_path / "tls" / "ca.pem").read_bytes()
    private, public = new_signing_key()
    forged_key, _ = new_signing_key()

    def credentials(key: bytes) -> grpc.ChannelCredentials:
        token = issue_token(key, "recorder", frozenset({Role.RECORDER}), 600).token
        return grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(ca), grpc.access_token_call_credentials(token)
        )

    store = MemoryAuditStore()
    server = await _secure_audit(store, tmp_path / "tls", public)
    target = f"localhost:{server.port}"
    config = SpoolConfig(tmp_path / "spool", adopt_orphans=False)
    made = [decision(i) for i in range(20)]
    caplog.set_level("ERROR", logger="rowcast.spool.sender")
    sink = AuditSink(target, config, credentials=credentials(forged_key))
    await sink.start()
    try:
        await sink.record(made)
        for _ in range(200):
            if sink.refused is not None:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # several reconnects
        assert sink.refused == grpc.StatusCode.UNAUTHENTICATED
        refusals = [r for r in caplog.records if "refuses this prediction server" in r.message]
        assert len(refusals) == 1, [r.message for r in caplog.records]
        assert not store.rows and sink.pending_bytes > 0
    finally:
        await sink.stop(drain_timeout_s=0.1)
    fixed = AuditSink(target, config, credentials=credentials(private))
    await fixed.start()
    try:
        await asyncio.wait_for(fixed.delivered(), 15)
        assert set(store.rows) == {d.decision_id for d in made}
    finally:
        await fixed.stop(drain_timeout_s=1.0)
        await server.stop(0.1)


async def test_a_token_revoked_while_the_stream_is_open_ends_it(tmp_path: Path) -> None:
    """The audit stream is long-lived: revoking the recorder's token must end it at the next
    batch (UNAUTHENTICATED), not be honoured until it happens to reconnect; what was sent
    before the revocation is stored, what comes after stays in the spool."""
    import grpc

    from rowcast.security.certs import init_ca
    from rowcast.security.identity import Role
    from rowcast.security.tokens import issue_token, new_signing_key

    init_ca(tmp_path / "tls")
    ca = (tmp_path / "tls" / "ca.pem").read_bytes()
    private, public = new_signing_key()
    issued = issue_token(private, "recorder", frozenset({Role.RECORDER}), 600)
    revoked = [Revoked()]
    store = MemoryAuditStore()
    server = await _secure_audit(store, tmp_path / "tls", public, lambda: revoked[0])
    creds = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(ca), grpc.access_token_call_credentials(issued.token)
    )
    sink = AuditSink(
        f"localhost:{server.port}",
        SpoolConfig(tmp_path / "spool", adopt_orphans=False),
        credentials=creds,
    )
    await sink.start()
    try:
        before = [decision(i) for i in range(5)]
        await sink.record(before)
        await asyncio.wait_for(sink.delivered(), 10)
        revoked[0] = Revoked([issued.token_id])
        after = [decision(i) for i in range(5, 10)]
        await sink.record(after)
        for _ in range(200):
            if sink.refused is not None:
                break
            await asyncio.sleep(0.05)
        assert sink.refused == grpc.StatusCode.UNAUTHENTICATED
        assert set(store.rows) == {d.decision_id for d in before}
        assert sink.pending_bytes > 0
    finally:
        await sink.stop(drain_timeout_s=0.1)
        await server.stop(0.1)
