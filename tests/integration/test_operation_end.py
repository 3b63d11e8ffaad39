"""An operation ends exactly once, in HBase: a reader that finds the runner silent ends it
ABORTED, and a runner that comes back afterwards can neither resurrect nor re-end it; it is told
to stop, and the version is left resumable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest_asyncio
from google.rpc import code_pb2

from rowcast.config import Settings
from rowcast.core.keys import new_decision_id
from rowcast.core.records import VersionState
from rowcast.registry.materializations import Materializations
from rowcast.store.admin import TableAdmin
from rowcast.store.artifacts import ArtifactStore
from rowcast.store.client import HBaseClient
from rowcast.store.operations import OperationRecord, OperationState, OperationStore
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient
from tests.integration.conftest import MODEL, Published, Suite

#: Silence after which the stores here declare a runner dead (the service default is 15 s).
STALE_MS = 400
#: Deadline of each store call the tests make.
CALL_S = 30.0


@pytest_asyncio.fixture(loop_scope="session")
async def hbase_client(settings: Settings, published: Published) -> AsyncIterator[HBaseClient]:
    client = HBaseClient(settings.hbase)
    try:
        yield client
    finally:
        client.close()


def running(model: str = "op_end", version: int = 1) -> OperationRecord:
    now = int(time.time() * 1000)
    return OperationRecord(
        op_id=new_decision_id(now),
        model=model,
        version=version,
        state=OperationState.RUNNING,
        rows_written=1_200,
        total_rows=9_600,
        rows_per_second=800.0,
        eta_seconds=10.5,
        start_time_ms=now,
        update_time_ms=now,
    )


async def test_a_silent_runner_is_aborted_and_cannot_come_back(hbase_client: HBaseClient) -> None:
    """Silent past the limit: GetOperation reads it done, ABORTED. The runner's later progress
    report reads it done too (so it stops), its own end loses, and the operation still reads
    the same ABORTED end with the rows it had reached."""
    store = OperationStore(hbase_client, stale_after_ms=STALE_MS)
    record = await store.create(running(), timeout_s=CALL_S)
    assert not (await store.get(record.op_id, timeout_s=CALL_S)).done
    await asyncio.sleep(STALE_MS / 1000 + 0.3)

    aborted = await store.get(record.op_id, timeout_s=CALL_S)
    assert aborted.state is OperationState.ABORTED and aborted.done
    assert aborted.error_code == code_pb2.ABORTED
    assert "stopped reporting" in aborted.error_message
    assert aborted.rows_written == 1_200

    seen = await store.report(replace(record, rows_written=5_000), timeout_s=CALL_S)
    assert seen.done and seen.state is OperationState.ABORTED
    ended = await store.finish(
        replace(record, state=OperationState.SUCCEEDED, rows_written=9_600), timeout_s=CALL_S
    )
    assert ended == aborted
    assert await store.get(record.op_id, timeout_s=CALL_S) == aborted
    assert (await store.request_cancel(record.op_id, timeout_s=CALL_S)) == aborted


async def test_a_runner_that_ends_first_keeps_its_end(hbase_client: HBaseClient) -> None:
    """The runner's end written before anyone found it stale holds: later reads, even long
    after its last report, see SUCCEEDED, never ABORTED."""
    store = OperationStore(hbase_client, stale_after_ms=STALE_MS)
    record = await store.create(running(), timeout_s=CALL_S)
    ended = await store.finish(
        replace(record, state=OperationState.SUCCEEDED, rows_written=9_600), timeout_s=CALL_S
    )
    await asyncio.sleep(STALE_MS / 1000 + 0.3)
    assert await store.get(record.op_id, timeout_s=CALL_S) == ended
    assert ended.state is OperationState.SUCCEEDED and ended.error_code == 0


async def test_concurrent_readers_and_the_runner_agree_on_one_end(
    hbase_client: HBaseClient,
) -> None:
    """Eight readers finding the runner stale and the runner finishing, all at once: every one
    of them gets the same end (whichever compare-and-set won)."""
    store = OperationStore(hbase_client, stale_after_ms=STALE_MS)
    record = await store.create(running(), timeout_s=CALL_S)
    await asyncio.sleep(STALE_MS / 1000 + 0.3)
    finishing = replace(record, state=OperationState.FAILED, error_code=9, error_message="late")
    results = await asyncio.gather(
        *(store.get(record.op_id, timeout_s=CALL_S) for _ in range(8)),
        store.finish(finishing, timeout_s=CALL_S),
    )
    assert len({(r.state, r.error_message, r.update_time_ms) for r in results}) == 1
    assert results[0] == await store.get(record.op_id, timeout_s=CALL_S)


async def test_a_runner_declared_dead_stops_and_leaves_the_version_resumable(
    settings: Settings, suite: Suite, hbase_client: HBaseClient
) -> None:
    """A materialisation running in this process whose operation another replica ended ABORTED
    (as if it had been paused past the limit) stops at its next report: its operation keeps the
    ABORTED end, the version stays MATERIALIZING short of the grid, and MaterializeVersion
    resumes it to READY."""
    name = "op_end_fenced"
    async with AsyncRowcastClient(suite.targets, timeout_s=60.0) as client:
        model = await client.get_model(MODEL)
        await client.register_model(
            pb.Model(name=name, signature=model.signature, output=model.output)
        )
        version = await client.create_version(
            name,
            creator="",
            training=model_pb.TrainingSpec(dataset="default", num_leaves=7, num_trees=20),
        )
        registry = Registry.over(hbase_client)
        operations = OperationStore(hbase_client)
        runner = Materializations(
            settings,
            registry,
            PredictionStore(hbase_client),
            TableAdmin(settings.hbase),
            ArtifactStore(hbase_client),
            operations,
        )
        op = await runner.start(name, version.version, 1_000.0, timeout_s=CALL_S)
        deadline = time.monotonic() + 60
        while (await operations.get(op.op_id, timeout_s=CALL_S)).rows_written < 1_000:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)

        # What a reader on another replica writes when it finds the runner silent.
        other_replica = OperationStore(hbase_client, stale_after_ms=0)
        aborted = await other_replica.get(op.op_id, timeout_s=CALL_S)
        assert aborted.state is OperationState.ABORTED

        await asyncio.wait_for(runner.wait(op.op_id), 30)
        assert await operations.get(op.op_id, timeout_s=CALL_S) == aborted
        info = await registry.versions.get_version(name, version.version, timeout_s=30.0)
        assert info.state is VersionState.MATERIALIZING
        assert 0 < info.rows_written < model.grid_size

        resumed = await client.materialize_version(name, version.version)
        states = [s async for s in client.watch_operation(resumed.name, timeout=120)]
        assert states[-1].version.state == pb.VERSION_STATE_READY, states[-1].error.message
        assert states[-1].version.row_count == model.grid_size
