"""How registry records are laid out in the cells of the registry tables (models, versions).

Cells are UTF-8 text (JSON for structures) so that admins can read them from the HBase shell.
Row keys come from core/keys.py; this module only encodes and decodes cell values.
"""

from __future__ import annotations

import json
import time

import happybase

from rowcast.core.keys import version_row
from rowcast.core.records import ModelInfo, OutputKind, VersionInfo, VersionState
from rowcast.core.signature import Signature
from rowcast.errors import ModelNotFound, VersionNotFound, VersionNotReady
from rowcast.store.schema import MODELS, VERSIONS

#: The model row column that marks a registered model.
SIGNATURE_COL = b"m:signature"
#: The model's version counter: survives a DeleteModel, so numbers are never reused.
NEXT_VERSION_COL = b"m:next_version"
CURRENT_COL = b"a:current"
PREVIOUS_COL = b"a:previous"
STATE_COL = b"v:state"


def now_ms() -> int:
    return int(time.time() * 1000)


def text(row: dict[bytes, bytes], col: bytes, default: str = "") -> str:
    raw = row.get(col)
    return raw.decode() if raw is not None else default


def alias_col(alias: str) -> bytes:
    return f"a:{alias}".encode()


def model_from_row(name: str, row: dict[bytes, bytes]) -> ModelInfo:
    output = json.loads(text(row, b"m:output", "{}"))
    aliases = {
        col[2:].decode(): int(value)
        for col, value in row.items()
        if col.startswith(b"a:") and value and int(value) > 0
    }
    return ModelInfo(
        name=name,
        description=text(row, b"m:description"),
        signature=Signature.from_dict(json.loads(text(row, SIGNATURE_COL))),
        output_kind=OutputKind(output.get("kind", OutputKind.PROBABILITY.value)),
        output_description=str(output.get("description", "")),
        current_version=aliases.get("current", 0),
        previous_version=aliases.get("previous", 0),
        create_time_ms=int(text(row, b"m:create_time", "0")),
        salt_buckets=int(text(row, b"m:salt_buckets", "16")),
        aliases=aliases,
    )


def model_cells(
    signature: Signature,
    output_kind: OutputKind,
    output_description: str,
    description: str,
    salt_buckets: int,
) -> dict[bytes, bytes]:
    return {
        SIGNATURE_COL: json.dumps(signature.to_dict()).encode(),
        b"m:output": json.dumps(
            {"kind": output_kind.value, "description": output_description}
        ).encode(),
        b"m:description": description.encode(),
        b"m:create_time": str(now_ms()).encode(),
        b"m:salt_buckets": str(salt_buckets).encode(),
    }


def version_from_row(row: dict[bytes, bytes]) -> VersionInfo:
    return VersionInfo(
        model=text(row, b"v:model"),
        version=int(text(row, b"v:version")),
        state=VersionState(text(row, STATE_COL)),
        table=text(row, b"v:table"),
        row_count=int(text(row, b"v:row_count", "0")),
        creator=text(row, b"v:creator"),
        metrics={k: float(v) for k, v in json.loads(text(row, b"v:metrics", "{}")).items()},
        create_time_ms=int(text(row, b"v:create_time", "0")),
        update_time_ms=int(text(row, b"v:update_time", "0")),
        rows_written=int(text(row, b"v:rows_done", "0")),
        checksum_done=int(text(row, b"v:checksum_done", "0")),
        failure_reason=text(row, b"v:failure"),
        evaluation_dataset=text(row, b"v:dataset"),
        retired_by=text(row, b"v:retired_by"),
        retire_time_ms=int(text(row, b"v:retire_time", "0")),
        table_dropped=text(row, b"v:table_dropped") == "1",
    )


def version_cells(info: VersionInfo) -> dict[bytes, bytes]:
    return {
        b"v:model": info.model.encode(),
        b"v:version": str(info.version).encode(),
        STATE_COL: info.state.value.encode(),
        b"v:table": info.table.encode(),
        b"v:row_count": str(info.row_count).encode(),
        b"v:creator": info.creator.encode(),
        b"v:metrics": json.dumps(info.metrics).encode(),
        b"v:create_time": str(info.create_time_ms).encode(),
        b"v:update_time": str(info.update_time_ms).encode(),
    }


def model_row(conn: happybase.Connection, model: str) -> dict[bytes, bytes]:
    """The model's registry row; ModelNotFound when it is not registered."""
    row: dict[bytes, bytes] = conn.table(MODELS).row(model.encode())
    if SIGNATURE_COL not in row:
        raise ModelNotFound(f"model {model!r} is not registered")
    return row


def require_model(conn: happybase.Connection, model: str) -> None:
    """ModelNotFound unless the model is registered (reads one cell)."""
    if SIGNATURE_COL not in conn.table(MODELS).row(model.encode(), columns=[SIGNATURE_COL]):
        raise ModelNotFound(f"model {model!r} is not registered")


def require_ready(conn: happybase.Connection, model: str, version: int, verb: str) -> None:
    vrow = conn.table(VERSIONS).row(version_row(model, version))
    if not vrow:
        raise VersionNotFound(f"model {model!r} has no version {version}")
    state = text(vrow, STATE_COL)
    if state != VersionState.READY.value:
        raise VersionNotReady(
            f"version {version} of {model!r} is {state}; only a READY version can be {verb}"
        )
