"""Bulk augmentation: rows of a CSV or Parquet file become Augment calls; every row is either
accepted or rejected with a reason, never skipped silently."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient, RowcastClientError

SOURCES = {"person": pb.AUGMENTATION_SOURCE_PERSON, "program": pb.AUGMENTATION_SOURCE_PROGRAM}
STATES = {
    "proposed": pb.AUGMENTATION_STATE_PROPOSED,
    "approved": pb.AUGMENTATION_STATE_APPROVED,
    "rejected": pb.AUGMENTATION_STATE_REJECTED,
}
COLUMNS = ("decision_id", "better_output", "actor", "source", "reason", "state")


@dataclass(frozen=True)
class AugmentRow:
    """One valid row of an augmentation file."""

    line: int
    decision_id: str
    better_output: float
    actor: str
    source: pb.AugmentationSource.ValueType
    reason: str
    state: pb.AugmentationState.ValueType


@dataclass(frozen=True)
class Rejection:
    """A row that was not applied, and why."""

    line: int
    decision_id: str
    reason: str


@dataclass
class BulkReport:
    """Rows accepted and rows rejected (with reasons) of one bulk augmentation."""

    #: Rows recorded by this run.
    accepted: int = 0
    #: Rows an earlier run of the same file had recorded: nothing written again.
    already_applied: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def file_request_prefix(path: Path) -> str:
    """The idempotency prefix of a file's rows: its content's digest. Row n of the same file
    always gets the request id `<prefix>:<n>`, so re-running a file (after a crash, a timeout,
    or by mistake) records each row once; a different file is a new request."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "bulk-" + digest.hexdigest()[:40]


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, row) of a .csv or .parquet file; line 2 is the first CSV row."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.DictReader(f), start=2):
                yield i, dict(row)
    elif suffix in (".parquet", ".pq"):
        # Imported here: only parquet files need pyarrow (it ships no type information).
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield i, row
    else:
        raise ValueError(f"{path}: expected a .csv or .parquet file")


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def parse_row(
    line: int, row: Mapping[str, Any], *, default_actor: str = "", default_source: str = "person"
) -> AugmentRow | Rejection:
    """Validate one row locally; the server checks the rest (unknown decision, output kind)."""
    decision_id = _text(row, "decision_id")
    problems = []
    if not decision_id:
        problems.append("decision_id is missing")
    raw_better = _text(row, "better_output")
    better = math.nan
    try:
        better = float(raw_better)
    except ValueError:
        problems.append(f"better_output {raw_better!r} is not a number")
    if raw_better and not math.isfinite(better):
        problems.append("better_output must be finite")
    actor = _text(row, "actor") or default_actor
    if not actor:
        problems.append("actor is missing")
    source = (_text(row, "source") or default_source).lower()
    if source not in SOURCES:
        problems.append(f"source {source!r} is not person or program")
    state = (_text(row, "state") or "proposed").lower()
    if state not in STATES:
        problems.append(f"state {state!r} is not proposed, approved or rejected")
    if problems:
        return Rejection(line, decision_id, "; ".join(problems))
    return AugmentRow(
        line,
        decision_id,
        better,
        actor,
        SOURCES[source],
        _text(row, "reason"),
        STATES[state],
    )


async def apply_rows(
    client: AsyncRowcastClient,
    rows: Iterator[tuple[int, Mapping[str, Any]]],
    *,
    default_actor: str = "",
    default_source: str = "person",
    concurrency: int = 16,
    request_prefix: str = "",
) -> BulkReport:
    """Augment every valid row (at most `concurrency` calls in flight); report each outcome.
    With `request_prefix`, row n is sent with request id `<prefix>:<n>` (idempotent)."""
    report = BulkReport()
    # A bounded queue and a fixed pool of workers: memory stays flat for any file size.
    queue: asyncio.Queue[AugmentRow | None] = asyncio.Queue(maxsize=2 * concurrency)

    async def worker() -> None:
        while (r := await queue.get()) is not None:
            try:
                response = await client.augment(
                    r.decision_id,
                    r.better_output,
                    actor=r.actor,
                    source=r.source,
                    reason=r.reason,
                    state=r.state,
                    request_id=f"{request_prefix}:{r.line}" if request_prefix else "",
                )
            except RowcastClientError as exc:
                detail = "; ".join(f"{v.field}: {v.description}" for v in exc.violations)
                reason = f"{exc.code.name}: {detail or exc.message}"
                report.rejected.append(Rejection(r.line, r.decision_id, reason))
            else:
                if response.replayed:
                    report.already_applied += 1
                else:
                    report.accepted += 1

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
        for line, row in rows:
            parsed = parse_row(
                line, row, default_actor=default_actor, default_source=default_source
            )
            if isinstance(parsed, Rejection):
                report.rejected.append(parsed)
            else:
                await queue.put(parsed)
        for _ in range(concurrency):
            await queue.put(None)
    report.rejected.sort(key=lambda r: r.line)
    return report
