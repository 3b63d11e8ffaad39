"""The domain metrics (rowcast/telemetry/domain.py) move with the facts they count, on the
in-memory stores and pure pieces: cache hits and misses, HBase call latency and errors, the
served version per alias, the spool gauges, decisions delivered/recorded/refused, propagation,
and verification outcomes. Values are read from prometheus_client's default REGISTRY, as
deltas where other tests in the process may have moved them."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import REGISTRY

from rowcast.audit.servicer import AuditServicer, refusal_reason
from rowcast.config import HBaseSettings
from rowcast.core.keys import new_decision_id
from rowcast.core.records import Decision, PredictionRow, Propagation, RecordResult, Source
from rowcast.core.signature import NumericFeature, Signature
from rowcast.errors import InvalidArgument, StoreUnavailable
from rowcast.jobs.verify import Verification
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
from rowcast.prediction.lookup import Lookup, VersionCaches
from rowcast.prediction.router import VersionRouter
from rowcast.propagation import Propagator
from rowcast.server import start_server
from rowcast.spool import Spool
from rowcast.spool.files import segment_name
from rowcast.store.audit import AuditStore
from rowcast.store.client import HBaseClient, operation_of
from rowcast.store.memory import MemoryModels, MemoryPredictions
from rowcast.store.notify import RegistryNotifier
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast_dev.hbase.ports import free_port

SIGNATURE = Signature(
    (NumericFeature("x", edges=(0.0,), representatives=(-1.0, 1.0), lower=-5.0, upper=5.0),)
)
MB = 1 << 20


def value(name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's value; 0 when the series does not exist (yet)."""
    found = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if found is None else found


async def eventually(check: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- cache hits and misses -----------------------------------------------------------------------


def key(i: int) -> bytes:
    return i.to_bytes(4, "big")


async def test_a_lookup_counts_each_hit_and_each_miss_once() -> None:
    """Inputs answered from the cache count as hits, the others as misses, per model: N hits
    and M misses move the counters by exactly N and M (a missing row is a miss every time)."""
    table = "rowcast:pred_hits_v1"
    store = MemoryPredictions({table: {key(i): PredictionRow(i / 10, 1) for i in range(8)}})
    lookup = Lookup(store, VersionCaches(100), 2.0)
    hits = {"model": "hits"}
    before = value("rowcast_cache_hits_total", hits), value("rowcast_cache_misses_total", hits)

    await lookup.get(table, [key(i) for i in range(5)], model="hits", timeout_s=1.0)
    # 0-4 cached now; 5-7 are in HBase; 99 is in no table (found as None, never cached).
    await lookup.get(table, [key(i) for i in range(8)] + [key(99)], model="hits", timeout_s=1.0)
    await lookup.get(table, [key(99)], model="hits", timeout_s=1.0)

    after = value("rowcast_cache_hits_total", hits), value("rowcast_cache_misses_total", hits)
    assert (after[0] - before[0], after[1] - before[1]) == (5, 5 + 4 + 1)


async def test_a_disabled_cache_counts_every_input_as_a_miss() -> None:
    """With cache size 0 nothing is ever a hit."""
    table = "rowcast:pred_nocache_v1"
    store = MemoryPredictions({table: {key(1): PredictionRow(0.5, 1)}})
    lookup = Lookup(store, VersionCaches(0), 2.0)
    labels = {"model": "nocache"}
    before = value("rowcast_cache_misses_total", labels)
    for _ in range(3):
        await lookup.get(table, [key(1)], model="nocache", timeout_s=1.0)
    assert value("rowcast_cache_misses_total", labels) - before == 3
    assert value("rowcast_cache_hits_total", labels) == 0


# -- HBase calls -------------------------------------------------------------------------------


def test_an_hbase_call_is_named_after_the_code_that_made_it() -> None:
    """The default operation of a call is the function that defined the work, without the
    `<locals>` part: the store method, e.g. `PredictionStore.get`."""

    class PredictionStore:
        def get(self) -> Callable[[object], None]:
            def work(conn: object) -> None:
                return None

            return work

    assert operation_of(PredictionStore().get()) == "PredictionStore.get"
    assert operation_of(lambda conn: None) == (
        "test_an_hbase_call_is_named_after_the_code_that_made_it"
    )


async def test_an_unreachable_gateway_counts_each_attempt_as_an_unavailable_call() -> None:
    """A call to a gateway nobody listens on is retried once: two attempts timed, two errors
    of kind `unavailable`, under the given operation and the gateway's host:port."""
    port = free_port()
    client = HBaseClient(HBaseSettings(thrift_port=port, timeout_s=1.0, pool_size=1))
    labels = {"operation": "test.unreachable", "gateway": f"127.0.0.1:{port}"}
    errors = {**labels, "kind": "unavailable"}
    try:
        with pytest.raises(StoreUnavailable):
            await client.run(lambda conn: conn.tables(), timeout_s=5.0, op="test.unreachable")
    finally:
        client.close()
    assert value("rowcast_hbase_call_seconds_count", labels) == 2
    assert value("rowcast_hbase_call_errors_total", errors) == 2


# -- routes ------------------------------------------------------------------------------------


async def test_the_router_shows_the_version_of_each_alias_and_drops_a_deleted_alias() -> None:
    """rowcast_served_version has one series per model and alias, set to its version, gone
    once the alias is; rowcast_routes_generation follows the reloads."""
    store = MemoryModels()
    store.add("routed", SIGNATURE, aliases={"current": 2, "canary": 3})
    store.bump()
    router = VersionRouter(store, 0.01)
    await router.start()
    try:
        served = {"model": "routed", "alias": "current"}
        canary = {"model": "routed", "alias": "canary"}
        assert REGISTRY.get_sample_value("rowcast_served_version", served) == 2
        assert REGISTRY.get_sample_value("rowcast_served_version", canary) == 3
        assert REGISTRY.get_sample_value("rowcast_routes_generation") == 1

        generation = store.delete_alias("routed", "canary")
        store.set_current("routed", 4)
        router.wake()
        await eventually(lambda: REGISTRY.get_sample_value("rowcast_served_version", served) == 4)
        assert REGISTRY.get_sample_value("rowcast_served_version", canary) is None
        assert REGISTRY.get_sample_value("rowcast_routes_generation") == generation + 1
    finally:
        await router.stop()


# -- the spool ---------------------------------------------------------------------------------


def records(n: int) -> list[bytes]:
    return [f"record-{i:06d}".encode() * 3 for i in range(n)]


def test_the_spool_gauges_follow_appends_and_acknowledgements(tmp_path: Path) -> None:
    """Undelivered records rise with each append and fall with each acknowledgement; the age
    is that of the oldest append not yet acknowledged; bytes are what the spool holds."""
    spool = Spool(tmp_path, max_bytes=64 * MB)
    spool.open()
    try:
        records_before = value("rowcast_spool_records")
        bytes_before = value("rowcast_spool_bytes")
        appended = time.time()
        spool.append(records(3))
        spool.append(records(4))
        figures = spool.figures()
        assert figures.undelivered == 7
        assert figures.oldest_append_time is not None
        assert abs(figures.oldest_append_time - appended) < 1.0
        assert value("rowcast_spool_records") - records_before == 7
        assert value("rowcast_spool_bytes") - bytes_before == figures.disk_bytes - 8 > 0

        first = spool.read(spool.cursor, 3, MB)
        spool.acknowledge(first.end)
        assert spool.figures().undelivered == 4
        assert value("rowcast_spool_records") - records_before == 4

        rest = spool.read(first.end, 100, MB)
        spool.acknowledge(rest.end)
        assert spool.figures().undelivered == 0
        assert spool.figures().oldest_append_time is None
        assert value("rowcast_spool_records") == records_before
    finally:
        spool.close()


def test_records_left_by_an_earlier_run_count_with_their_age(tmp_path: Path) -> None:
    """After a restart the undelivered records of the last run are counted, dated by the last
    write to the segment they are in, so the age of the oldest does not start again at 0."""
    first = Spool(tmp_path, max_bytes=64 * MB)
    first.open()
    first.append(records(5))
    segment = first.end().segment
    first.close()
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path / segment_name(segment), (an_hour_ago, an_hour_ago))

    again = Spool(tmp_path, max_bytes=64 * MB)
    again.open()
    try:
        figures = again.figures()
        assert figures.undelivered == 5
        assert figures.oldest_append_time == pytest.approx(an_hour_ago, abs=1.0)
        assert value("rowcast_spool_oldest_undelivered_seconds") >= 3599
    finally:
        again.close()


class MemoryAuditStore:
    """Keeps decisions by id; StreamDecisions calls only `record`."""

    def __init__(self) -> None:
        self.rows: dict[str, Decision] = {}

    async def record(
        self, decisions: Sequence[Decision], timeout_s: float | None = None, **_: bool
    ) -> RecordResult:
        for d in decisions:
            self.rows[d.decision_id] = d
        return RecordResult(len(decisions), 0)


def decision(i: int, model: str = "credit") -> Decision:
    return Decision(
        decision_id=new_decision_id(),
        model=model,
        model_version=1,
        subject=f"s-{i}",
        features={"x": float(i)},
        key_hex="0a00",
        output=0.25,
        source=Source.HBASE,
        decide_time_ms=int(time.time() * 1000),
    )


async def test_delivered_recorded_and_refused_decisions_are_counted(tmp_path: Path) -> None:
    """Through a real in-process AuditService: the prediction side counts the decisions the
    AuditService acknowledged, the AuditService those it wrote and those it refused (by the
    field that failed), and the spool's undelivered records return to where they were."""
    store = MemoryAuditStore()
    servicer = AuditServicer(cast(AuditStore, store), 2.0)
    audit = await start_server(
        lambda s: audit_grpc.add_AuditServiceServicer_to_server(servicer, s),
        ["rowcast.v1.AuditService"],
        "127.0.0.1",
        0,
    )
    refused = {"reason": "invalid_model"}
    before = (
        value("rowcast_decisions_delivered_total"),
        value("rowcast_decisions_recorded_total"),
        value("rowcast_decisions_refused_total", refused),
    )
    sink = AuditSink(f"127.0.0.1:{audit.port}", SpoolConfig(tmp_path, adopt_orphans=False))
    await sink.start()
    try:
        spooled_before = value("rowcast_spool_records")
        await sink.record([decision(i) for i in range(30)] + [decision(99, "Not A Model")])
        await eventually(lambda: sink.pending_bytes == 0)
        await eventually(lambda: value("rowcast_spool_records") == spooled_before)
    finally:
        await sink.stop(1.0)
        await audit.stop(0.1)
    after = (
        value("rowcast_decisions_delivered_total"),
        value("rowcast_decisions_recorded_total"),
        value("rowcast_decisions_refused_total", refused),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [30, 30, 1]
    assert len(store.rows) == 30


def test_a_refusal_is_labelled_by_the_failed_field_without_its_index() -> None:
    """The reason label stays bounded: no index, no feature name, no free text."""
    assert refusal_reason(InvalidArgument.field("decisions[12].decision_id", "bad")) == (
        "invalid_decision_id"
    )
    assert refusal_reason(InvalidArgument.field("decisions[0].features.income", "x")) == (
        "invalid_features"
    )
    assert refusal_reason(InvalidArgument("no fields")) == "invalid"


# -- propagation ---------------------------------------------------------------------------------


class FakeNotifier:
    """Answers the wait with a fixed outcome (ZooKeeper's part is tested with a real one)."""

    def __init__(self, servers: int, lagging: list[str]) -> None:
        self._servers = servers
        self._lagging = lagging
        self.announced: list[int] = []

    def announce(self, generation: int) -> None:
        self.announced.append(generation)

    def await_generation(self, generation: int, timeout_s: float) -> Propagation:
        return Propagation(
            generation=generation,
            servers=self._servers,
            lagging=self._lagging,
            complete=not self._lagging,
        )


def propagator(models: MemoryModels, notifier: FakeNotifier | None) -> Propagator:
    return Propagator(
        models, cast(RegistryNotifier | None, notifier), wait_s=1.0, store_timeout_s=1.0
    )


async def test_a_complete_propagation_is_timed_and_sets_the_registry_generation() -> None:
    """A change every server serves adds one propagation sample; the registry generation is
    the one the change produced and no server lags."""
    models = MemoryModels()
    samples = value("rowcast_activation_propagation_seconds_count")
    result = await propagator(models, FakeNotifier(servers=2, lagging=[])).propagate(budget_s=1.0)
    assert value("rowcast_activation_propagation_seconds_count") - samples == 1
    assert value("rowcast_registry_generation") == result.generation == 1
    assert value("rowcast_activation_lagging_servers") == 0


async def test_a_change_that_times_out_shows_its_lagging_servers_and_is_not_timed() -> None:
    """A change some server did not reach in time adds no sample (it has no propagation time
    yet) and shows how many servers lagged."""
    models = MemoryModels()
    models.bump()
    samples = value("rowcast_activation_propagation_seconds_count")
    notifier = FakeNotifier(servers=3, lagging=["127.0.0.1:1 (pid 1)"])
    await propagator(models, notifier).propagate(budget_s=1.0)
    assert value("rowcast_activation_propagation_seconds_count") == samples
    assert value("rowcast_activation_lagging_servers") == 1
    assert value("rowcast_registry_generation") == 2


async def test_without_zookeeper_only_the_registry_generation_moves() -> None:
    """No notifier: nothing to wait for, so no sample; the generation is still shown."""
    models = MemoryModels()
    for _ in range(4):
        models.bump()
    samples = value("rowcast_activation_propagation_seconds_count")
    await propagator(models, None).propagate(budget_s=1.0)
    assert value("rowcast_activation_propagation_seconds_count") == samples
    assert value("rowcast_registry_generation") == 5


# -- verification ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row_count", "missing", "mismatched", "problems", "outcome"),
    [
        (10, 0, 0, (), "passed"),
        (9, 1, 0, ("short", "missing"), "failed_row_count"),
        (10, 2, 1, ("missing", "differ"), "failed_missing_cells"),
        (10, 0, 3, ("differ",), "failed_mismatched_cells"),
        (10, 0, 0, ("held-out cells missing",), "failed_heldout"),
    ],
)
def test_a_verdict_has_one_bounded_outcome(
    row_count: int, missing: int, mismatched: int, problems: tuple[str, ...], outcome: str
) -> None:
    """The outcome label is `passed` or `failed_` and the first check that failed."""
    verdict = Verification(row_count, 10, 5, mismatched, missing, problems)
    assert verdict.outcome == outcome
