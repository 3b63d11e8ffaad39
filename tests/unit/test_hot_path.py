"""The hot path's arrangement (issue 14): one spool append per event-loop turn, the collector
settled for serving, `--processes auto`, and the tools that measure it (open-loop load, the
profile split, CPU counted over a server's child processes)."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from rowcast.core.keys import new_decision_id
from rowcast.core.records import Decision, Source
from rowcast.errors import Overloaded
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
from rowcast.server import GC_GEN0_THRESHOLD, settle_gc, start_server
from rowcast.spool.files import list_segments, segment_name
from rowcast.spool.framing import HEADER_BYTES, scan_frames
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast_bench import cpu, openloop
from rowcast_bench.echo import SERVICE_NAME, fixed_response
from rowcast_bench.profile import categorise, split, table
from rowcast_cli.main import ProcessCount, usable_cores
from rowcast_dev.hbase.ports import free_port


def decision(i: int) -> Decision:
    return Decision(
        decision_id=new_decision_id(),
        model="credit_default",
        model_version=1,
        subject=f"s-{i}",
        features={"balance": float(i), "student": "No"},
        key_hex="0a000100",
        output=0.25,
        source=Source.CACHE,
        decide_time_ms=int(time.time() * 1000),
    )


def spooled(directory: Path) -> int:
    """Records in the spool's segments."""
    count = 0
    for number in list_segments(directory):
        data = (directory / segment_name(number)).read_bytes()
        count += len(scan_frames(memoryview(data)[HEADER_BYTES:], complete=True).payloads)
    return count


async def test_calls_answered_in_one_turn_share_one_append(tmp_path: Path) -> None:
    """Forty calls recording in the same event-loop turn are written by one append, in call
    order and chained consecutively; each call returns only after that append."""
    sink = AuditSink(
        f"127.0.0.1:{free_port()}",
        SpoolConfig(tmp_path / "spool", adopt_orphans=False, chain_key_file=tmp_path / "key"),
    )
    await sink.start()
    try:
        await asyncio.gather(*(sink.record([decision(i)]) for i in range(40)))
        assert sink.appends == 1
        assert spooled(tmp_path / "spool") == 40
        assert sink.chain is not None and sink.chain.next_sequence == 40
        await sink.record([decision(40)])
        assert sink.appends == 2
        assert sink.chain.next_sequence == 41
    finally:
        await sink.stop(0.0)


async def test_a_refused_turn_fails_every_call_in_it_and_leaves_no_gap(tmp_path: Path) -> None:
    """When the spool refuses a turn's group (full), every call in that turn gets Overloaded,
    the chain does not advance, and the next turn that fits is chained on without a gap."""
    sink = AuditSink(
        f"127.0.0.1:{free_port()}",
        SpoolConfig(
            tmp_path / "spool",
            max_bytes=64 << 10,
            adopt_orphans=False,
            chain_key_file=tmp_path / "key",
        ),
    )
    await sink.start()
    try:
        results = await asyncio.gather(
            *(sink.record([decision(i)]) for i in range(2000)), return_exceptions=True
        )
        assert all(isinstance(r, Overloaded) for r in results)
        assert sink.chain is not None and sink.chain.next_sequence == 0
        await sink.record([decision(0)])
        assert sink.chain.next_sequence == 1
        assert spooled(tmp_path / "spool") == 1
    finally:
        await sink.stop(0.0)


async def test_a_cancelled_call_does_not_cancel_the_others_in_its_turn(tmp_path: Path) -> None:
    """A caller that gives up (its deadline) while waiting for the turn's append leaves the
    other callers of that turn unharmed, and its record is still written."""
    sink = AuditSink(
        f"127.0.0.1:{free_port()}", SpoolConfig(tmp_path / "spool", adopt_orphans=False)
    )
    await sink.start()
    try:
        tasks = [asyncio.create_task(sink.record([decision(i)])) for i in range(5)]
        await asyncio.sleep(0)  # every task has joined the turn
        tasks[2].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[2], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 2] == [None] * 4
        assert spooled(tmp_path / "spool") == 5
    finally:
        await sink.stop(0.0)


def test_settle_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    """After settle_gc a full collection has nothing of start-up left to walk, and the young
    generation is collected less often than Python's default."""
    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD > 700
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_processes_auto_is_one_per_usable_core() -> None:
    """`--processes auto` is the number of cores this process may run on; numbers pass as
    they are and 0 is refused."""
    count = ProcessCount()
    assert count.convert("auto", None, None) == usable_cores() == len(os.sched_getaffinity(0))
    assert count.convert("3", None, None) == 3
    with pytest.raises(Exception, match="less than 1"):
        count.convert("0", None, None)
    with pytest.raises(Exception, match="neither a number"):
        count.convert("many", None, None)


class _StallingEcho(pred_grpc.PredictionServiceServicer):
    """Echo that holds every call arriving in its first `stall_s` seconds until they pass."""

    def __init__(self, stall_s: float) -> None:
        self._response = fixed_response()
        self._until: float | None = None
        self._stall_s = stall_s

    async def Predict(
        self, request: pred_pb.PredictRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pred_pb.PredictResponse:
        now = time.monotonic()
        if self._until is None:
            self._until = now + self._stall_s
        if now < self._until:
            await asyncio.sleep(self._until - now)
        return self._response


async def test_open_loop_counts_waiting_behind_a_stall() -> None:
    """Calls due while the server stalls start on time and count from when they were due: a
    0.5 s stall at 100 calls/s makes the p90 several hundred ms, though every call after the
    stall is fast."""
    servicer = _StallingEcho(0.5)  # type: ignore[abstract]
    running = await start_server(
        lambda s: pred_grpc.add_PredictionServiceServicer_to_server(servicer, s),
        [SERVICE_NAME],
        "127.0.0.1",
        0,
    )
    try:
        report = await openloop.run(
            f"127.0.0.1:{running.port}",
            [pred_pb.PredictRequest(model="m")],
            rps=100,
            duration_s=1.5,
            connections=2,
        )
    finally:
        await running.stop(0)
    assert report.errors == 0 and report.count == 150
    assert report.p90_ms > 200
    assert report.p50_ms < 100
    assert len(report.quantiles_ms) == 101


def test_the_profile_split_names_each_part() -> None:
    """Stacks are counted under the first part any of their frames belongs to; grpc.aio's
    compiled callbacks count as gRPC, unknown frames as other."""
    lines = [
        "run (asyncio/runners.py:1);Handle._run (asyncio/events.py:80) 10",
        "x;AuditSink.record (prediction/audit_sink.py:1);canonical (core/chain.py:36) 3",
        "x;PredictionServicer._one (prediction/servicer.py:72);"
        "NumericFeature.bin (core/signature.py:121) 2",
        "x;SpoolSender._read_loop (spool/sender.py:1);Spool.acknowledge (spool/spool.py:1) 1",
        "mystery (elsewhere.py:1) 4",
    ]
    s = split(lines)
    assert s.total == 20
    assert s.samples == {
        "gRPC and event loop": 10,
        "audit append": 3,
        "binning": 2,
        "acknowledgements": 1,
        "other": 4,
    }
    assert categorise(["Lookup.get (prediction/lookup.py:1)"]) == "cache"
    assert "| audit append | 3 | 15.0 % | 60 |" in table(s, 400.0)


def test_server_cpu_includes_its_child_processes() -> None:
    """The CPU of a server started with --processes N is its own plus its children's."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.process_time()\n"
         "while time.process_time() - t < 0.3: pass\ntime.sleep(30)"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while cpu._process_s(os.getpid()) - _own_cpu_s() < 0.25:
            assert time.monotonic() < deadline, "the child's CPU was not counted"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system
