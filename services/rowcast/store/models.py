"""Registered models in HBase, and the registry generation that every route change bumps."""

from __future__ import annotations

import happybase

from rowcast.core.records import ModelInfo, OutputKind
from rowcast.core.signature import Signature
from rowcast.errors import AlreadyExists
from rowcast.store.client import HBaseClient
from rowcast.store.registry_rows import SIGNATURE_COL, model_cells, model_from_row, model_row
from rowcast.store.schema import GENERATION_ROW, MODELS

GENERATION_COL = b"m:generation"


class ModelStore:
    """Registers and reads models (signature, output, aliases) and the registry generation."""

    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def register_model(
        self,
        name: str,
        signature: Signature,
        output_kind: OutputKind,
        output_description: str,
        description: str,
        salt_buckets: int,
        *,
        timeout_s: float,
        exist_ok: bool = False,
    ) -> ModelInfo:
        """Register a model. When it exists: return it if exist_ok, else ALREADY_EXISTS."""

        def work(conn: happybase.Connection) -> ModelInfo:
            table = conn.table(MODELS)
            existing = table.row(name.encode())
            if SIGNATURE_COL in existing:
                if exist_ok:
                    return model_from_row(name, existing)
                raise AlreadyExists(f"model {name!r} is already registered")
            cells = model_cells(
                signature, output_kind, output_description, description, salt_buckets
            )
            table.put(name.encode(), cells)
            return model_from_row(name, cells)

        return await self._client.run(work, timeout_s=timeout_s)

    async def get_model(self, name: str, *, timeout_s: float) -> ModelInfo:
        return await self._client.run(
            lambda conn: model_from_row(name, model_row(conn, name)), timeout_s=timeout_s
        )

    async def list_models(self, *, timeout_s: float) -> list[ModelInfo]:
        def work(conn: happybase.Connection) -> list[ModelInfo]:
            return [
                model_from_row(key.decode(), row)
                for key, row in conn.table(MODELS).scan()
                if SIGNATURE_COL in row
            ]

        return await self._client.run(work, timeout_s=timeout_s)

    async def generation(self, *, timeout_s: float) -> int:
        """A number that changes on every route change: cheap to poll (one cell)."""

        def work(conn: happybase.Connection) -> int:
            return int(conn.table(MODELS).counter_get(GENERATION_ROW, GENERATION_COL))

        return await self._client.run(work, timeout_s=timeout_s)

    async def bump_generation(self, *, timeout_s: float) -> int:
        """Bump the registry generation (after every route change); the new value.

        Retried once on a fresh connection: a repeated increment only costs the servers one
        more reload, while a lost one would leave them on the old routes until their periodic
        full reload (router.FULL_RELOAD_S)."""

        def work(conn: happybase.Connection) -> int:
            return int(conn.table(MODELS).counter_inc(GENERATION_ROW, GENERATION_COL))

        return await self._client.run(work, timeout_s=timeout_s, retry=True)
