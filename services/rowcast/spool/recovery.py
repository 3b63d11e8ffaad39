"""Start-up check of a spool's segments: keep the valid records, quarantine any damaged tail.

A segment is damaged when a process or machine crash (or a disk) left a partial or corrupt
record in it. Everything before the first bad frame is delivered as usual; the bytes from that
frame to the end of the file are copied to `quarantine/` (fsync'd) before the segment is cut
back, so nothing is silently dropped: an operator can inspect or replay the side file.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rowcast.spool.files import QUARANTINE_DIR, fsync_dir, segment_name
from rowcast.spool.framing import HEADER_BYTES, MAGIC, scan_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quarantined:
    """A damaged segment tail moved aside at start-up."""

    segment: int
    #: Offset in the segment where the damage starts (valid records end there).
    offset: int
    size: int
    reason: str
    path: Path


@dataclass(frozen=True)
class SegmentCheck:
    """The outcome of checking one segment: its valid length and records, and any damage."""

    segment: int
    valid_bytes: int
    records: int
    quarantined: Quarantined | None


def quarantine_bytes(directory: Path, name: str, data: bytes) -> Path:
    """Write data to a new durable side file under quarantine/ and return its path."""
    qdir = directory / QUARANTINE_DIR
    qdir.mkdir(exist_ok=True)
    path = qdir / name
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(qdir)
    return path


def check_segment(directory: Path, number: int) -> SegmentCheck:
    """Validate one segment file in place; quarantine and cut off a damaged tail."""
    path = directory / segment_name(number)
    data = path.read_bytes()
    if data[:HEADER_BYTES] != MAGIC[: len(data)]:
        damage: str | None = "bad segment header"
        end = 0
        records = 0
    elif len(data) < HEADER_BYTES:
        # Created but its header never fully written: there were no records in it.
        damage = "truncated segment header" if data else None
        end = 0
        records = 0
    else:
        scan = scan_frames(memoryview(data)[HEADER_BYTES:], complete=True)
        damage, end, records = scan.damage, HEADER_BYTES + scan.end, len(scan.payloads)
    quarantined = None
    if damage is not None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        side = quarantine_bytes(directory, f"{path.stem}.at-{end}.{stamp}.damaged", data[end:])
        quarantined = Quarantined(number, end, len(data) - end, damage, side)
        log.error(
            "audit spool %s: %s at offset %d; %d valid records kept, %d damaged bytes "
            "quarantined to %s",
            path,
            damage,
            end,
            records,
            len(data) - end,
            side,
        )
    if end < HEADER_BYTES:
        # Nothing valid at all: the whole file is in quarantine (or was empty).
        path.unlink()
        fsync_dir(directory)
        return SegmentCheck(number, 0, 0, quarantined)
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())
    return SegmentCheck(number, end, records, quarantined)
