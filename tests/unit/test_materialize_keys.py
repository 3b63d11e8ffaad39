"""Vectorised key layout, the table digest, scoring determinism and the verification sample."""

from __future__ import annotations

import zlib
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rowcast.core.keys import (
    DIGEST_SEED,
    add_digests,
    cells_digest,
    chunk_digest,
    crc32_rows,
    encode_double,
    key_matrix,
    prediction_key,
    salt_ranges,
    split_rows,
)
from rowcast.jobs.materialize import MaterializeOptions
from rowcast.jobs.verify import sample_cells
from rowcast.jobs.workers import grid_bins


@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=40)))
def test_crc32_rows_matches_zlib(data: np.ndarray) -> None:
    """Every row's vectorised CRC-32 is zlib's."""
    got = crc32_rows(data).tolist()
    assert got == [zlib.crc32(row.tobytes()) for row in data]


@given(
    bins=hnp.arrays(
        np.int64,
        st.tuples(st.integers(1, 30), st.integers(1, 5)),
        elements=st.integers(0, 65_534),
    ),
    buckets=st.integers(1, 256),
)
def test_key_matrix_is_the_prediction_key_layout(bins: np.ndarray, buckets: int) -> None:
    """The chunk-at-once keys equal rowcast.core.keys.prediction_key, byte for byte (trailing
    zero bins included)."""
    keys = split_rows(key_matrix(bins, buckets))
    assert keys == [prediction_key(row, buckets) for row in bins.tolist()]


def test_salt_ranges_cover_every_key() -> None:
    """Each salt byte falls in exactly one range, and the ranges leave nothing out."""
    ranges = salt_ranges(16)
    assert ranges[0][0] == b"" and ranges[-1][1] is None
    for salt in range(16):
        key = bytes([salt, 0, 0])
        hits = [r for r in ranges if r[0] <= key and (r[1] is None or key < r[1])]
        assert len(hits) == 1


def _reference_digest(row: bytes) -> int:
    """The row hash of rowcast.core.keys, written out with Python integers."""
    mask = 2**64 - 1

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (64 - r))) & mask

    padded = row + b"\x00" * (-len(row) % 8)
    h = DIGEST_SEED
    for i in range(0, len(padded), 8):
        k = rotl(int.from_bytes(padded[i : i + 8], "big") * 0x87C37B91114253D5 & mask, 31)
        h = (rotl(h ^ (k * 0x4CF5AD432745937F & mask), 27) * 5 + 0x52DCE729) & mask
    h ^= len(row)
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h = (h ^ (h >> 33)) * multiplier & mask
    return h ^ (h >> 33)


def test_digest_is_the_sum_of_keyed_row_hashes_whatever_the_chunking() -> None:
    """Sum mod 2**64 of the row hash of key || big-endian double, per chunk or whole, and
    what a scan of the stored cells computes."""
    bins = grid_bins((7, 11, 3), 0, 231)
    keys = key_matrix(bins, 16)
    outputs = np.random.default_rng(1).random(231)
    whole = chunk_digest(keys, outputs)
    cells = list(zip(split_rows(keys), map(encode_double, outputs.tolist()), strict=True))
    assert whole == sum(_reference_digest(k + v) for k, v in cells) % 2**64
    parts = add_digests(
        chunk_digest(keys[:100], outputs[:100]), chunk_digest(keys[100:], outputs[100:])
    )
    assert parts == whole
    assert cells_digest(reversed(cells)) == whole
    assert chunk_digest(keys[:0], outputs[:0]) == 0 == cells_digest([])


def test_digest_sees_a_swap_a_loss_and_a_change_the_xor_of_crcs_did_not() -> None:
    """Two values swapped between keys, a row removed and one value changed each change the
    digest (a swap leaves an XOR of CRC-32s of key || value unchanged for some layouts, and
    any permutation of whole rows leaves it unchanged)."""
    keys = split_rows(key_matrix(grid_bins((5, 4), 0, 20), 4))
    values = [encode_double(v) for v in np.linspace(0.05, 0.95, 20).tolist()]
    base = cells_digest(zip(keys, values, strict=True))
    swapped = [*values]
    swapped[3], swapped[11] = swapped[11], swapped[3]
    changed = [*values]
    changed[7] = encode_double(0.5000000001)
    assert cells_digest(zip(keys, swapped, strict=True)) != base
    assert cells_digest(zip(keys[1:], values[1:], strict=True)) != base
    assert cells_digest(zip(keys, changed, strict=True)) != base


def test_grid_bins_walk_the_grid_row_major() -> None:
    bins = grid_bins((2, 3), 1, 5)
    assert bins.tolist() == [[0, 1], [0, 2], [1, 0], [1, 1]]


@pytest.fixture(scope="module")
def booster(tmp_path_factory: pytest.TempPathFactory) -> tuple[lgb.Booster, Path]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4_000, 4))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=4_000) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 31, "verbosity": -1, "num_threads": 2}
    model = lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=60)
    path = tmp_path_factory.mktemp("model") / "model.txt"
    model.save_model(str(path))
    return model, path


def test_scores_are_bit_identical_across_threads_batches_and_the_saved_file(
    booster: tuple[lgb.Booster, Path],
) -> None:
    """What lets verification compare with ==: the same booster gives the same bits whatever
    the thread count, the batch a row is scored in, or whether it was reloaded from its file."""
    model, path = booster
    reloaded = lgb.Booster(model_file=str(path))
    cells = np.random.default_rng(4).normal(size=(20_000, 4))
    one = model.predict(cells, num_threads=1)
    assert np.array_equal(one, model.predict(cells, num_threads=4))
    assert np.array_equal(one, reloaded.predict(cells, num_threads=1))
    assert np.array_equal(one[777:1_777], reloaded.predict(cells[777:1_777], num_threads=1))
    singles = np.array([reloaded.predict(cells[i : i + 1])[0] for i in range(50)])
    assert np.array_equal(one[:50], singles)


@given(
    grid=st.integers(1, 10**9),
    size=st.integers(0, 2_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_sample_cells_are_distinct_sorted_and_seeded(grid: int, size: int, seed: int) -> None:
    cells = sample_cells(grid, size, seed)
    assert len(cells) == min(size, grid)
    assert len(np.unique(cells)) == len(cells)
    assert np.all(np.diff(cells) > 0)
    assert len(cells) == 0 or (cells[0] >= 0 and cells[-1] < grid)
    assert np.array_equal(cells, sample_cells(grid, size, seed))


@pytest.mark.parametrize(
    ("rate", "chunk", "expected"),
    [(None, 10_000, 10_000), (1_000.0, 10_000, 500), (20_000.0, 10_000, 5_000), (1e9, 8, 8)],
)
def test_chunks_shrink_under_a_rate_limit(rate: float | None, chunk: int, expected: int) -> None:
    """Paced runs write about a quarter second of rows per batch (at least 500, at most the
    configured chunk), so bulk writes reach HBase in small, even steps."""
    assert MaterializeOptions(chunk_rows=chunk, rows_per_second=rate).paced_chunk() == expected
