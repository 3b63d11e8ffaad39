"""Where a model's aliases point (`current`, `previous`, user aliases), the activation history,
and retirement: every change of what the prediction servers route to.

Aliases live in the model's row, so switching `current` and `previous` is one row-atomic put.
This store only writes HBase: making a change reach the servers (the generation bump, the
ZooKeeper announcement and the wait) is rowcast.propagation's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import happybase

from rowcast.core.keys import activation_key, model_prefix, version_row
from rowcast.core.records import Activation, HistoryKind, ModelInfo, VersionInfo, VersionState
from rowcast.errors import FailedPrecondition, NotFound, VersionNotFound, VersionNotReady
from rowcast.store.client import HBaseClient, check_and_put
from rowcast.store.registry_rows import (
    CURRENT_COL,
    NEXT_VERSION_COL,
    PREVIOUS_COL,
    STATE_COL,
    alias_col,
    model_from_row,
    model_row,
    now_ms,
    require_ready,
    text,
    version_from_row,
)
from rowcast.store.schema import ACTIVATIONS, MODELS, VERSIONS


@dataclass(frozen=True)
class RouteChange:
    """A model after a change of its aliases, and when the change was made."""

    model: ModelInfo
    time_ms: int


@dataclass(frozen=True)
class Retirement:
    """A version marked RETIRED, and whether aliases that named it were dropped (then the
    servers must follow before its table may go)."""

    version: VersionInfo
    aliases_dropped: bool


class AliasStore:
    """Switches, sets and drops aliases, records activations, and retires versions."""

    def __init__(self, client: HBaseClient) -> None:
        self._client = client

    async def activate(
        self, model: str, version: int, actor: str, reason: str, *, timeout_s: float
    ) -> RouteChange:
        """Point `current` at a READY version (the old one becomes `previous`); log it."""
        return await self._switch(
            model, lambda row: version, actor, reason, timeout_s, HistoryKind.ACTIVATION
        )

    async def rollback(
        self, model: str, actor: str, reason: str, *, timeout_s: float
    ) -> RouteChange:
        """Make `previous` current again (and the current one `previous`)."""

        def target(row: dict[bytes, bytes]) -> int:
            previous = int(text(row, PREVIOUS_COL, "0"))
            if not previous:
                raise FailedPrecondition(f"model {model!r} has no previous version to roll back to")
            return previous

        return await self._switch(model, target, actor, reason, timeout_s, HistoryKind.ROLLBACK)

    async def _switch(
        self,
        model: str,
        target: Callable[[dict[bytes, bytes]], int],
        actor: str,
        reason: str,
        timeout_s: float,
        kind: HistoryKind,
    ) -> RouteChange:
        def work(conn: happybase.Connection) -> RouteChange:
            row = model_row(conn, model)
            version = target(row)
            require_ready(conn, model, version, "activated")
            now = now_ms()
            expected = row.get(CURRENT_COL, b"")
            current = int(expected or b"0")
            aliases = {CURRENT_COL: str(version).encode()}
            # Compare-and-set on `current`: of two admins switching at once, one wins and the
            # other is told to retry, instead of both believing they won. `current` is what
            # prediction servers follow; `previous` only informs a later rollback, so it is
            # written right after.
            if not check_and_put(
                conn, MODELS, model.encode(), CURRENT_COL, expected, aliases[CURRENT_COL]
            ):
                raise FailedPrecondition(
                    f"model {model!r} changed concurrently; read it again and retry"
                )
            # A retirement may have raced us between the READY check and the switch. It marks
            # the version RETIRED before it reads `current`, and we wrote `current` before we
            # read the state again: one of the two sees the other, and backs off.
            state = text(conn.table(VERSIONS).row(version_row(model, version)), STATE_COL)
            if state != VersionState.READY.value:
                check_and_put(
                    conn, MODELS, model.encode(), CURRENT_COL, aliases[CURRENT_COL], expected
                )
                raise VersionNotReady(
                    f"version {version} of {model!r} became {state} while it was being "
                    "activated; nothing was switched"
                )
            if current and current != version:
                aliases[PREVIOUS_COL] = str(current).encode()
                conn.table(MODELS).put(model.encode(), {PREVIOUS_COL: aliases[PREVIOUS_COL]})
            _log(conn, model, kind, current, version, actor, reason, now)
            row.update(aliases)
            return RouteChange(model_from_row(model, row), now)

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def set_alias(
        self, model: str, alias: str, version: int, *, timeout_s: float
    ) -> RouteChange:
        """Point a user alias at a READY version."""

        def work(conn: happybase.Connection) -> RouteChange:
            row = model_row(conn, model)
            require_ready(conn, model, version, "aliased")
            cells = {alias_col(alias): str(version).encode()}
            conn.table(MODELS).put(model.encode(), cells)
            row.update(cells)
            return RouteChange(model_from_row(model, row), now_ms())

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def delete_alias(self, model: str, alias: str, *, timeout_s: float) -> RouteChange:
        """Remove a user alias."""

        def work(conn: happybase.Connection) -> RouteChange:
            row = model_row(conn, model)
            column = alias_col(alias)
            if column not in row:
                raise NotFound(f"model {model!r} has no alias {alias!r}")
            conn.table(MODELS).delete(model.encode(), columns=[column])
            del row[column]
            return RouteChange(model_from_row(model, row), now_ms())

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def begin_retire(
        self, model: str, version: int, actor: str, *, timeout_s: float, reason: str = ""
    ) -> Retirement:
        """Refuse for the active version; otherwise mark it RETIRED (recording who), then drop
        every alias naming it. The caller drops the table once the servers have followed the
        alias change (when there was one)."""

        def work(conn: happybase.Connection) -> Retirement:
            models = conn.table(MODELS)
            row = model_row(conn, model)
            versions = conn.table(VERSIONS)
            key = version_row(model, version)
            vrow = versions.row(key)
            if not vrow:
                raise VersionNotFound(f"model {model!r} has no version {version}")
            if int(text(row, CURRENT_COL, "0")) == version:
                raise _active_refusal(model, version)
            before = vrow.get(STATE_COL, b"")
            now = now_ms()
            cells = _retired_cells(actor, now)
            # RETIRED first, compare-and-set against the state we read, then `current` read
            # again: an activation racing us either sees RETIRED and backs off, or has already
            # written `current`, which we see here (activate writes it before re-reading the
            # state), and then we back off.
            if not check_and_put(conn, VERSIONS, key, STATE_COL, before, cells[STATE_COL]):
                raise FailedPrecondition(
                    f"version {version} of {model!r} changed concurrently; read it again and retry"
                )
            if int(text(models.row(model.encode()), CURRENT_COL, "0")) == version:
                check_and_put(conn, VERSIONS, key, STATE_COL, cells[STATE_COL], before)
                raise _active_refusal(model, version)
            versions.put(key, cells)
            vrow.update(cells)
            naming = [
                c for c, v in row.items() if c.startswith(b"a:") and v == str(version).encode()
            ]
            if naming:
                models.delete(model.encode(), columns=naming)
            _log(conn, model, HistoryKind.RETIREMENT, version, 0, actor, reason, now)
            return Retirement(version_from_row(vrow), aliases_dropped=bool(naming))

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def table_dropped(self, model: str, version: int, *, timeout_s: float) -> VersionInfo:
        """Record that a retired version's table is gone."""

        def work(conn: happybase.Connection) -> VersionInfo:
            key = version_row(model, version)
            conn.table(VERSIONS).put(key, {b"v:table_dropped": b"1"})
            return version_from_row(conn.table(VERSIONS).row(key))

        return await self._client.run(work, timeout_s=timeout_s)

    async def begin_delete(
        self, model: str, actor: str, reason: str, *, timeout_s: float
    ) -> list[VersionInfo]:
        """Delete a model that serves nothing: refuse while `current` or a user alias names a
        version or a version is MATERIALIZING; otherwise retire every version not yet retired,
        log the deletion, and remove the model's row but for its version counter (so numbers
        are never reused). Returns the versions whose tables the caller must drop."""

        def work(conn: happybase.Connection) -> list[VersionInfo]:
            models = conn.table(MODELS)
            row = model_row(conn, model)
            serving = sorted(
                c[2:].decode()
                for c, v in row.items()
                if c.startswith(b"a:") and c != PREVIOUS_COL and v and int(v) > 0
            )
            if serving:
                raise FailedPrecondition(
                    f"model {model!r} still serves through alias(es) {', '.join(serving)}: "
                    "delete the user aliases (and activate nothing) before deleting the model"
                )
            versions = conn.table(VERSIONS)
            rows = [vr for _, vr in versions.scan(row_prefix=model_prefix(model))]
            infos = [version_from_row(vr) for vr in rows if STATE_COL in vr]
            busy = [v.version for v in infos if v.state is VersionState.MATERIALIZING]
            if busy:
                raise FailedPrecondition(
                    f"version(s) {busy} of {model!r} are being materialised: cancel them "
                    "first (rowcast models operation NAME --cancel)"
                )
            now = now_ms()
            retired: list[VersionInfo] = []
            for info in infos:
                if info.state is VersionState.RETIRED:
                    continue
                versions.put(version_row(model, info.version), _retired_cells(actor, now))
                retired.append(info)
            _log(conn, model, HistoryKind.DELETION, 0, 0, actor, reason, now)
            keep = {NEXT_VERSION_COL}
            models.delete(model.encode(), columns=[c for c in row if c not in keep])
            return retired

        return await self._client.run(work, timeout_s=timeout_s, retry=False)

    async def list_activations(self, model: str, *, timeout_s: float) -> list[Activation]:
        """The model's activation history, newest first."""

        def work(conn: happybase.Connection) -> list[Activation]:
            return [
                Activation(
                    model=model,
                    from_version=int(text(row, b"h:from", "0")),
                    to_version=int(text(row, b"h:to", "0")),
                    actor=text(row, b"h:actor"),
                    reason=text(row, b"h:reason"),
                    time_ms=int(text(row, b"h:time", "0")),
                    kind=_kind(text(row, b"h:kind"), text(row, b"h:reason")),
                )
                for _, row in conn.table(ACTIVATIONS).scan(row_prefix=model_prefix(model))
            ]

        return await self._client.run(work, timeout_s=timeout_s)


def _retired_cells(actor: str, time_ms: int) -> dict[bytes, bytes]:
    """A version row's cells once retired: by whom and when."""
    return {
        STATE_COL: VersionState.RETIRED.value.encode(),
        b"v:update_time": str(time_ms).encode(),
        b"v:retired_by": actor.encode(),
        b"v:retire_time": str(time_ms).encode(),
    }


def _log(
    conn: happybase.Connection,
    model: str,
    kind: HistoryKind,
    from_version: int,
    to_version: int,
    actor: str,
    reason: str,
    time_ms: int,
) -> None:
    """Append an entry to the model's history."""
    conn.table(ACTIVATIONS).put(
        activation_key(model, time_ms),
        {
            b"h:from": str(from_version).encode(),
            b"h:to": str(to_version).encode(),
            b"h:actor": actor.encode(),
            b"h:reason": reason.encode(),
            b"h:time": str(time_ms).encode(),
            b"h:kind": kind.value.encode(),
        },
    )


def _kind(value: str, reason: str) -> HistoryKind:
    """An entry's kind; entries written before kinds were recorded are activations, or
    rollbacks when their reason says so (as rollbacks used to record)."""
    if value:
        return HistoryKind(value)
    return HistoryKind.ROLLBACK if reason.startswith("rollback") else HistoryKind.ACTIVATION


def _active_refusal(model: str, version: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"version {version} of {model!r} is the active version; activate another "
        "version (or roll back) before retiring it"
    )
