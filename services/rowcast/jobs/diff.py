"""Compare two versions of a model over the whole grid, streaming both tables side by side.

Both tables share the model's key layout, so a key-ordered scan of each yields the same keys
in the same order; memory holds only per-bin counters, never the grid. A diff ends within the
caller's deadline: it reads on connections of its own whose socket waits no longer than that,
and a scan still going when the deadline passes stops (DeadlineExceeded).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import happybase

from rowcast.core.keys import decode_double, key_bins
from rowcast.core.signature import Signature
from rowcast.deadlines import within_deadline
from rowcast.errors import DeadlineExceeded
from rowcast.store.client import HBaseClient, store_errors
from rowcast.store.predictions import OUTPUT_COL

#: Cells compared between two looks at the clock.
CHECK_EVERY: Final = 4096
#: How long a diff may take when its caller sets no deadline: a whole-grid scan of two tables
#: takes minutes for the largest grids, so the store's per-call default would be too short.
DIFF_TIMEOUT_S: Final = 600.0

#: Fixed bucket edges of |b - a| (a log-like scale): the histogram takes constant memory
#: however large the grid; each edge is used with both signs.
ABS_EDGES = (0.0, 1e-6, 1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, math.inf)


@dataclass(frozen=True)
class FeatureChange:
    feature: str
    changed_per_bin: list[int]
    mean_abs_delta_per_bin: list[float]
    concentration: float


@dataclass(frozen=True)
class Diff:
    cells: int
    changed_cells: int
    max_abs_delta: float
    mean_abs_delta: float
    histogram: list[tuple[float, float, int]]
    features: list[FeatureChange]


def gini(values: list[int]) -> float:
    """0 when values are equal, approaching 1 when one holds everything."""
    n = len(values)
    total = sum(values)
    if n <= 1 or total == 0:
        return 0.0
    ordered = sorted(values)
    weighted = sum((i + 1) * v for i, v in enumerate(ordered))
    return (2 * weighted) / (n * total) - (n + 1) / n


def _outputs(conn: happybase.Connection, table: str) -> Iterator[tuple[bytes, float]]:
    for key, row in conn.table(table).scan(columns=[OUTPUT_COL], batch_size=5_000):
        yield key, decode_double(row[OUTPUT_COL])


def diff_tables(
    client: HBaseClient,
    signature: Signature,
    table_a: str,
    table_b: str,
    tolerance: float,
    *,
    timeout_s: float,
) -> Diff:
    """Blocking: run in a worker thread. Ends within `timeout_s`, the caller's remaining time
    (StoreUnavailable when HBase does not answer, DeadlineExceeded when the grid is too large
    to compare in that time)."""
    cards = signature.cardinalities
    changed = [[0] * c for c in cards]
    delta_sum = [[0.0] * c for c in cards]
    buckets = Histogram()
    cells = n_changed = 0
    total_abs = max_abs = 0.0

    budget = within_deadline(timeout_s)
    deadline = time.monotonic() + budget
    read_s = min(budget, client.settings.timeout_s)
    conn_a, conn_b = client.connect(read_s), client.connect(read_s)
    try:
        with store_errors():
            conn_a.open()
            conn_b.open()
            for (key_a, out_a), (key_b, out_b) in zip(
                _outputs(conn_a, table_a), _outputs(conn_b, table_b), strict=True
            ):
                if cells % CHECK_EVERY == 0 and time.monotonic() > deadline:
                    raise DeadlineExceeded(
                        f"comparing {table_a} with {table_b} took longer than {budget:.3f}s "
                        f"(stopped after {cells:,} cells): call DiffVersions with a longer "
                        "deadline"
                    )
                if key_a != key_b:
                    raise ValueError(f"tables differ in keys at {key_a.hex()} / {key_b.hex()}")
                cells += 1
                delta = out_b - out_a
                total_abs += abs(delta)
                max_abs = max(max_abs, abs(delta))
                if abs(delta) > tolerance:
                    n_changed += 1
                    buckets.add(delta)
                    for j, b in enumerate(key_bins(key_a)):
                        changed[j][b] += 1
                        delta_sum[j][b] += abs(delta)
    finally:
        conn_a.close()
        conn_b.close()
    features = sorted(
        (
            FeatureChange(
                feature=name,
                changed_per_bin=changed[j],
                mean_abs_delta_per_bin=[
                    s / c if c else 0.0 for s, c in zip(delta_sum[j], changed[j], strict=True)
                ],
                concentration=gini(changed[j]),
            )
            for j, name in enumerate(signature.names)
        ),
        key=lambda f: -f.concentration,
    )
    return Diff(
        cells=cells,
        changed_cells=n_changed,
        max_abs_delta=max_abs,
        mean_abs_delta=total_abs / cells if cells else 0.0,
        histogram=buckets.buckets(),
        features=features,
    )


class Histogram:
    """Counts of signed deltas in fixed buckets (constant memory).

    Every bucket is [lower, upper), as the HistogramBucket message says, on both sides of 0:
    positive bucket i holds E[i] <= delta < E[i+1], negative bucket i holds
    -E[i+1] <= delta < -E[i], i.e. E[i] < |delta| <= E[i+1] (so -0.01 falls in [-0.01, -0.001),
    never in [-0.02, -0.01)).
    """

    def __init__(self) -> None:
        self._negative = [0] * (len(ABS_EDGES) - 1)
        self._positive = [0] * (len(ABS_EDGES) - 1)

    def add(self, delta: float) -> None:
        magnitude = abs(delta)
        for i in range(len(ABS_EDGES) - 1):
            if delta >= 0 and magnitude < ABS_EDGES[i + 1]:
                self._positive[i] += 1
                return
            if delta < 0 and magnitude <= ABS_EDGES[i + 1]:
                self._negative[i] += 1
                return

    def buckets(self) -> list[tuple[float, float, int]]:
        """Non-empty buckets as (lower, upper, count), ascending."""
        out = [
            (-ABS_EDGES[i + 1], -ABS_EDGES[i], c)
            for i, c in reversed(list(enumerate(self._negative)))
            if c
        ]
        out += [(ABS_EDGES[i], ABS_EDGES[i + 1], c) for i, c in enumerate(self._positive) if c]
        return out
