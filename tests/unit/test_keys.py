"""Row keys: fixed width, stable across releases and languages, and reversible."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.core import keys

bins = st.lists(st.integers(min_value=0, max_value=65_534), min_size=1, max_size=12)
buckets = st.integers(min_value=1, max_value=256)


@given(bins, buckets)
def test_prediction_keys_round_trip_and_are_fixed_width(cell: list[int], n: int) -> None:
    """A key is 1 salt byte + 2 bytes per feature, and decodes back to its bins."""
    key = keys.prediction_key(cell, n)
    assert len(key) == 1 + 2 * len(cell)
    assert key[0] < n
    assert keys.key_bins(key) == tuple(cell)


@given(bins, buckets)
def test_keys_are_deterministic(cell: list[int], n: int) -> None:
    """The same bins always give the same key (no per-process hashing)."""
    assert keys.prediction_key(cell, n) == keys.prediction_key(list(cell), n)


def test_key_layout_is_stable() -> None:
    """Golden values: changing the layout would orphan every stored table."""
    # salt = CRC-32/IEEE(00 01 00 02 00 03) % 16 = 7 (checked with Go's hash/crc32)
    assert keys.prediction_key([1, 2, 3], 16).hex() == "07000100020003"
    assert keys.prediction_key([0], 1).hex() == "000000"


def test_split_keys_give_each_salt_bucket_a_region() -> None:
    """n buckets, n-1 boundaries, each the first key of its bucket."""
    assert keys.split_keys(4) == [b"\x01", b"\x02", b"\x03"]
    with pytest.raises(ValueError, match=r"1\.\.256"):
        keys.salt(b"x", 0)


@given(st.floats(allow_nan=False, width=64), st.integers(-(2**63), 2**63 - 1))
def test_values_round_trip(x: float, n: int) -> None:
    """Outputs and versions are 8-byte big-endian, as Java's Bytes.toBytes writes them."""
    assert keys.decode_double(keys.encode_double(x)) == x
    assert keys.decode_long(keys.encode_long(n)) == n


def test_decision_ids_are_unique_time_ordered_and_indexable() -> None:
    """Ids sort by time; index keys list a subject's newest decision first."""
    early = keys.new_decision_id(now_ms=1_000)
    late = keys.new_decision_id(now_ms=2_000)
    assert early < late and len(early) == 32
    assert keys.decision_time_ms(late) == 2_000
    assert len({keys.new_decision_id(now_ms=5) for _ in range(1000)}) == 1000
    k_early = keys.subject_index_key("cust", early, 16)
    k_late = keys.subject_index_key("cust", late, 16)
    assert k_late < k_early
    assert k_late.startswith(keys.subject_prefix("cust", 16))
    assert keys.id_from_index_key(k_early) == early


@pytest.mark.parametrize("bad", ["", "xyz", "00" * 15, "00" * 17])
def test_malformed_decision_ids_are_rejected(bad: str) -> None:
    """Only 32 hex digits are a decision id."""
    with pytest.raises(ValueError):
        keys.decision_id_bytes(bad)


@given(st.integers(min_value=0, max_value=2**62), st.integers(min_value=1, max_value=10**7))
def test_cell_timestamp_truncates_to_its_step(time_ms: int, step_ms: int) -> None:
    """The same decision always gets the same cell timestamp (replays rewrite the same cells),
    never later than the decision and less than one step before it."""
    ts = keys.cell_timestamp(time_ms, step_ms)
    assert ts % step_ms == 0
    assert 0 <= time_ms - ts < step_ms
    assert keys.cell_timestamp(time_ms) == keys.cell_timestamp(time_ms) <= time_ms


@given(
    buckets=st.integers(1, 256),
    first_bins=st.integers(1, 5_000),
    rows=st.integers(0, 10**10),
    features=st.integers(1, 8),
)
def test_prediction_splits_are_sorted_unique_and_sized(
    buckets: int, first_bins: int, rows: int, features: int
) -> None:
    """Version-table boundaries are strictly increasing, never split a region below
    MIN_REGION_BYTES (short of one region per salt bucket), and keep regions under
    MAX_REGION_BYTES where the first feature has the bins to split on."""
    row_bytes = keys.estimated_row_bytes(features)
    splits = keys.prediction_split_keys(buckets, first_bins, rows, row_bytes)
    assert splits == sorted(set(splits))
    regions = len(splits) + 1
    total = rows * row_bytes
    if regions > 1 and regions <= buckets:
        assert total / (regions - 1) > keys.MIN_REGION_BYTES
    if regions < buckets * first_bins:
        assert total / regions <= keys.MAX_REGION_BYTES * 1.0001
    assert regions >= min(buckets, max(1, -(-total // keys.MIN_REGION_BYTES)))


def test_prediction_splits_for_the_demo_and_the_limit() -> None:
    """The 9,600-cell demo grid gets one region; a 10M-row grid one per salt bucket; the
    50M-row limit still one per bucket; 400M rows split each of 16 buckets in two."""
    row = keys.estimated_row_bytes(3)
    assert row == 76
    assert keys.prediction_split_keys(16, 40, 9_600, row) == []
    assert keys.prediction_split_keys(16, 56, 9_834_496, keys.estimated_row_bytes(4)) == [
        bytes([i]) for i in range(1, 16)
    ]
    assert len(keys.prediction_split_keys(16, 100, 50_000_000, row)) == 15
    splits = keys.prediction_split_keys(16, 100, 400_000_000, row)
    assert len(splits) == 31
    assert splits[:3] == [b"\x00\x00\x32", b"\x01", b"\x01\x00\x32"]
    assert all(k[0] < 16 for k in splits)
