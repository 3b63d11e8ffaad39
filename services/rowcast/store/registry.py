"""The model registry in HBase: models, versions, aliases and the activation history.

Cells are UTF-8 text (JSON for structures) so that admins can read them from the HBase shell.
Version numbers come from an HBase atomic counter: a retried increment may skip a number but
never hands the same one out twice, which is the promise (numbers are never reused).
Aliases live in the model's row, so switching `current` and `previous` is one row-atomic put.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import happybase

from rowcast.core.keys import activation_key, model_prefix, version_row
from rowcast.core.records import (
    Activation,
    ModelInfo,
    OutputKind,
    VersionInfo,
    VersionState,
)
from rowcast.core.signature import Signature
from rowcast.errors import (
    AlreadyExists,
    FailedPrecondition,
    ModelNotFound,
    NotFound,
    VersionNotFound,
    VersionNotReady,
)
from rowcast.store.client import LOWER_ERRORS, HBaseClient, check_and_put
from rowcast.store.notify import RegistryNotifier
from rowcast.store.schema import (
    ACTIVATIONS,
    GENERATION_ROW,
    MODELS,
    VERSIONS,
    prediction_table,
)

_GEN_COL = b"m:generation"
_NEXT_VERSION_COL = b"m:next_version"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(row: dict[bytes, bytes], col: bytes, default: str = "") -> str:
    raw = row.get(col)
    return raw.decode() if raw is not None else default


def _model_from_row(name: str, row: dict[bytes, bytes]) -> ModelInfo:
    output = json.loads(_text(row, b"m:output", "{}"))
    aliases = {
        col[2:].decode(): int(value)
        for col, value in row.items()
        if col.startswith(b"a:") and value and int(value) > 0
    }
    return ModelInfo(
        name=name,
        description=_text(row, b"m:description"),
        signature=Signature.from_dict(json.loads(_text(row, b"m:signature"))),
        output_kind=OutputKind(output.get("kind", OutputKind.PROBABILITY.value)),
        output_description=str(output.get("description", "")),
        current_version=aliases.get("current", 0),
        previous_version=aliases.get("previous", 0),
        create_time_ms=int(_text(row, b"m:create_time", "0")),
        salt_buckets=int(_text(row, b"m:salt_buckets", "16")),
        aliases=aliases,
    )


def _version_from_row(row: dict[bytes, bytes]) -> VersionInfo:
    return VersionInfo(
        model=_text(row, b"v:model"),
        version=int(_text(row, b"v:version")),
        state=VersionState(_text(row, b"v:state")),
        table=_text(row, b"v:table"),
        row_count=int(_text(row, b"v:row_count", "0")),
        creator=_text(row, b"v:creator"),
        metrics={k: float(v) for k, v in json.loads(_text(row, b"v:metrics", "{}")).items()},
        create_time_ms=int(_text(row, b"v:create_time", "0")),
        update_time_ms=int(_text(row, b"v:update_time", "0")),
        rows_written=int(_text(row, b"v:rows_done", "0")),
        checksum_done=int(_text(row, b"v:checksum_done", "0")),
        failure_reason=_text(row, b"v:failure"),
        evaluation_dataset=_text(row, b"v:dataset"),
    )


class RegistryStore:
    """Reads and writes models, versions, aliases and activations in the registry tables."""

    def __init__(self, client: HBaseClient, notifier: RegistryNotifier | None = None) -> None:
        """`notifier`: announces every generation bump in ZooKeeper, so that prediction
        servers that watch it reload at once (store/notify.py); without one they poll."""
        self._client = client
        self._notifier = notifier

    def _bump(self, models: happybase.Table) -> int:
        """Bump the registry generation (every route change does), then announce it.

        Tried up to three times: a repeated increment only costs the servers one more reload,
        while a lost one would leave them on the old routes until their periodic full reload
        (router.FULL_RELOAD_S)."""
        for attempt in range(3):
            try:
                generation = int(models.counter_inc(GENERATION_ROW, _GEN_COL))
                break
            except LOWER_ERRORS:
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))
                with contextlib.suppress(*LOWER_ERRORS):  # a broken socket: a fresh one
                    models.connection.close()
                    models.connection.open()
        if self._notifier is not None:
            self._notifier.announce(generation)
        return generation

    async def register_model(
        self,
        name: str,
        signature: Signature,
        output_kind: OutputKind,
        output_description: str,
        description: str,
        salt_buckets: int,
        timeout_s: float | None = None,
        *,
        exist_ok: bool = False,
    ) -> ModelInfo:
        """Register a model. When it exists: return it if exist_ok, else ALREADY_EXISTS."""

        def work(conn: happybase.Connection) -> ModelInfo:
            table = conn.table(MODELS)
            existing = table.row(name.encode())
            if b"m:signature" in existing:
                if exist_ok:
                    return _model_from_row(name, existing)
                raise AlreadyExists(f"model {name!r} is already registered")
            cells = {
                b"m:signature": json.dumps(signature.to_dict()).encode(),
                b"m:output": json.dumps(
                    {"kind": output_kind.value, "description": output_description}
                ).encode(),
                b"m:description": description.encode(),
                b"m:create_time": str(_now_ms()).encode(),
                b"m:salt_buckets": str(salt_buckets).encode(),
            }
            table.put(name.encode(), cells)
            return _model_from_row(name, cells)

        return await self._client.run(work, timeout_s=timeout_s)

    async def get_model(self, name: str, timeout_s: float | None = None) -> ModelInfo:
        def work(conn: happybase.Connection) -> ModelInfo:
            row = conn.table(MODELS).row(name.encode())
            if b"m:signature" not in row:
                raise ModelNotFound(f"model {name!r} is not registered")
            return _model_from_row(name, row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def list_models(self, timeout_s: float | None = None) -> list[ModelInfo]:
        def work(conn: happybase.Connection) -> list[ModelInfo]:
            return [
                _model_from_row(key.decode(), row)
                for key, row in conn.table(MODELS).scan()
                if b"m:signature" in row
            ]

        return await self._client.run(work, timeout_s=timeout_s)

    async def new_version(
        self, model: str, creator: str, timeout_s: float | None = None
    ) -> VersionInfo:
        """Allocate the next version number and record it as REGISTERED."""

        def work(conn: happybase.Connection) -> VersionInfo:
            models = conn.table(MODELS)
            if b"m:signature" not in models.row(model.encode(), columns=[b"m:signature"]):
                raise ModelNotFound(f"model {model!r} is not registered")
            # Not retried: an increment is not idempotent, and a retry could skip a number.
            number = int(models.counter_inc(model.encode(), _NEXT_VERSION_COL))
            now = _now_ms()
            info = VersionInfo(
                model=model,
                version=number,
                state=VersionState.REGISTERED,
                table=prediction_table(model, number),
                row_count=0,
                creator=creator,
                metrics={},
                create_time_ms=now,
                update_time_ms=now,
            )
            conn.table(VERSIONS).put(version_row(model, number), _version_cells(info))
            return info

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def update_version(
        self,
        model: str,
        version: int,
        *,
        state: VersionState,
        row_count: int | None = None,
        metrics: dict[str, float] | None = None,
        failure_reason: str | None = None,
        evaluation_dataset: str | None = None,
        timeout_s: float | None = None,
    ) -> VersionInfo:
        def work(conn: happybase.Connection) -> VersionInfo:
            table = conn.table(VERSIONS)
            key = version_row(model, version)
            row = table.row(key)
            if not row:
                raise VersionNotFound(f"model {model!r} has no version {version}")
            if row.get(b"v:state") == VersionState.RETIRED.value.encode():
                raise FailedPrecondition(
                    f"version {version} of {model!r} is RETIRED; a retired version never "
                    "changes again"
                )
            cells: dict[bytes, bytes] = {
                b"v:state": state.value.encode(),
                b"v:update_time": str(_now_ms()).encode(),
            }
            if row_count is not None:
                cells[b"v:row_count"] = str(row_count).encode()
            if metrics is not None:
                cells[b"v:metrics"] = json.dumps(metrics).encode()
            if failure_reason is not None:
                cells[b"v:failure"] = failure_reason.encode()
            if evaluation_dataset is not None:
                cells[b"v:dataset"] = evaluation_dataset.encode()
            table.put(key, cells)
            row.update(cells)
            return _version_from_row(row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def get_version(
        self, model: str, version: int, timeout_s: float | None = None
    ) -> VersionInfo:
        def work(conn: happybase.Connection) -> VersionInfo:
            row = conn.table(VERSIONS).row(version_row(model, version))
            if not row:
                if b"m:signature" not in conn.table(MODELS).row(model.encode()):
                    raise ModelNotFound(f"model {model!r} is not registered")
                raise VersionNotFound(f"model {model!r} has no version {version}")
            return _version_from_row(row)

        return await self._client.run(work, timeout_s=timeout_s)

    async def list_versions(self, model: str, timeout_s: float | None = None) -> list[VersionInfo]:
        """All versions of a model, newest first (the row key sorts them so)."""

        def work(conn: happybase.Connection) -> list[VersionInfo]:
            if b"m:signature" not in conn.table(MODELS).row(model.encode()):
                raise ModelNotFound(f"model {model!r} is not registered")
            prefix = model_prefix(model)
            return [
                _version_from_row(row) for _, row in conn.table(VERSIONS).scan(row_prefix=prefix)
            ]

        return await self._client.run(work, timeout_s=timeout_s)

    async def activate(
        self, model: str, version: int, actor: str, reason: str, timeout_s: float | None = None
    ) -> Switched:
        """Point `current` at a READY version (the old one becomes `previous`); log it."""
        return await self._switch(model, lambda row: version, actor, reason, timeout_s)

    async def rollback(
        self, model: str, actor: str, reason: str, timeout_s: float | None = None
    ) -> Switched:
        """Make `previous` current again (and the current one `previous`)."""

        def target(row: dict[bytes, bytes]) -> int:
            previous = int(_text(row, b"a:previous", "0"))
            if not previous:
                raise FailedPrecondition(f"model {model!r} has no previous version to roll back to")
            return previous

        return await self._switch(model, target, actor, f"rollback: {reason}".strip(), timeout_s)

    async def _switch(
        self,
        model: str,
        target: Callable[[dict[bytes, bytes]], int],
        actor: str,
        reason: str,
        timeout_s: float | None,
    ) -> Switched:
        def work(conn: happybase.Connection) -> Switched:
            models = conn.table(MODELS)
            row = models.row(model.encode())
            if b"m:signature" not in row:
                raise ModelNotFound(f"model {model!r} is not registered")
            version = target(row)
            _require_ready(conn, model, version, "activated")
            now = _now_ms()
            expected = row.get(b"a:current", b"")
            current = int(expected or b"0")
            aliases = {b"a:current": str(version).encode()}
            # Compare-and-set on `current`: of two admins switching at once, one wins and the
            # other is told to retry, instead of both believing they won. `current` is what
            # prediction servers follow; `previous` only informs a later rollback, so it is
            # written right after.
            if not check_and_put(
                conn, MODELS, model.encode(), b"a:current", expected, aliases[b"a:current"]
            ):
                raise FailedPrecondition(
                    f"model {model!r} changed concurrently; read it again and retry"
                )
            # A retirement may have raced us between the READY check and the switch. It marks
            # the version RETIRED before it reads `current`, and we wrote `current` before we
            # read the state again: one of the two sees the other, and backs off.
            state = _text(conn.table(VERSIONS).row(version_row(model, version)), b"v:state")
            if state != VersionState.READY.value:
                check_and_put(
                    conn, MODELS, model.encode(), b"a:current", aliases[b"a:current"], expected
                )
                raise VersionNotReady(
                    f"version {version} of {model!r} became {state} while it was being "
                    "activated; nothing was switched"
                )
            if current and current != version:
                aliases[b"a:previous"] = str(current).encode()
                models.put(model.encode(), {b"a:previous": aliases[b"a:previous"]})
            history_key = activation_key(model, now)
            conn.table(ACTIVATIONS).put(
                history_key,
                {
                    b"h:from": str(current).encode(),
                    b"h:to": str(version).encode(),
                    b"h:actor": actor.encode(),
                    b"h:reason": reason.encode(),
                    b"h:time": str(now).encode(),
                },
            )
            generation = self._bump(models)
            row.update(aliases)
            return Switched(_model_from_row(model, row), now, generation)

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def set_alias(
        self, model: str, alias: str, version: int, timeout_s: float | None = None
    ) -> tuple[ModelInfo, int]:
        """Point a user alias at a READY version; the model and the new generation."""

        def work(conn: happybase.Connection) -> tuple[ModelInfo, int]:
            models = conn.table(MODELS)
            row = models.row(model.encode())
            if b"m:signature" not in row:
                raise ModelNotFound(f"model {model!r} is not registered")
            _require_ready(conn, model, version, "aliased")
            cells = {f"a:{alias}".encode(): str(version).encode()}
            models.put(model.encode(), cells)
            generation = self._bump(models)
            row.update(cells)
            return _model_from_row(model, row), generation

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def delete_alias(
        self, model: str, alias: str, timeout_s: float | None = None
    ) -> tuple[ModelInfo, int]:
        """Remove a user alias; the model and the new generation."""

        def work(conn: happybase.Connection) -> tuple[ModelInfo, int]:
            models = conn.table(MODELS)
            row = models.row(model.encode())
            if b"m:signature" not in row:
                raise ModelNotFound(f"model {model!r} is not registered")
            column = f"a:{alias}".encode()
            if column not in row:
                raise NotFound(f"model {model!r} has no alias {alias!r}")
            models.delete(model.encode(), columns=[column])
            generation = self._bump(models)
            del row[column]
            return _model_from_row(model, row), generation

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def begin_retire(
        self, model: str, version: int, actor: str, timeout_s: float | None = None
    ) -> tuple[VersionInfo, int | None]:
        """Refuse for the active version; otherwise mark it RETIRED (recording who), then drop
        every alias naming it. Returns the version and the generation of the alias change
        (None when no alias named it); the caller drops the table once the servers have
        acknowledged that generation."""

        def work(conn: happybase.Connection) -> tuple[VersionInfo, int | None]:
            models = conn.table(MODELS)
            row = models.row(model.encode())
            if b"m:signature" not in row:
                raise ModelNotFound(f"model {model!r} is not registered")
            versions = conn.table(VERSIONS)
            key = version_row(model, version)
            vrow = versions.row(key)
            if not vrow:
                raise VersionNotFound(f"model {model!r} has no version {version}")
            if int(_text(row, b"a:current", "0")) == version:
                raise _active_refusal(model, version)
            before = vrow.get(b"v:state", b"")
            cells = {
                b"v:state": VersionState.RETIRED.value.encode(),
                b"v:update_time": str(_now_ms()).encode(),
                b"v:retired_by": actor.encode(),
            }
            # RETIRED first, compare-and-set against the state we read, then `current` read
            # again: an activation racing us either sees RETIRED and backs off, or has already
            # written `current`, which we see here (activate writes it before re-reading the
            # state), and then we back off.
            if not check_and_put(conn, VERSIONS, key, b"v:state", before, cells[b"v:state"]):
                raise FailedPrecondition(
                    f"version {version} of {model!r} changed concurrently; read it again and retry"
                )
            if int(_text(models.row(model.encode()), b"a:current", "0")) == version:
                check_and_put(conn, VERSIONS, key, b"v:state", cells[b"v:state"], before)
                raise _active_refusal(model, version)
            versions.put(key, cells)
            vrow.update(cells)
            naming = [
                c for c, v in row.items() if c.startswith(b"a:") and v == str(version).encode()
            ]
            generation = None
            if naming:
                models.delete(model.encode(), columns=naming)
                generation = self._bump(models)
            return _version_from_row(vrow), generation

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def operation_claim(
        self, model: str, version: int, timeout_s: float | None = None
    ) -> str:
        """The id of the last materialisation that claimed the version ("" for none)."""

        def work(conn: happybase.Connection) -> str:
            row = conn.table(VERSIONS).row(version_row(model, version), columns=[b"v:operation"])
            return _text(row, b"v:operation")

        return await self._client.run(work, timeout_s=timeout_s)

    async def claim_operation(
        self, model: str, version: int, seen: str, op_id: str, timeout_s: float | None = None
    ) -> bool:
        """Record `op_id` as the version's materialisation if the claim is still `seen` (what
        the caller read before it checked that no operation runs): of two starters that
        checked at the same time, one wins (compare-and-set)."""

        def work(conn: happybase.Connection) -> bool:
            key = version_row(model, version)
            return check_and_put(conn, VERSIONS, key, b"v:operation", seen.encode(), op_id.encode())

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def update_progress(
        self,
        model: str,
        version: int,
        rows_done: int,
        checksum: int,
        timeout_s: float | None = None,
    ) -> None:
        """Checkpoint the materialisation watermark of a version and the checksum of the cells
        below it, in one row-atomic put (a resume never sees one without the other)."""

        def work(conn: happybase.Connection) -> None:
            conn.table(VERSIONS).put(
                version_row(model, version),
                {
                    b"v:rows_done": str(rows_done).encode(),
                    b"v:checksum_done": str(checksum).encode(),
                },
            )

        await self._client.run(work, timeout_s=timeout_s)

    async def list_activations(
        self, model: str, timeout_s: float | None = None
    ) -> list[Activation]:
        def work(conn: happybase.Connection) -> list[Activation]:
            prefix = model_prefix(model)
            return [
                Activation(
                    model=model,
                    from_version=int(_text(row, b"h:from", "0")),
                    to_version=int(_text(row, b"h:to", "0")),
                    actor=_text(row, b"h:actor"),
                    reason=_text(row, b"h:reason"),
                    time_ms=int(_text(row, b"h:time", "0")),
                )
                for _, row in conn.table(ACTIVATIONS).scan(row_prefix=prefix)
            ]

        return await self._client.run(work, timeout_s=timeout_s)

    async def generation(self, timeout_s: float | None = None) -> int:
        """A number that changes on every activation: cheap to poll (one cell)."""

        def work(conn: happybase.Connection) -> int:
            return int(conn.table(MODELS).counter_get(GENERATION_ROW, _GEN_COL))

        return await self._client.run(work, timeout_s=timeout_s)


def _version_cells(info: VersionInfo) -> dict[bytes, bytes]:
    return {
        b"v:model": info.model.encode(),
        b"v:version": str(info.version).encode(),
        b"v:state": info.state.value.encode(),
        b"v:table": info.table.encode(),
        b"v:row_count": str(info.row_count).encode(),
        b"v:creator": info.creator.encode(),
        b"v:metrics": json.dumps(info.metrics).encode(),
        b"v:create_time": str(info.create_time_ms).encode(),
        b"v:update_time": str(info.update_time_ms).encode(),
    }


def _require_ready(conn: happybase.Connection, model: str, version: int, verb: str) -> None:
    vrow = conn.table(VERSIONS).row(version_row(model, version))
    if not vrow:
        raise VersionNotFound(f"model {model!r} has no version {version}")
    state = _text(vrow, b"v:state")
    if state != VersionState.READY.value:
        raise VersionNotReady(
            f"version {version} of {model!r} is {state}; only a READY version can be {verb}"
        )


def _active_refusal(model: str, version: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"version {version} of {model!r} is the active version; activate another "
        "version (or roll back) before retiring it"
    )


@dataclass(frozen=True)
class Switched:
    """The outcome of an activation or rollback."""

    model: ModelInfo
    time_ms: int
    #: The registry generation the switch produced (what servers acknowledge).
    generation: int
