"""Data sets people bring (`rowcast datasets add`), kept in HBase so that every ModelService
replica and every job can train and evaluate on them.

Layout of `rowcast:datasets`: one info row per data set, keyed by its name (family `m`, one
cell: its sha256, size and description as JSON), and its content (Parquet bytes) in chunk rows keyed
`name/<first 16 hex of sha256>/<chunk number>` (family `f`, one CHUNK_BYTES cell each, so no
single Thrift call carries more than a chunk). Chunks are written first and the info row last,
with a check-and-put: a data set is visible only once complete, two concurrent adds of one
name cannot both win, and the loser's chunks (their key carries the content hash) never mix
with the winner's. A data set is immutable: remove it and add it again to change it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

import happybase

from rowcast.errors import AlreadyExists, NotFound, StoreRejected
from rowcast.store.client import HBaseClient, check_and_put
from rowcast.store.schema import DATASETS

#: One cell of content; well below HBase's default 10 MiB cell limit.
CHUNK_BYTES: Final = 4 * 1024 * 1024
INFO_COL: Final = b"m:info"
CHUNK_COL: Final = b"f:c"


@dataclass(frozen=True)
class DatasetRecord:
    """A stored data set's description: what `datasets get` shows and what the jobs need to
    read it back (`info` is the JSON document jobs/dataset.py writes: schema, split, ...)."""

    name: str
    sha256: str
    size_bytes: int
    info: dict[str, Any]


def _chunk_prefix(name: str, sha256: str) -> bytes:
    return f"{name}/{sha256[:16]}/".encode()


def _chunk_row(name: str, sha256: str, index: int) -> bytes:
    return _chunk_prefix(name, sha256) + f"{index:06d}".encode()


def _record(name: str, row: dict[bytes, bytes]) -> DatasetRecord:
    cell = json.loads(row[INFO_COL])
    return DatasetRecord(name, str(cell["sha256"]), int(cell["size_bytes"]), dict(cell["info"]))


class DatasetStore:
    """Adds, reads, lists and removes stored data sets (content chunked, hash checked)."""

    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def add(
        self, name: str, content: bytes, info: dict[str, Any], *, timeout_s: float
    ) -> DatasetRecord:
        """Store a data set under a new name (ALREADY_EXISTS when the name is taken). Each
        chunk is its own call; `timeout_s` bounds each."""
        sha256 = hashlib.sha256(content).hexdigest()
        await self._client.run(lambda c: self._refuse_taken(c, name), timeout_s=timeout_s)
        starts = range(0, len(content), CHUNK_BYTES)
        for index, start in enumerate(starts):
            chunk = content[start : start + CHUNK_BYTES]

            def put(conn: happybase.Connection, i: int = index, data: bytes = chunk) -> None:
                conn.table(DATASETS).put(_chunk_row(name, sha256, i), {CHUNK_COL: data})

            await self._client.run(put, timeout_s=timeout_s, op="DatasetStore.add")
        record = DatasetRecord(name, sha256, len(content), {**info, "chunks": len(starts)})

        cell = {"sha256": sha256, "size_bytes": len(content), "info": record.info}
        body = json.dumps(cell, sort_keys=True).encode()

        def publish(conn: happybase.Connection) -> None:
            # Last, and only if absent: the one write that makes the data set visible.
            if not check_and_put(conn, DATASETS, name.encode(), INFO_COL, b"", body):
                raise AlreadyExists(f"data set {name!r} already exists")

        await self._client.run(publish, timeout_s=timeout_s, retry=False)
        return record

    @staticmethod
    def _refuse_taken(conn: happybase.Connection, name: str) -> None:
        if INFO_COL in conn.table(DATASETS).row(name.encode(), columns=[INFO_COL]):
            raise AlreadyExists(f"data set {name!r} already exists (remove it first to replace it)")

    async def get(self, name: str, *, timeout_s: float) -> DatasetRecord:
        """One data set's description; NOT_FOUND when there is none of that name."""
        return await self._client.run(lambda c: self._get(c, name), timeout_s=timeout_s)

    def _get(self, conn: happybase.Connection, name: str) -> DatasetRecord:
        row = conn.table(DATASETS).row(name.encode())
        if INFO_COL not in row:
            raise NotFound(f"no data set {name!r} (rowcast datasets list shows them)")
        return _record(name, row)

    def read(self, name: str) -> tuple[DatasetRecord, bytes]:
        """A data set and its content, its hash checked (blocking: for jobs already off the
        event loop; each HBase read waits at most the settings' timeout)."""
        return self._client.call(lambda c: self._read(c, name), op="DatasetStore.read")

    def _read(self, conn: happybase.Connection, name: str) -> tuple[DatasetRecord, bytes]:
        record = self._get(conn, name)
        table = conn.table(DATASETS)
        chunks = [
            v[CHUNK_COL] for _, v in table.scan(row_prefix=_chunk_prefix(name, record.sha256))
        ]
        content = b"".join(chunks)
        if hashlib.sha256(content).hexdigest() != record.sha256:
            raise StoreRejected(
                f"the stored content of data set {name!r} is damaged (sha256 differs)"
            )
        return record, content

    async def list(self, *, timeout_s: float) -> list[DatasetRecord]:
        """Every stored data set, by name."""

        def work(conn: happybase.Connection) -> list[DatasetRecord]:
            # Only info rows have the `m` family.
            rows = conn.table(DATASETS).scan(columns=[b"m"])
            return [_record(key.decode(), row) for key, row in rows if INFO_COL in row]

        return await self._client.run(work, timeout_s=timeout_s)

    async def remove(self, name: str, *, timeout_s: float) -> DatasetRecord:
        """Remove a data set: its info row first (it is gone at once), then its chunks."""

        def work(conn: happybase.Connection) -> DatasetRecord:
            record = self._get(conn, name)
            table = conn.table(DATASETS)
            table.delete(name.encode())
            prefix = _chunk_prefix(name, record.sha256)
            with table.batch() as batch:
                for key, _ in table.scan(row_prefix=prefix, columns=[CHUNK_COL], filter=_KEYS):
                    batch.delete(key)
            return record

        return await self._client.run(work, timeout_s=timeout_s)


#: Scan only the keys of chunk rows (not their megabytes).
_KEYS: Final = b"KeyOnlyFilter()"
