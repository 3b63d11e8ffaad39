"""The spool on a real file system: append, read back, acknowledge, roll over segments, refuse
when full, survive restarts, and quarantine (never drop) a damaged tail found at start-up."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rowcast.spool import Position, Spool, SpoolFull, SpoolLocked
from rowcast.spool.files import CURSOR_FILE, QUARANTINE_DIR, list_segments, segment_name
from rowcast.spool.framing import HEADER_BYTES, MAGIC, encode_frames, scan_frames
from rowcast.spool.group_commit import GroupCommitter
from rowcast.spool.spool import DEFAULT_SEGMENT_BYTES

MB = 1 << 20


def records(n: int, start: int = 0) -> list[bytes]:
    return [f"record-{i:06d}".encode() * 3 for i in range(start, start + n)]


def open_spool(
    path: Path, *, max_bytes: int = 64 * MB, segment_bytes: int = DEFAULT_SEGMENT_BYTES
) -> Spool:
    spool = Spool(path, max_bytes=max_bytes, segment_bytes=segment_bytes)
    spool.open()
    return spool


def read_all(spool: Spool, start: Position | None = None) -> tuple[list[bytes], Position]:
    pos = spool.cursor if start is None else start
    out: list[bytes] = []
    while True:
        batch = spool.read(pos, 100, MB)
        out.extend(batch.payloads)
        if batch.end == pos:
            return out, pos
        pos = batch.end


def test_appended_records_read_back_in_order(tmp_path: Path) -> None:
    """Records come back in append order, across several appends."""
    spool = open_spool(tmp_path)
    spool.append(records(3))
    spool.append(records(2, 3))
    got, _ = read_all(spool)
    assert got == records(5)
    spool.close()


def test_segments_roll_over_and_acknowledged_ones_are_deleted(tmp_path: Path) -> None:
    """Past the segment size a new segment starts; acknowledging past a segment deletes it."""
    spool = open_spool(tmp_path, segment_bytes=64 << 10)
    for i in range(300):
        spool.append(records(10, i * 10))
    assert len(list_segments(tmp_path)) >= 3
    got, end = read_all(spool)
    assert got == records(3000)
    spool.acknowledge(end)
    assert list_segments(tmp_path) == [end.segment]
    assert spool.pending_bytes() == 0
    spool.close()


def test_a_restart_resends_only_the_unacknowledged_tail(tmp_path: Path) -> None:
    """After a stop, the next open starts reading at the saved cursor."""
    spool = open_spool(tmp_path)
    spool.append(records(10))
    batch = spool.read(spool.cursor, 4, MB)
    spool.acknowledge(batch.end)
    spool.close()
    again = open_spool(tmp_path)
    got, _ = read_all(again)
    assert got == records(6, 4)
    again.close()


def test_an_unclean_stop_loses_nothing_written(tmp_path: Path) -> None:
    """Without close() (a killed process), everything appended is read by the next open."""
    spool = open_spool(tmp_path)
    spool.append(records(7))
    # Simulate kill -9: drop the object without closing; release the lock as the kernel would.
    os.close(spool._lock_fd)
    again = open_spool(tmp_path)
    got, _ = read_all(again)
    assert got == records(7)
    again.close()


def test_a_full_spool_refuses_appends(tmp_path: Path) -> None:
    """Appending past max_bytes raises SpoolFull and writes nothing."""
    spool = open_spool(tmp_path, max_bytes=100 << 10)
    with pytest.raises(SpoolFull):
        for _ in range(10_000):
            spool.append(records(10))
    before = spool.size_bytes
    with pytest.raises(SpoolFull):
        spool.append(records(10))
    assert spool.size_bytes == before <= 100 << 10
    _, end = read_all(spool)
    spool.acknowledge(end)
    spool.append(records(1))  # room again once delivered segments are deleted
    spool.close()


def test_a_tiny_full_spool_takes_appends_again_once_delivered(tmp_path: Path) -> None:
    """A spool far smaller than the usual segment size (4 KiB) that filled up while nothing was
    delivered takes appends again once everything in it is acknowledged: its segments stay at
    most 1/16 of the limit, so delivered ones are deleted."""
    spool = open_spool(tmp_path, max_bytes=4096)
    appended = 0
    with pytest.raises(SpoolFull):
        while True:
            spool.append(records(1, appended))
            appended += 1
    assert appended >= 10
    delivered: list[bytes] = []
    for _ in range(3):  # deliver, append, and again: the freed room is reused every time
        got, end = read_all(spool)
        delivered += got
        spool.acknowledge(end)
        spool.append(records(1, appended))
        appended += 1
    assert delivered == records(appended - 1)
    assert spool.size_bytes <= 4096
    spool.close()


def test_a_second_process_cannot_open_the_same_spool(tmp_path: Path) -> None:
    """The directory is locked while open."""
    spool = open_spool(tmp_path)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path, max_bytes=MB).open()
    spool.close()
    open_spool(tmp_path).close()


def write_segment(path: Path, payloads: list[bytes]) -> bytes:
    data = MAGIC + encode_frames(payloads)
    (path / segment_name(0)).write_bytes(data)
    return data


def test_truncation_at_every_offset_is_recovered_and_quarantined(tmp_path: Path) -> None:
    """A segment cut at any byte: the whole records are delivered, the partial tail is moved
    to quarantine/ byte for byte, and the next open finds a clean spool."""
    payloads = records(4)
    full = MAGIC + encode_frames(payloads)
    bounds = [HEADER_BYTES]
    for p in payloads:
        bounds.append(bounds[-1] + 8 + len(p))
    for cut in range(len(full) + 1):
        d = tmp_path / f"cut-{cut}"
        d.mkdir()
        (d / segment_name(0)).write_bytes(full[:cut])
        spool = Spool(d, max_bytes=MB)
        report = spool.open()
        got, _ = read_all(spool)
        whole = sum(1 for b in bounds[1:] if b <= cut)
        assert got == payloads[:whole], cut
        valid_end = bounds[whole] if cut >= HEADER_BYTES else 0
        damaged = full[valid_end:cut]
        quarantine = d / QUARANTINE_DIR
        if damaged:
            assert len(report.quarantined) == 1
            assert report.quarantined[0].path.read_bytes() == damaged
            assert spool.quarantined_files == 1
        else:
            assert report.quarantined == ()
            assert not quarantine.exists()
        spool.close()


def test_corruption_in_the_middle_quarantines_the_rest_of_that_segment_only(
    tmp_path: Path,
) -> None:
    """A bad checksum in segment 0 quarantines its tail; segment 1 is delivered whole."""
    first = MAGIC + encode_frames(records(3))
    bad = bytearray(first)
    bad[-3] ^= 0xFF  # inside the last record of segment 0
    (tmp_path / segment_name(0)).write_bytes(bytes(bad))
    (tmp_path / segment_name(1)).write_bytes(MAGIC + encode_frames(records(2, 3)))
    spool = Spool(tmp_path, max_bytes=MB)
    report = spool.open()
    assert report.pending_records == 4
    got, _ = read_all(spool)
    assert got == [*records(2), *records(2, 3)]
    assert [q.reason for q in report.quarantined] == ["record checksum mismatch"]
    side = report.quarantined[0].path.read_bytes()
    assert side == bytes(bad[len(MAGIC + encode_frames(records(2))) :])
    spool.close()


def test_a_garbage_file_is_quarantined_whole(tmp_path: Path) -> None:
    """A segment without the spool header is set aside entirely, not parsed."""
    (tmp_path / segment_name(0)).write_bytes(b"not a spool file at all")
    spool = Spool(tmp_path, max_bytes=MB)
    report = spool.open()
    assert report.quarantined[0].reason == "bad segment header"
    assert report.quarantined[0].path.read_bytes() == b"not a spool file at all"
    assert read_all(spool)[0] == []
    spool.close()


@pytest.mark.parametrize("cursor", [b"{not json", b'{"segment": 0, "offset": 13}', b""])
def test_a_bad_cursor_resends_rather_than_skips(tmp_path: Path, cursor: bytes) -> None:
    """An unreadable cursor, or one off a record boundary, re-sends the segment from the start."""
    write_segment(tmp_path, records(3))
    (tmp_path / CURSOR_FILE).write_bytes(cursor)
    spool = open_spool(tmp_path)
    assert read_all(spool)[0] == records(3)
    spool.close()


def test_records_that_stop_checking_while_running_are_quarantined(tmp_path: Path) -> None:
    """A record damaged on disk after it was written is moved aside with everything after it
    in its segment; records appended afterwards flow as usual."""
    spool = open_spool(tmp_path)
    spool.append(records(3))
    path = tmp_path / segment_name(spool.cursor.segment)
    written = path.read_bytes()
    with open(path, "r+b") as f:
        f.seek(HEADER_BYTES + 10)  # inside the first record
        f.write(b"\xff")
    got, pos = read_all(spool)
    assert got == []
    assert spool.quarantined_files == 1
    (side,) = (tmp_path / QUARANTINE_DIR).iterdir()
    assert len(side.read_bytes()) == len(written) - HEADER_BYTES
    spool.append(records(1, 3))
    assert read_all(spool, pos)[0] == records(1, 3)
    spool.close()


class _AppendsWhileReading(Spool):
    """A spool whose first read of a segment lets another record be appended right after the
    reader noted the segment's size: the interleaving of Predict appending on the event loop
    while the sender reads on a worker thread."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        super().__init__(directory, max_bytes=max_bytes)
        #: Records to append during the next segment read (once).
        self.late: list[bytes] = []

    def _read_fd(self, segment: int) -> int:
        if self.late:
            late, self.late = self.late, []
            self.append(late)
        return super()._read_fd(segment)


def test_a_record_appended_while_a_damaged_tail_is_found_is_quarantined_not_dropped(
    tmp_path: Path,
) -> None:
    """A record appended to the active segment after the reader noted its size, when the reader
    then finds damage before it, ends up in the quarantine file with the damaged tail (nothing
    is silently dropped), and later appends are delivered."""
    spool = _AppendsWhileReading(tmp_path, max_bytes=64 * MB)
    spool.open()
    spool.append(records(3))
    segment = spool.cursor.segment
    path = tmp_path / segment_name(segment)
    with open(path, "r+b") as f:
        f.seek(HEADER_BYTES + 10)  # inside the first record
        f.write(b"\xff")
    damaged_tail = path.read_bytes()[HEADER_BYTES:]
    spool.late = records(1, 3)
    got, pos = read_all(spool)
    assert got == []
    (side,) = (tmp_path / QUARANTINE_DIR).iterdir()
    assert side.read_bytes() == damaged_tail + encode_frames(records(1, 3))
    assert spool.cursor.segment == segment and pos.segment > segment
    spool.append(records(1, 4))
    assert read_all(spool, pos)[0] == records(1, 4)
    spool.close()


def test_quarantined_records_are_framed_and_readable(tmp_path: Path) -> None:
    """Records refused by the AuditService are kept in a side file in the spool's own format."""
    spool = open_spool(tmp_path)
    path = spool.quarantine_records("rejected-1.records", [b"x", b"y"])
    data = path.read_bytes()
    assert data.startswith(MAGIC)
    assert scan_frames(data[HEADER_BYTES:], complete=True).payloads == [b"x", b"y"]
    assert spool.quarantined_records == 2
    spool.close()


async def test_group_commit_shares_fsyncs_between_concurrent_callers(tmp_path: Path) -> None:
    """64 concurrent callers each wait for an fsync covering their record, with far fewer
    fsyncs than callers."""
    spool = Spool(tmp_path, max_bytes=64 * MB, defer_close=True)
    spool.open()
    with ThreadPoolExecutor(1) as pool:
        committer = GroupCommitter(spool, pool)
        committer.start()

        async def one(i: int) -> None:
            await committer.wait(spool.append(records(1, i)))

        for _ in range(5):
            await asyncio.gather(*(one(i) for i in range(64)))
        await committer.stop()
    assert 0 < committer.syncs < 5 * 64 / 4
    spool.close()
