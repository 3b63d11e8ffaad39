"""One spool directory: appends framed records to segment files, reads them back in order, and
forgets them once they are acknowledged.

Threads: `append` runs on the event loop (a write of a few hundred bytes into the page cache is
a memory copy, and doing it inline keeps records in exactly the order callers got their
answers); `read`, `sync` and `acknowledge` run on worker threads. A lock guards the little
shared state (current segment, offsets, sizes).
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rowcast.spool.files import (
    LOCK_FILE,
    fsync_dir,
    list_segments,
    load_cursor,
    remove_quietly,
    save_cursor,
    segment_name,
)
from rowcast.spool.framing import HEADER_BYTES, MAGIC, Position, encode_frames, scan_frames
from rowcast.spool.gauges import OPEN_SPOOLS, SpoolFigures
from rowcast.spool.recovery import Quarantined, check_segment, quarantine_bytes

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 16 << 20
MIN_SEGMENT_BYTES = 64 << 10


class SpoolFull(Exception):
    """Appending would exceed the spool's size limit (or the disk is full)."""


class SpoolLocked(Exception):
    """Another live process owns this spool directory."""


@dataclass(frozen=True)
class RecoveryReport:
    """What opening the spool found: records still to deliver and any damage quarantined."""

    segments: int
    pending_records: int
    quarantined: tuple[Quarantined, ...]


@dataclass(frozen=True)
class Batch:
    """Records read from the spool and the position just after the last of them."""

    payloads: list[bytes]
    end: Position


@dataclass
class _SyncState:
    #: Descriptors with writes not yet fsync'd: rolled-over segments, closed after their sync.
    retired_fds: list[int] = field(default_factory=list)
    #: A segment file was created since the last sync, so the directory needs one too.
    dir_dirty: bool = False


class Spool:
    """Owns one spool directory: its segments, its delivery cursor and its quarantine."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        writable: bool = True,
        defer_close: bool = False,
    ) -> None:
        """defer_close: keep rolled-over segments open until `sync` has fsync'd them (fsync
        durability); otherwise they are closed at once."""
        self.directory = directory
        self.max_bytes = max_bytes
        # Acknowledged bytes stay on disk until their segment is complete, so segments must be
        # small next to the limit or the limit would be reached by delivered records (and a
        # spool whose one segment never fills up would stay full after delivering it all).
        # MIN_SEGMENT_BYTES keeps the file count down, but never above 1/16 of the limit.
        self._segment_bytes = max(1, min(max_bytes // 16, max(MIN_SEGMENT_BYTES, segment_bytes)))
        self._writable = writable
        self._defer_close = defer_close
        self._lock = threading.Lock()
        self._lock_fd = -1
        self._fd = -1
        self._segment = -1
        self._offset = 0
        #: Valid bytes of every segment on disk (the current one included).
        self._sizes: dict[int, int] = {}
        self._cursor = Position(0, HEADER_BYTES)
        self._written = 0
        self._sync = _SyncState()
        self._read_fds: dict[int, int] = {}
        self.quarantined_records = 0
        self.quarantined_files = 0
        #: Appends not yet wholly acknowledged, oldest first: (segment, end offset, records,
        #: append time in epoch seconds). What the spool gauges read (spool/gauges.py).
        self._unacked: collections.deque[tuple[int, int, int, float]] = collections.deque()
        self._unacked_records = 0

    # -- opening and closing -----------------------------------------------------------------

    def open(self) -> RecoveryReport:
        """Lock the directory, check every segment left by an earlier run, start a new one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise SpoolLocked(f"{self.directory} is in use by another process") from exc
        segments = list_segments(self.directory)
        cursor = load_cursor(self.directory)
        first = segments[0] if segments else 0
        if cursor is None or cursor.segment < first:
            cursor = Position(first, HEADER_BYTES)
        for number in segments:
            if number < cursor.segment:
                # Fully acknowledged before the last stop; only its deletion was interrupted.
                remove_quietly(self.directory / segment_name(number))
        quarantined = []
        pending = 0
        for number in (n for n in segments if n >= cursor.segment):
            check = check_segment(self.directory, number)
            if check.quarantined is not None:
                quarantined.append(check.quarantined)
                self.quarantined_files += 1
            if check.valid_bytes:
                self._sizes[number] = check.valid_bytes
                pending += check.records
        if cursor.segment in self._sizes:
            cursor = self._checked_cursor(cursor)
            pending -= self._records_before(cursor)
        self._cursor = cursor
        if pending > 0:
            self._note_recovered(pending)
        if self._writable:
            self._start_segment(max([cursor.segment - 1, *self._sizes]) + 1)
        OPEN_SPOOLS.add(self)
        report = RecoveryReport(len(self._sizes), pending, tuple(quarantined))
        if pending or quarantined:
            log.info(
                "audit spool %s: %d undelivered records in %d segments, %d damaged tails "
                "quarantined",
                self.directory,
                pending,
                len(self._sizes),
                len(quarantined),
            )
        return report

    def _note_recovered(self, records: int) -> None:
        """Count the records an earlier run left undelivered as one append, dated by the last
        write to the cursor's segment: no record in it is older than the segment's creation,
        so the age is at most one segment's writing time too young."""
        last = max(self._sizes)
        try:
            written = os.stat(self.directory / segment_name(self._cursor.segment)).st_mtime
        except OSError:
            written = time.time()
        self._unacked.append((last, self._sizes[last], records, written))
        self._unacked_records = records

    def _checked_cursor(self, cursor: Position) -> Position:
        """The cursor if it sits on a record boundary inside its segment, else the segment's
        start (re-sending is harmless; skipping would lose records)."""
        size = self._sizes[cursor.segment]
        if cursor.offset <= size:
            data = (self.directory / segment_name(cursor.segment)).read_bytes()[: cursor.offset]
            scan = scan_frames(memoryview(data)[HEADER_BYTES:], complete=True)
            if scan.damage is None and HEADER_BYTES + scan.end == cursor.offset:
                return cursor
        log.warning(
            "audit spool cursor %s is not on a record boundary; re-sending its segment", cursor
        )
        return Position(cursor.segment, HEADER_BYTES)

    def _records_before(self, cursor: Position) -> int:
        data = (self.directory / segment_name(cursor.segment)).read_bytes()[: cursor.offset]
        return len(scan_frames(memoryview(data)[HEADER_BYTES:], complete=True).payloads)

    def _start_segment(self, number: int) -> None:
        path = self.directory / segment_name(number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, MAGIC)
        except OSError:
            os.close(fd)
            remove_quietly(path)
            raise
        self._fd = fd
        self._segment = number
        self._offset = HEADER_BYTES
        self._sizes[number] = HEADER_BYTES
        self._sync.dir_dirty = True

    def close(self) -> None:
        """Flush (fsync) what was written and release the directory."""
        with self._lock:
            fds = [*self._sync.retired_fds]
            self._sync.retired_fds.clear()
            if self._fd >= 0:
                fds.append(self._fd)
                self._fd = -1
        for fd in fds:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for fd in self._read_fds.values():
            os.close(fd)
        self._read_fds.clear()
        OPEN_SPOOLS.discard(self)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    # -- writing ---------------------------------------------------------------------------

    def append(self, payloads: Sequence[bytes]) -> int:
        """Write the records to the current segment (in the OS page cache on return).

        All or nothing. Returns a ticket: `sync` returns tickets at least this large once the
        records are on disk. Raises SpoolFull when the size limit would be exceeded.
        """
        data = encode_frames(payloads)
        with self._lock:
            if self._fd < 0:
                raise SpoolFull(f"audit spool {self.directory} is not open for writing")
            if self.size_bytes + len(data) > self.max_bytes:
                raise SpoolFull(
                    f"audit spool {self.directory} is full ({self.size_bytes} of "
                    f"{self.max_bytes} bytes): the AuditService or HBase is down or too slow"
                )
            if self._offset + len(data) > self._segment_bytes and self._offset > HEADER_BYTES:
                self._roll()
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                # A partial write must not stay in front of the next record.
                os.ftruncate(self._fd, self._offset)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise SpoolFull(f"audit spool disk is full: {exc}") from exc
                raise
            self._offset += len(data)
            self._sizes[self._segment] = self._offset
            self._written += len(data)
            self._unacked.append((self._segment, self._offset, len(payloads), time.time()))
            self._unacked_records += len(payloads)
            return self._written

    def _roll(self) -> None:
        if self._defer_close:
            self._sync.retired_fds.append(self._fd)
        else:
            os.close(self._fd)
        self._start_segment(self._segment + 1)

    @property
    def size_bytes(self) -> int:
        """Bytes the spool holds on disk (delivered records count until their segment goes)."""
        return sum(self._sizes.values())

    def figures(self) -> SpoolFigures:
        """Bytes on disk, records not yet acknowledged, and when the oldest of them was
        appended (any thread; counted per append, so a partly acknowledged append counts
        whole until its last record is acknowledged)."""
        with self._lock:
            oldest = self._unacked[0][3] if self._unacked else None
            return SpoolFigures(sum(self._sizes.values()), self._unacked_records, oldest)

    @property
    def written(self) -> int:
        """Ticket of the newest append."""
        return self._written

    def sync(self) -> int:
        """fsync everything appended so far (worker thread); returns the ticket it covers."""
        with self._lock:
            ticket = self._written
            retired = self._sync.retired_fds
            self._sync.retired_fds = []
            dir_dirty = self._sync.dir_dirty
            self._sync.dir_dirty = False
            current = self._fd
        for fd in retired:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if current >= 0:
            os.fsync(current)
        if dir_dirty:
            fsync_dir(self.directory)
        return ticket

    # -- reading and acknowledging -------------------------------------------------------------

    @property
    def cursor(self) -> Position:
        """Everything before this position is acknowledged by the AuditService."""
        return self._cursor

    def end(self) -> Position:
        """Where the next record will be written (or the end of the last segment)."""
        with self._lock:
            if self._segment >= 0:
                return Position(self._segment, self._offset)
            if self._sizes:
                last = max(self._sizes)
                return Position(last, self._sizes[last])
            return self._cursor

    def pending_bytes(self) -> int:
        """Bytes of records not yet acknowledged."""
        with self._lock:
            return sum(
                size - (self._cursor.offset if n == self._cursor.segment else HEADER_BYTES)
                for n, size in self._sizes.items()
                if n >= self._cursor.segment
            )

    def read(self, start: Position, max_records: int, max_bytes: int) -> Batch:
        """Up to max_records records (about max_bytes) from start on (worker thread)."""
        pos = start
        payloads: list[bytes] = []
        budget = max_bytes
        while len(payloads) < max_records and budget > 0:
            with self._lock:
                size = self._sizes.get(pos.segment)
                later = [n for n in self._sizes if n > pos.segment]
                active = pos.segment == self._segment
            if size is None or pos.offset >= size:
                if active or not later:
                    break
                # A finished segment read to its end: continue with the next one.
                pos = Position(min(later), HEADER_BYTES)
                continue
            length = min(size - pos.offset, budget)
            buf = os.pread(self._read_fd(pos.segment), length, pos.offset)
            scan = scan_frames(buf, complete=False, max_records=max_records - len(payloads))
            if not scan.payloads:
                if scan.damage is None and length < size - pos.offset:
                    # One record is larger than the byte budget: read it alone.
                    budget = size - pos.offset
                    continue
                pos = self._quarantine_rest(pos, scan.damage or "truncated record")
                continue
            payloads.extend(scan.payloads)
            pos = Position(pos.segment, pos.offset + scan.end)
            budget -= scan.end
        return Batch(payloads, pos)

    def _read_fd(self, segment: int) -> int:
        fd = self._read_fds.get(segment)
        if fd is None:
            fd = os.open(self.directory / segment_name(segment), os.O_RDONLY)
            self._read_fds[segment] = fd
        return fd

    def _quarantine_rest(self, pos: Position, reason: str) -> Position:
        """A record that was valid when written no longer checks (a disk fault): move the rest
        of the segment aside rather than block delivery forever or drop it silently.

        The segment may still be the one appends go to, and records may have been appended
        to it since the reader noted its size. So the writer is moved to a new segment first
        (under the lock, so no append is in between), and the copy runs to the segment's end
        as of that moment: every record in it is either delivered before pos or quarantined.
        """
        with self._lock:
            if pos.segment == self._segment:
                # The writer must not append behind bytes the reader will never get past.
                self._roll()
            end = self._sizes.get(pos.segment, pos.offset)
        # The segment is frozen now, so the copy can run without holding up appends.
        data = os.pread(self._read_fd(pos.segment), max(end - pos.offset, 0), pos.offset)
        side = quarantine_bytes(
            self.directory, f"{segment_name(pos.segment)}.at-{pos.offset}.damaged", data
        )
        log.error("audit spool %s: %s at %s; quarantined to %s", self.directory, reason, pos, side)
        self.quarantined_files += 1
        with self._lock:
            if pos.segment in self._sizes:
                self._sizes[pos.segment] = pos.offset
        return pos

    def quarantine_records(self, name: str, payloads: Sequence[bytes]) -> Path:
        """Keep records the AuditService refused (malformed) in a framed side file."""
        self.quarantined_records += len(payloads)
        return quarantine_bytes(self.directory, name, MAGIC + encode_frames(payloads))

    def acknowledge(self, pos: Position) -> None:
        """Everything before pos is stored: save the cursor, delete segments wholly before it."""
        if pos <= self._cursor:
            return
        self._cursor = pos
        save_cursor(self.directory, pos)
        with self._lock:
            done = [n for n in self._sizes if n < pos.segment]
            for n in done:
                del self._sizes[n]
            unacked = self._unacked
            while unacked and (unacked[0][0], unacked[0][1]) <= (pos.segment, pos.offset):
                self._unacked_records -= unacked.popleft()[2]
        for n in done:
            fd = self._read_fds.pop(n, None)
            if fd is not None:
                os.close(fd)
            remove_quietly(self.directory / segment_name(n))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
