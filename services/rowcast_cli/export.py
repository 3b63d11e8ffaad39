"""Export of decisions with their augmentations to CSV or Parquet, for a warehouse.

One row per decision: inputs, served output, model version, times, and the augmentations (the
latest one and the latest approved one as columns, the whole history as JSON). Pages are
fetched and written one at a time, so memory stays flat whatever the size of the audit.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from google.protobuf.json_format import MessageToDict

from rowcast.core.ratelimit import TokenBucket
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient

ExportFormat = Literal["csv", "parquet"]

BASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("decision_id", "string"),
    ("decide_time", "timestamp"),
    ("model", "string"),
    ("model_version", "int64"),
    ("subject", "string"),
    ("key", "string"),
    ("source", "string"),
    ("output", "double"),
    ("inputs_json", "string"),
    ("augmentation_count", "int64"),
    ("better_output", "double"),
    ("augmentation_state", "string"),
    ("augmentation_source", "string"),
    ("augmentation_actor", "string"),
    ("augmentation_reason", "string"),
    ("augmentation_time", "timestamp"),
    ("approved_better_output", "double"),
    ("augmentations_json", "string"),
)


@dataclass(frozen=True)
class Selection:
    """Which decisions to export (the ListDecisions selection)."""

    model: str = ""
    model_version: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def flatten(d: pb.Decision, input_names: Sequence[str]) -> dict[str, Any]:
    """One export row of a decision."""
    inputs = {
        name: (v.number_value if v.WhichOneof("kind") == "number_value" else v.string_value)
        for name, v in sorted(d.features.items())
    }
    augs = list(d.augmentations)
    latest = augs[-1] if augs else None
    approved = [a for a in augs if a.state == pb.AUGMENTATION_STATE_APPROVED]
    row: dict[str, Any] = {
        "decision_id": d.decision_id,
        "decide_time": d.decide_time.ToDatetime(tzinfo=None),
        "model": d.model,
        "model_version": d.model_version,
        "subject": d.subject,
        "key": d.key,
        "source": _enum_name(pb.PredictionSource, d.source, "PREDICTION_SOURCE_"),
        "output": d.output,
        "inputs_json": json.dumps(inputs, sort_keys=True),
        "augmentation_count": len(augs),
        "better_output": latest.better_output if latest else None,
        "augmentation_state": (
            _enum_name(pb.AugmentationState, latest.state, "AUGMENTATION_STATE_")
            if latest
            else None
        ),
        "augmentation_source": (
            _enum_name(pb.AugmentationSource, latest.source, "AUGMENTATION_SOURCE_")
            if latest
            else None
        ),
        "augmentation_actor": latest.actor if latest else None,
        "augmentation_reason": latest.reason if latest else None,
        "augmentation_time": latest.create_time.ToDatetime(tzinfo=None) if latest else None,
        "approved_better_output": approved[-1].better_output if approved else None,
        "augmentations_json": json.dumps(
            [MessageToDict(a, preserving_proto_field_name=True) for a in augs]
        ),
    }
    for name in input_names:
        row[f"input_{name}"] = inputs.get(name)
    return row


async def pages(
    client: AsyncRowcastClient,
    selection: Selection,
    page_size: int,
    bucket: TokenBucket | None = None,
) -> AsyncIterator[list[pb.Decision]]:
    """Pages of the selection; a model without a version means each of its versions in turn.
    With a bucket, each page's rows are taken from it before the page is read."""
    versions = [selection.model_version]
    if selection.model and not selection.model_version:
        versions = [v.version for v in await client.list_versions(selection.model)]
    for version in versions:
        token = ""
        while True:
            if bucket is not None:
                await bucket.take_async(page_size)
            page = await client.list_decisions(
                model=selection.model,
                model_version=version,
                start_time=selection.start_time,
                end_time=selection.end_time,
                page_size=page_size,
                page_token=token,
                timeout=60.0,
            )
            if page.decisions:
                yield list(page.decisions)
            token = page.next_page_token
            if not token:
                break


class RowWriter(Protocol):
    def write(self, rows: list[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


class CsvWriter:
    """Writes export rows as CSV with a header (timestamps in ISO 8601, UTC)."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._writer = csv.DictWriter(self._file, fieldnames=list(columns))
        self._writer.writeheader()

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._writer.writerow(
                {k: v.isoformat() + "Z" if isinstance(v, datetime) else v for k, v in row.items()}
            )

    def close(self) -> None:
        self._file.close()


class ParquetWriter:
    """Writes export rows as Parquet, one row group per page, with a fixed typed schema."""

    def __init__(self, path: Path, columns: Sequence[tuple[str, str]]) -> None:
        # Imported here: only parquet exports need pyarrow (it ships no type information).
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        types = {
            "string": pa.string(),
            "double": pa.float64(),
            "int64": pa.int64(),
            "timestamp": pa.timestamp("ms", tz="UTC"),
        }
        self._pa = pa
        self._schema = pa.schema([(name, types[kind]) for name, kind in columns])
        self._writer = pq.ParquetWriter(path, self._schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._writer.write_table(self._pa.Table.from_pylist(rows, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


async def export(
    client: AsyncRowcastClient,
    out: Path,
    fmt: ExportFormat,
    selection: Selection,
    *,
    page_size: int = 1000,
    rows_per_second: float | None = None,
) -> int:
    """Write the selected decisions to out; returns how many rows were written.

    With a model selected, each of its inputs also gets a typed column `input_<name>`. With
    `rows_per_second`, pages are read at most at that rate (the scan shares HBase with serving).
    """
    input_columns: list[tuple[str, str]] = []
    if selection.model:
        model = await client.get_model(selection.model)
        for f in model.signature.features:
            kind = "double" if f.WhichOneof("binning") == "numeric" else "string"
            input_columns.append((f.name, kind))
    columns = [*BASE_COLUMNS, *((f"input_{n}", k) for n, k in input_columns)]
    writer: RowWriter = (
        ParquetWriter(out, columns) if fmt == "parquet" else CsvWriter(out, [c for c, _ in columns])
    )
    written = 0
    try:
        bucket = TokenBucket(rows_per_second, burst=page_size)
        async for decisions in pages(client, selection, page_size, bucket):
            rows = [flatten(d, [n for n, _ in input_columns]) for d in decisions]
            writer.write(rows)
            written += len(rows)
    finally:
        writer.close()
    return written
