"""Operation rows: a stale RUNNING operation reads as ended ABORTED, and an operation's end
(`o:final`) overrides whatever a late runner writes in the progress cells."""

from __future__ import annotations

from dataclasses import replace

from google.rpc import code_pb2

from rowcast.store.operations import (
    FINAL_COL,
    STALE_AFTER_MS,
    OperationRecord,
    OperationState,
    final_value,
    record_cells,
    record_from_row,
)

T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z

RUNNING = OperationRecord(
    op_id="abc",
    model="m",
    version=3,
    state=OperationState.RUNNING,
    rows_written=4_000,
    total_rows=9_600,
    rows_per_second=1_000.0,
    eta_seconds=5.6,
    start_time_ms=T0 - 4_000,
    update_time_ms=T0,
)


def test_a_runner_silent_for_longer_than_the_limit_is_stale() -> None:
    """Stale only when RUNNING and silent for more than STALE_AFTER_MS; a done one never."""
    assert not RUNNING.stale(T0 + STALE_AFTER_MS)
    assert RUNNING.stale(T0 + STALE_AFTER_MS + 1)
    assert not replace(RUNNING, state=OperationState.CANCELLED).stale(T0 + 10 * STALE_AFTER_MS)


def test_an_aborted_operation_is_done_with_aborted_and_says_how_to_resume() -> None:
    """Ended ABORTED: done, google.rpc ABORTED, the time the runner stopped reporting, the rows
    it had reached, and that MaterializeVersion resumes from the watermark."""
    aborted = RUNNING.aborted()
    assert aborted.done and aborted.state is OperationState.ABORTED
    assert aborted.error_code == code_pb2.ABORTED
    assert "stopped reporting at 2026-09-21T" in aborted.error_message
    assert "4,000 of 9,600 rows" in aborted.error_message
    assert "MaterializeVersion resumes from the watermark" in aborted.error_message
    assert (aborted.rows_per_second, aborted.eta_seconds) == (0.0, 0.0)
    assert aborted.update_time_ms == RUNNING.update_time_ms


def test_the_final_cell_overrides_a_late_runners_progress() -> None:
    """A row whose `o:final` says ABORTED reads ABORTED with the figures frozen at the end,
    even though a runner that came back wrote newer progress cells afterwards."""
    ended = RUNNING.aborted()
    late = replace(RUNNING, rows_written=6_000, update_time_ms=T0 + 60_000)
    row = {**record_cells(late), FINAL_COL: final_value(ended)}
    assert record_from_row("abc", row) == ended


def test_rows_without_a_final_cell_read_as_written() -> None:
    """A row without `o:final` (running, or ended before the cell existed) reads as is,
    cancellation request included."""
    assert record_from_row("abc", record_cells(RUNNING)) == RUNNING
    old = replace(RUNNING, state=OperationState.SUCCEEDED)
    assert record_from_row("abc", record_cells(old)) == old
    requested = record_from_row("abc", {**record_cells(RUNNING), b"o:cancel": b"1"})
    assert requested.cancel_requested
