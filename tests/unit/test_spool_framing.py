"""Spool record framing: what is written reads back, and any truncation or corruption of the
bytes stops the scan at the last whole valid record, never yields a wrong one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.spool.framing import (
    FRAME_OVERHEAD,
    MAX_RECORD_BYTES,
    encode_frame,
    encode_frames,
    scan_frames,
)

payloads = st.lists(st.binary(min_size=1, max_size=300), min_size=0, max_size=12)


@given(payloads)
def test_frames_read_back_exactly(records: list[bytes]) -> None:
    """Every record written comes back, in order, and the scan ends at the end."""
    buf = encode_frames(records)
    scan = scan_frames(buf, complete=True)
    assert scan.payloads == records
    assert scan.end == len(buf)
    assert scan.damage is None


@given(payloads, st.data())
def test_truncation_at_any_byte_keeps_the_whole_records_before_it(
    records: list[bytes], data: st.DataObject
) -> None:
    """A file cut at any offset yields exactly the records that end before the cut; the rest is
    reported as damage (complete scan) or as not-yet-written (growing file)."""
    buf = encode_frames(records)
    cut = data.draw(st.integers(min_value=0, max_value=len(buf)))
    ends = []
    pos = 0
    for r in records:
        pos += FRAME_OVERHEAD + len(r)
        ends.append(pos)
    whole = sum(1 for e in ends if e <= cut)
    scan = scan_frames(buf[:cut], complete=True)
    assert scan.payloads == records[:whole]
    assert scan.end == (ends[whole - 1] if whole else 0)
    assert (scan.damage is None) == (scan.end == cut)
    growing = scan_frames(buf[:cut], complete=False)
    assert growing.payloads == records[:whole]
    assert growing.damage is None


def test_truncation_at_every_offset_of_a_fixed_log() -> None:
    """Exhaustively: every prefix of a three-record log scans to the whole records in it."""
    records = [b"a" * 5, b"bb" * 40, b"c"]
    buf = encode_frames(records)
    bounds = [0, 13, 13 + 88, len(buf)]
    for cut in range(len(buf) + 1):
        scan = scan_frames(buf[:cut], complete=True)
        whole = max(i for i, b in enumerate(bounds) if b <= cut)
        assert scan.payloads == records[:whole], cut
        assert scan.end == bounds[whole]


@given(payloads.filter(bool), st.data())
def test_a_flipped_byte_is_detected(records: list[bytes], data: st.DataObject) -> None:
    """Any single corrupted byte ends the scan at or before the damaged record."""
    buf = bytearray(encode_frames(records))
    at = data.draw(st.integers(min_value=0, max_value=len(buf) - 1))
    buf[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    damaged = 0  # index of the record holding the flipped byte
    end = 0
    for r in records:
        end += FRAME_OVERHEAD + len(r)
        if at < end:
            break
        damaged += 1
    scan = scan_frames(bytes(buf), complete=True)
    assert scan.damage is not None
    # Exactly the records before the damaged one, unaltered.
    assert scan.payloads == records[:damaged]


@pytest.mark.parametrize("zeros", [1, 8, 100])
def test_zero_filled_tail_is_damage_not_records(zeros: int) -> None:
    """A run of zero bytes (a crash's leftover) is never taken for an (empty) record."""
    buf = encode_frame(b"ok") + b"\x00" * zeros
    scan = scan_frames(buf, complete=True)
    assert scan.payloads == [b"ok"]
    assert scan.damage is not None


def test_empty_and_oversized_records_are_refused() -> None:
    """Records are 1..MAX_RECORD_BYTES long."""
    with pytest.raises(ValueError):
        encode_frame(b"")
    with pytest.raises(ValueError):
        encode_frame(b"x" * (MAX_RECORD_BYTES + 1))


def test_max_records_limits_a_scan() -> None:
    """A scan can stop after a number of records, ending at a record boundary."""
    buf = encode_frames([b"a", b"b", b"c"])
    scan = scan_frames(buf, complete=True, max_records=2)
    assert scan.payloads == [b"a", b"b"]
    assert scan.end == 2 * (FRAME_OVERHEAD + 1)
