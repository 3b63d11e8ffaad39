"""File-system helpers of the spool: segment names, the delivery cursor, atomic small files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path

from rowcast.spool.framing import HEADER_BYTES, Position

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".log"
_SEGMENT = re.compile(r"^seg-(\d{20})\.log$")
CURSOR_FILE = "cursor.json"
LOCK_FILE = "LOCK"
QUARANTINE_DIR = "quarantine"


def segment_name(number: int) -> str:
    return f"seg-{number:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[int]:
    """Segment numbers present in directory, oldest first."""
    found = []
    for entry in os.scandir(directory):
        m = _SEGMENT.match(entry.name)
        if m and entry.is_file():
            found.append(int(m.group(1)))
    return sorted(found)


def fsync_dir(directory: Path) -> None:
    """Make created, renamed and deleted names in directory survive a machine crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, durable: bool) -> None:
    """Replace path with data so a reader sees the old or the new content, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def load_cursor(directory: Path) -> Position | None:
    """The acknowledged position saved by the sender; None when absent or unreadable.

    An unreadable cursor is not an error worth stopping for: starting from the oldest segment
    only re-sends records, and the audit store writes idempotently.
    """
    path = directory / CURSOR_FILE
    try:
        data = json.loads(path.read_bytes())
        pos = Position(int(data["segment"]), int(data["offset"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning(
            "spool cursor %s is unreadable (%s); re-sending from the oldest segment", path, exc
        )
        return None
    if pos.segment < 0 or pos.offset < HEADER_BYTES:
        log.warning(
            "spool cursor %s is out of range (%s); re-sending from the oldest segment", path, pos
        )
        return None
    return pos


def save_cursor(directory: Path, pos: Position) -> None:
    # Not fsync'd: losing the newest cursor in a machine crash only re-sends acknowledged
    # records, which the audit store absorbs (same row key, same cell timestamps).
    payload = json.dumps({"segment": pos.segment, "offset": pos.offset}).encode()
    write_atomically(directory / CURSOR_FILE, payload, durable=False)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
