"""Revoked tokens, in HBase so that `rowcast auth revoke` reaches every server without a
restart: one row per revoked token id (`t:<jti>`) or per name (`n:<name>`: every token of the
name issued up to that moment). Rows are never deleted: a token id is random and a name's
row only moves forward, so the table stays a few rows per revocation ever made."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import happybase

from rowcast.security.tokens import Revoked
from rowcast.store.client import HBaseClient
from rowcast.store.schema import REVOCATIONS

_COL = b"r:at"
_BY = b"r:by"


@dataclass(frozen=True)
class Revocation:
    kind: str  # "token" or "name"
    subject: str
    at: int
    by: str
    reason: str


class RevocationStore:
    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def revoke_token(self, token_id: str, by: str, reason: str, *, timeout_s: float) -> None:
        await self._put(b"t:" + token_id.encode(), by, reason, timeout_s=timeout_s)

    async def revoke_name(self, name: str, by: str, reason: str, *, timeout_s: float) -> None:
        await self._put(b"n:" + name.encode(), by, reason, timeout_s=timeout_s)

    async def _put(self, row: bytes, by: str, reason: str, *, timeout_s: float) -> None:
        at = int(time.time())
        cells = {_COL: str(at).encode(), _BY: json.dumps({"by": by, "reason": reason}).encode()}

        def work(conn: happybase.Connection) -> None:
            conn.table(REVOCATIONS).put(row, cells)

        await self._client.run(work, timeout_s=timeout_s)

    async def list(self, *, timeout_s: float) -> list[Revocation]:
        def work(conn: happybase.Connection) -> list[Revocation]:
            out: list[Revocation] = []
            for row, data in conn.table(REVOCATIONS).scan():
                meta = json.loads(data.get(_BY, b"{}") or b"{}")
                kind = "token" if row.startswith(b"t:") else "name"
                out.append(
                    Revocation(
                        kind,
                        row[2:].decode(),
                        int(data.get(_COL, b"0")),
                        str(meta.get("by", "")),
                        str(meta.get("reason", "")),
                    )
                )
            return out

        return await self._client.run(work, timeout_s=timeout_s)

    async def load(self, *, timeout_s: float) -> Revoked:
        entries = await self.list(timeout_s=timeout_s)
        return Revoked(
            (e.subject for e in entries if e.kind == "token"),
            {e.subject: e.at for e in entries if e.kind == "name"},
        )
