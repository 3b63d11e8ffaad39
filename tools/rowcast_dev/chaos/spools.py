"""How much of the prediction servers' spools is not yet acknowledged, read from the files
alone (the live servers hold the spools' locks): segment sizes past the saved cursor."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rowcast.spool.files import QUARANTINE_DIR, list_segments, load_cursor, segment_name
from rowcast.spool.framing import HEADER_BYTES


@dataclass(frozen=True)
class Backlog:
    """Unacknowledged bytes in every spool under a root, and files set aside as quarantined."""

    pending_bytes: int
    quarantined_files: int


def spool_pending_bytes(directory: Path) -> int:
    """Bytes of records after the cursor (as Spool.pending_bytes, without opening the spool).

    The cursor is saved after each acknowledgement, so this can lag by the batches in flight;
    it never reads 0 while something is unacknowledged."""
    cursor = load_cursor(directory)
    pending = 0
    for number in list_segments(directory):
        if cursor is not None and number < cursor.segment:
            continue
        try:
            size = os.stat(directory / segment_name(number)).st_size
        except FileNotFoundError:
            continue  # deleted as acknowledged between listing and stat
        start = cursor.offset if cursor is not None and number == cursor.segment else HEADER_BYTES
        pending += max(0, size - start)
    return pending


def backlog(root: Path) -> Backlog:
    """The backlog of every spool directory under root (<home>/spool)."""
    if not root.is_dir():
        return Backlog(0, 0)
    pending = quarantined = 0
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        pending += spool_pending_bytes(directory)
        side = directory / QUARANTINE_DIR
        if side.is_dir():
            quarantined += sum(1 for _ in side.iterdir())
    return Backlog(pending, quarantined)
