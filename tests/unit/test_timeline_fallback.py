"""TIMELINE reads fall back to the secondaries by name when the gateway fails them with an
IOError, and retries name a secondary from the start (store/predictions.py: measured after
kill -9 of the primaries' region server, and of the one holding hbase:meta's primary too)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.store.idl import hbase2
from rowcast.store.predictions import (
    PER_KEY_GETS,
    replica_for_attempt,
    timeline_get,
    timeline_get_many,
)

TABLE = b"rowcast:pred_m_v1"


class Gateway:
    """A Thrift2 client whose replicas listed in `down` fail with TIOError; multi-gets fail
    whenever replica 0 is down (HBase's multi-get path), and every get is recorded."""

    def __init__(self, down: set[int]) -> None:
        self.down = down
        self.gets: list[tuple[bytes, int | None]] = []
        self.multi_gets = 0

    def get(self, table: bytes, tget: Any) -> Any:
        replica = tget.targetReplicaId
        self.gets.append((tget.row, replica))
        if (replica or 0) in self.down:
            raise hbase2.TIOError(message=b"Cannot get replica 0 location")
        return hbase2.TResult(row=tget.row, columnValues=[], stale=replica not in (None, 0))

    def getMultiple(self, table: bytes, tgets: list[Any]) -> list[Any]:
        self.multi_gets += 1
        if 0 in self.down:
            raise hbase2.TIOError(message=b"Cannot get replica 0 location")
        return [self.get(table, t) for t in tgets]


def tget(row: bytes) -> Any:
    return hbase2.TGet(row=row, consistency=hbase2.TConsistency.TIMELINE)


def test_a_healthy_primary_is_asked_once() -> None:
    """No error: one TIMELINE get, no replica named."""
    gw = Gateway(down=set())
    assert timeline_get(gw, TABLE, tget(b"k"), 2).stale is False
    assert gw.gets == [(b"k", None)]


def test_a_failed_primary_read_goes_to_the_secondary_by_name() -> None:
    """IOError on the TIMELINE get: the same row asked of replica 1, answered stale."""
    gw = Gateway(down={0})
    assert timeline_get(gw, TABLE, tget(b"k"), 2).stale is True
    assert gw.gets == [(b"k", None), (b"k", 1)]


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_no_replica_answering_raises_the_first_error(replicas: int) -> None:
    """Every replica down (or none to ask): the gateway's first error, after asking each."""
    gw = Gateway(down=set(range(replicas)))
    with pytest.raises(hbase2.TIOError):
        timeline_get(gw, TABLE, tget(b"k"), replicas)
    assert [r for _, r in gw.gets] == [None, *range(1, replicas)]


def test_a_small_batch_of_a_replicated_table_is_read_by_point_gets() -> None:
    """Up to PER_KEY_GETS keys: point gets (the path that falls back to the secondary), never
    getMultiple; with the primary down every key comes from replica 1, in order."""
    gw = Gateway(down={0})
    results = timeline_get_many(gw, TABLE, [tget(b"a"), tget(b"b")], 2)
    assert [r.row for r in results] == [b"a", b"b"] and all(r.stale for r in results)
    assert gw.multi_gets == 0


def test_a_large_batch_uses_a_multi_get_and_falls_back_key_by_key() -> None:
    """More keys than PER_KEY_GETS: one getMultiple; when it fails, key by key from replica 1."""
    keys = [bytes([i]) for i in range(PER_KEY_GETS + 1)]
    healthy = Gateway(down=set())
    assert len(timeline_get_many(healthy, TABLE, [tget(k) for k in keys], 2)) == len(keys)
    assert healthy.multi_gets == 1
    gw = Gateway(down={0})
    results = timeline_get_many(gw, TABLE, [tget(k) for k in keys], 2)
    assert [r.row for r in results] == keys and all(r.stale for r in results)
    assert gw.multi_gets == 1


def test_a_single_replica_table_does_not_retry_a_failed_multi_get() -> None:
    """Replication 1: nothing to fall back to, the error is raised as it is."""
    gw = Gateway(down={0})
    with pytest.raises(hbase2.TIOError):
        timeline_get_many(gw, TABLE, [tget(b"a")], 1)
    assert gw.gets == []


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=1, max_value=5))
def test_attempts_cycle_from_hbases_choice_through_every_secondary(
    attempt: int, replicas: int
) -> None:
    """The first attempt (and each `replicas`-th) lets HBase choose; the others name secondary
    attempt % replicas; a table without replicas is never aimed."""
    target = replica_for_attempt(attempt, replicas)
    if replicas == 1 or attempt % replicas == 0:
        assert target is None
    else:
        assert target == attempt % replicas and 1 <= target < replicas


def test_a_retry_asks_the_secondary_first() -> None:
    """Attempt 1 (the first did not answer in time): replica 1 by name, nothing else."""
    gw = Gateway(down=set())
    assert timeline_get(gw, TABLE, tget(b"k"), 2, attempt=1).stale is True
    assert gw.gets == [(b"k", 1)]


def test_a_retry_whose_secondary_fails_goes_round_to_the_primary() -> None:
    """Attempt 1 with replica 1 down: then the plain TIMELINE get (the primary)."""
    gw = Gateway(down={1})
    assert timeline_get(gw, TABLE, tget(b"k"), 3, attempt=1).stale is True
    assert gw.gets == [(b"k", 1), (b"k", 2)]
    gw = Gateway(down={1, 2})
    assert timeline_get(gw, TABLE, tget(b"k"), 3, attempt=1).stale is False
    assert gw.gets == [(b"k", 1), (b"k", 2), (b"k", None)]


def test_a_retried_large_batch_reads_secondaries_key_by_key() -> None:
    """A retry of a batch over PER_KEY_GETS keys skips getMultiple (HBase's multi-get path
    is the one that waits on a dead primary) and names replica 1 for each key."""
    keys = [bytes([i]) for i in range(PER_KEY_GETS + 1)]
    gw = Gateway(down=set())
    results = timeline_get_many(gw, TABLE, [tget(k) for k in keys], 2, attempt=1)
    assert [r.row for r in results] == keys and all(r.stale for r in results)
    assert gw.multi_gets == 0 and {r for _, r in gw.gets} == {1}
