"""Model artifacts (LightGBM model text) kept in HBase beside the registry, so that any
ModelService replica can materialise or re-score any version."""

from __future__ import annotations

import hashlib

import happybase

from rowcast.core.keys import version_row
from rowcast.errors import NotFound
from rowcast.store.client import HBaseClient
from rowcast.store.schema import ARTIFACTS

#: HBase refuses cells over 10 MiB by default (hbase.client.keyvalue.maxsize): stay well below.
CHUNK_BYTES = 4 * 1024 * 1024


class ArtifactStore:
    """Stores and loads one model file per version, chunked, with its sha256."""

    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def put(self, model: str, version: int, content: bytes, *, timeout_s: float) -> str:
        digest = hashlib.sha256(content).hexdigest()
        cells = {
            f"f:{i:06d}".encode(): content[start : start + CHUNK_BYTES]
            for i, start in enumerate(range(0, len(content), CHUNK_BYTES))
        }
        cells[b"m:size"] = str(len(content)).encode()
        cells[b"m:sha256"] = digest.encode()

        def work(conn: happybase.Connection) -> None:
            conn.table(ARTIFACTS).put(version_row(model, version), cells)

        await self._client.run(work, timeout_s=timeout_s)
        return digest

    async def get(self, model: str, version: int, *, timeout_s: float) -> bytes:
        def work(conn: happybase.Connection) -> bytes:
            row = conn.table(ARTIFACTS).row(version_row(model, version))
            if b"m:sha256" not in row:
                raise NotFound(f"version {version} of {model!r} has no stored model file")
            chunks = sorted((c, v) for c, v in row.items() if c.startswith(b"f:"))
            content = b"".join(v for _, v in chunks)
            if hashlib.sha256(content).hexdigest() != row[b"m:sha256"].decode():
                raise NotFound(f"the stored model file of {model!r} v{version} is damaged")
            return content

        return await self._client.run(work, timeout_s=timeout_s)
