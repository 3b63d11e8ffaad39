"""TIMELINE reads fall back to the secondaries by name when the gateway fails them with an
IOError (store/predictions.py: measured after kill -9 of the primaries' region server)."""

from __future__ import annotations

from typing import Any

import pytest

from rowcast.store.idl import hbase2
from rowcast.store.predictions import PER_KEY_GETS, timeline_get, timeline_get_many

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
