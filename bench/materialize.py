#!/usr/bin/env python
"""Materialisation benchmark: write rate against the raw happybase batch-put rate, peak memory
against grid size, and Predict latency while a materialisation runs, with and without the rate
limit. Everything runs in one invocation on its own standalone HBase (free ports, a temporary
home), which is stopped at the end; ratios are measured in the same run, on the same HBase.

Steps:
  1. raw rate: pre-built rows (same key and cell sizes as a version table: 9-byte key, an
     8-byte output and an 8-byte version) put with happybase batches of the chunk size into a
     pre-split table, by one writer and by as many parallel writers as materialisation has
     workers; measured before and after the large materialisation.
  2. materialise a small grid (~rows/10) and the large grid (--rows, default ~10M) of a
     synthetic 4-feature LightGBM model; rows/s, and peak RSS of this process plus its
     workers, sampled every 0.25 s.
  3. Predict p50/p99 from a prediction server (cache off, audit off: every call reads HBase)
     driven at a fixed rate: idle, during the large materialisation, and during a
     materialisation under --rate-limit (cancelled after the window, then resumed).

Results: bench/results/materialize-<timestamp>.json and a summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import grpc
import happybase
import lightgbm as lgb
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rowcast.config import HBaseSettings, Settings
from rowcast.core.keys import encode_double, encode_long, key_matrix, split_keys, split_rows
from rowcast.core.records import OutputKind, VersionInfo
from rowcast.core.signature import NumericFeature, Signature
from rowcast.jobs.materialize import (
    MaterializeCancelled,
    MaterializeOptions,
    MaterializeResult,
    materialize,
)
from rowcast.jobs.spark.options import PRIORITIES, SparkOptions
from rowcast.jobs.train import save
from rowcast.jobs.workers import grid_bins
from rowcast.store.admin import DDL_TIMEOUT_S, Family, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import OUTPUT_COL, VERSION_COL, PredictionStore
from rowcast.store.registry import Registry
from rowcast.store.schema import PRED_FAMILY, ensure_schema
from rowcast_client import RowcastClient, Targets
from rowcast_dev.hbase.ports import free_ports, on_free_ports
from rowcast_dev.hbase.runtime import StandaloneHBase

RESULTS = Path(__file__).resolve().parent / "results"
#: Deadline of each registry call the benchmark makes, seconds.
CALL_S = 30.0
FEATURES = 4
SMALL_MODEL = "bench_small"
LARGE_MODEL = "bench_large"
MB = 1024 * 1024


# --- The synthetic model ---------------------------------------------------------------------


def training_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four standard-normal features and a binary label with interactions."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES))
    logit = x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] ** 2 + rng.normal(scale=0.5, size=rows)
    return x, (logit > 0).astype(int)


def signature_for(x: np.ndarray, bins: int) -> Signature:
    """Quantile bins (bins per feature) with each bin's median as its representative."""
    features = []
    for j in range(FEATURES):
        values = np.sort(x[:, j])
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
        index = np.searchsorted(edges, values, side="right")
        reps = tuple(float(np.median(values[index == b])) for b in range(len(edges) + 1))
        features.append(
            NumericFeature(
                f"x{j}", tuple(float(e) for e in edges), reps, float(values[0]), float(values[-1])
            )
        )
    return Signature(tuple(features))


def train_model(x: np.ndarray, y: np.ndarray) -> lgb.Booster:
    params = {
        "objective": "binary",
        "num_leaves": 15,
        "learning_rate": 0.1,
        "verbosity": -1,
        "num_threads": 1,
        "deterministic": True,
        "seed": 7,
    }
    return lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=100)


def bins_for(rows: int) -> int:
    """Bins per feature whose 4-feature grid is closest to `rows`."""
    return max(2, round(math.pow(rows, 1 / FEATURES)))


# --- Peak RSS of this process and its workers ------------------------------------------------


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


class RssSampler:
    """Samples the RSS of this process and its descendants (minus excluded pids: HBase, the
    prediction server, the load driver) every `period_s`, keeping the peaks."""

    def __init__(self, exclude: set[int], period_s: float = 0.25) -> None:
        self._exclude = exclude
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self.peak_total_kb = self.peak_main_kb = self.peak_workers_kb = self.samples = 0

    def _sample(self) -> None:
        tree = _children()
        me = os.getpid()
        stack, workers = list(tree.get(me, [])), 0
        while stack:
            pid = stack.pop()
            if pid in self._exclude:
                continue
            workers += _rss_kb(pid)
            stack.extend(tree.get(pid, []))
        main = _rss_kb(me)
        self.peak_main_kb = max(self.peak_main_kb, main)
        self.peak_workers_kb = max(self.peak_workers_kb, workers)
        self.peak_total_kb = max(self.peak_total_kb, main + workers)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def report(self) -> dict[str, float]:
        return {
            "peak_rss_total_mb": round(self.peak_total_kb / 1024, 1),
            "peak_rss_main_mb": round(self.peak_main_kb / 1024, 1),
            "peak_rss_workers_mb": round(self.peak_workers_kb / 1024, 1),
            "rss_samples": self.samples,
        }


# --- The raw happybase batch-put rate --------------------------------------------------------


def raw_writer(
    hbase: HBaseSettings,
    table: str,
    start: int,
    rows: int,
    chunk: int,
    ready: MpQueue[int],
    go: MpEvent,
) -> None:
    """Put `rows` pre-built rows (grid cells from flat index `start`) in batches of `chunk`."""
    shape = (256,) * FEATURES
    keys = split_rows(key_matrix(grid_bins(shape, start, start + rows), 16))
    outputs = [encode_double(v) for v in np.random.default_rng(start).random(rows).tolist()]
    version = encode_long(1)
    batches = [
        [
            (k, {OUTPUT_COL: o, VERSION_COL: version})
            for k, o in zip(keys[i : i + chunk], outputs[i : i + chunk], strict=True)
        ]
        for i in range(0, rows, chunk)
    ]
    conn = happybase.Connection(hbase.host, hbase.thrift_port, timeout=120_000)
    target = conn.table(table)
    ready.put(start)
    go.wait()
    for cells in batches:
        with target.batch(timestamp=1, wal=True) as batch:
            for key, data in cells:
                batch.put(key, data)
    conn.close()


def raw_rate(hbase: HBaseSettings, rows: int, chunk: int, writers: int, label: str) -> float:
    """Rows/s of `writers` processes putting `rows` rows in total into a fresh pre-split table."""
    table = f"rowcast:raw_{label}_{int(time.time())}"
    TableAdmin(hbase).create(table, [Family(PRED_FAMILY)], split_keys(16), timeout_s=DDL_TIMEOUT_S)
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    ready: MpQueue[int] = ctx.Queue()
    share = rows // writers
    procs = [
        ctx.Process(target=raw_writer, args=(hbase, table, i * share, share, chunk, ready, go))
        for i in range(writers)
    ]
    for p in procs:
        p.start()
    for _ in procs:  # every writer has built its rows and connected: start the clock
        ready.get(timeout=600)
    started = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"a raw writer failed: exit codes {[p.exitcode for p in procs]}")
    TableAdmin(hbase).drop(table, timeout_s=DDL_TIMEOUT_S)
    return share * writers / elapsed


# --- Predict latency under load --------------------------------------------------------------


def drive_predictions(
    target: str,
    model: str,
    rps: float,
    max_s: float,
    begin: MpEvent,
    stop: MpEvent,
    out: Connection,
) -> None:
    """After `begin`, call Predict at a fixed rate until `stop` or `max_s`; send back the
    latencies (ms). Open loop: calls are due at fixed times, a slow call delays only itself
    and the calls that fall due while it runs."""
    rng = np.random.default_rng(11)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    with RowcastClient(Targets(prediction=target), timeout_s=2.0) as client:
        for _ in range(20):  # warm the channel
            client.predict(model, {f"x{j}": 0.0 for j in range(FEATURES)})
        begin.wait()
        started = time.perf_counter()
        i = 0
        while not stop.is_set() and time.perf_counter() - started < max_s:
            due = started + i / rps
            if (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
            features = {f"x{j}": float(v) for j, v in enumerate(rng.normal(size=FEATURES))}
            t0 = time.perf_counter()
            try:
                client.predict(model, features)
                latencies.append((time.perf_counter() - t0) * 1000)
            except Exception as exc:  # counted, the load goes on
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            i += 1
        window = time.perf_counter() - started
    out.send({"latencies_ms": latencies, "errors": errors, "window_s": window})
    out.close()


class LatencyProbe:
    """A load-driver process measuring Predict latency over a window.

    The process starts (and warms its channel) at once but loads only after `begin()`, so its
    pid can be excluded from the RSS sampling before any sample is taken.
    """

    def __init__(self, target: str, model: str, rps: float, max_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._begin = ctx.Event()
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=drive_predictions,
            args=(target, model, rps, max_s, self._begin, self._stop, send),
        )
        self.rps = rps
        self._proc.start()
        assert self._proc.pid is not None
        self.pid: int = self._proc.pid

    def begin(self) -> None:
        self._begin.set()

    def stop(self) -> None:
        self._stop.set()

    def result(self) -> dict[str, Any]:
        """Block until the driver finishes; latency percentiles and error counts."""
        data: dict[str, Any] = self._recv.recv()
        self._proc.join()
        lat = np.asarray(data["latencies_ms"])
        ok = len(lat) > 0
        return {
            "target_rps": self.rps,
            "window_s": round(data["window_s"], 1),
            "calls": len(lat),
            "errors": data["errors"],
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if ok else None,
            "p90_ms": round(float(np.percentile(lat, 90)), 2) if ok else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if ok else None,
            "max_ms": round(float(lat.max()), 2) if ok else None,
        }


@contextlib.contextmanager
def prediction_server(settings: Settings, home: Path) -> Iterator[tuple[str, int]]:
    """`rowcast serve prediction` on a free port, cache and audit off; (target, pid).

    Plain text (--insecure), as in earlier runs of this benchmark, so that its serving figures
    stay comparable: it measures what a materialisation costs serving; what TLS and tokens
    cost a call is measured by `rowcast bench` (docs/benchmarks.md)."""
    (port,) = free_ports(1)
    hb = settings.hbase
    env = {
        **os.environ,
        "ROWCAST_HOME": str(home),
        "ROWCAST_HBASE_HOST": hb.host,
        "ROWCAST_HBASE_THRIFT_PORT": str(hb.thrift_port),
        "ROWCAST_HBASE_THRIFT2_PORT": str(hb.thrift2_port),
        "ROWCAST_AUDIT": "off",
        "ROWCAST_CACHE_SIZE": "0",
        "ROWCAST_INSECURE": "on",
    }
    log = open(home / "prediction.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "rowcast_cli.main", "serve", "prediction", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    target = f"127.0.0.1:{port}"
    try:
        _wait_serving(target, proc, timeout_s=120.0)
        yield target, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def _wait_serving(target: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prediction server exited with code {proc.returncode}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"prediction server not SERVING after {timeout_s:g}s")
            time.sleep(0.3)


# --- The run ---------------------------------------------------------------------------------


@dataclass
class Bench:
    """The stores, the model file and the options shared by every materialisation."""

    settings: Settings
    registry: Registry
    predictions: PredictionStore
    admin: TableAdmin
    model_file: Path
    options: MaterializeOptions
    exclude: set[int]
    #: (time, watermark) of every progress report of the latest materialisation.
    trace: list[tuple[float, int]] = field(default_factory=list)

    def watermark_rate(self) -> float:
        """Rows/s of the latest run's watermark, from its first advance to its last report."""
        moving = [(t, d) for t, d in self.trace if d > self.trace[0][1]] if self.trace else []
        if len(moving) < 2 or moving[-1][0] <= moving[0][0]:
            return 0.0
        return (moving[-1][1] - moving[0][1]) / (moving[-1][0] - moving[0][0])

    async def register(self, name: str, signature: Signature) -> None:
        await self.registry.models.register_model(
            name,
            signature,
            OutputKind.PROBABILITY,
            "p",
            "benchmark",
            self.settings.salt_buckets,
            timeout_s=CALL_S,
        )

    async def materialize(
        self,
        version: VersionInfo,
        signature: Signature,
        *,
        resume: bool = False,
        cancel: threading.Event | None = None,
        options: MaterializeOptions | None = None,
        on_written: threading.Event | None = None,
        spark: SparkOptions | None = None,
    ) -> MaterializeResult:
        last = [0.0]
        self.trace = []

        def progress(done: int, total: int) -> None:
            self.trace.append((time.monotonic(), done))
            if on_written is not None and done >= total:
                on_written.set()
            if time.monotonic() - last[0] >= 15.0:
                print(f"    {version.model} v{version.version}: {done:,}/{total:,}", flush=True)
                last[0] = time.monotonic()

        return await materialize(
            registry=self.registry,
            predictions=self.predictions,
            admin=self.admin,
            version=version,
            signature=signature,
            metrics={},
            salt_buckets=self.settings.salt_buckets,
            max_grid_rows=self.settings.max_grid_rows,
            model_file=self.model_file,
            hbase=self.settings.hbase,
            progress=progress,
            resume=resume,
            cancel=cancel,
            options=options or self.options,
            timeout_s=self.settings.hbase.timeout_s,
            spark=spark,
        )

    async def measured(self, name: str, signature: Signature) -> dict[str, Any]:
        """Materialise a new version of `name` with RSS sampling; its figures."""
        version = await self.registry.versions.new_version(name, "bench", timeout_s=CALL_S)
        started = time.monotonic()
        with RssSampler(self.exclude) as rss:
            result = await self.materialize(version, signature)
        return {
            "grid_rows": signature.grid_size,
            "startup_s": round(result.startup_s, 1),
            "write_s": round(result.write_s, 1),
            "verify_s": round(result.verify_s, 1),
            "rows_per_second": round(result.rows_per_second),
            "watermark_rows_per_second": round(self.watermark_rate()),
            "total_s_with_verification": round(time.monotonic() - started, 1),
            "verified_rows": result.row_count,
            "sample_ok": bool(result.verification and result.verification.ok),
            **rss.report(),
        }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "lightgbm": lgb.__version__,
        "note": "shared machine: other engineers run builds, tests and load on it at the same "
        "time, so absolute figures are noisy; compare ratios measured in this run",
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="rowcast-bench-mat-"))
    hbase_settings = on_free_ports(HBaseSettings(home=home, timeout_s=30.0, master_heap=args.heap))
    settings = Settings(hbase=hbase_settings, max_grid_rows=max(50_000_000, args.rows * 2))
    hb = StandaloneHBase(hbase_settings)
    print(f"starting HBase in {home} (heap {args.heap}) ...", flush=True)
    hb.start(timeout_s=300)
    client = HBaseClient(hbase_settings)
    try:
        return await _run(args, settings, hb, client, home)
    finally:
        client.close()
        print("stopping HBase ...", flush=True)
        hb.stop()
        # The tables of a 10M-row run take about a gigabyte; nothing here is kept.
        shutil.rmtree(home, ignore_errors=True)


async def _run(
    args: argparse.Namespace,
    settings: Settings,
    hb: StandaloneHBase,
    client: HBaseClient,
    home: Path,
) -> dict[str, Any]:
    hbase = settings.hbase
    out: dict[str, Any] = {"machine_at_start": machine(), "args": vars(args)}
    admin = TableAdmin(hbase)
    ensure_schema(admin, timeout_s=DDL_TIMEOUT_S)
    x, y = training_data(50_000, seed=1)
    booster = train_model(x, y)
    model_file = save(booster, home / "models" / "bench.txt")
    small = signature_for(x, bins_for(max(10_000, args.rows // 10)))
    large = signature_for(x, bins_for(args.rows))
    opts = MaterializeOptions(workers=args.workers, chunk_rows=args.chunk)
    bench = Bench(
        settings,
        Registry.over(client),
        PredictionStore(client),
        admin,
        model_file,
        opts,
        set(hb.pids().values()),
    )
    out["setup"] = {
        "small_grid": small.grid_size,
        "large_grid": large.grid_size,
        "workers": args.workers,
        "chunk_rows": args.chunk,
        "hbase_heap": args.heap,
        "salt_buckets": settings.salt_buckets,
        "trees": booster.num_trees(),
    }
    await bench.register(SMALL_MODEL, small)
    await bench.register(LARGE_MODEL, large)

    raw_rows = min(args.raw_rows, large.grid_size)
    print(f"raw happybase batch puts: {raw_rows:,} rows, chunk {args.chunk} ...", flush=True)
    raw = {
        "rows": raw_rows,
        "single_before": round(raw_rate(hbase, raw_rows, args.chunk, 1, "single1")),
        "parallel_before": round(raw_rate(hbase, raw_rows, args.chunk, args.workers, "par1")),
    }
    print(
        f"  single {raw['single_before']:,} rows/s, {args.workers} writers "
        f"{raw['parallel_before']:,} rows/s",
        flush=True,
    )

    print(f"materialising the small grid ({small.grid_size:,} rows) ...", flush=True)
    out["small"] = await bench.measured(SMALL_MODEL, small)
    await bench.registry.aliases.activate(
        SMALL_MODEL, 1, "bench", "serve during the benchmark", timeout_s=CALL_S
    )

    with prediction_server(settings, home) as (target, server_pid):
        bench.exclude.add(server_pid)
        latency: dict[str, Any] = {}
        print(f"Predict idle: {args.predict_rps:g} rps for {args.window:g} s ...", flush=True)
        probe = LatencyProbe(target, SMALL_MODEL, args.predict_rps, args.window)
        bench.exclude.add(probe.pid)
        probe.begin()
        latency["idle"] = await asyncio.to_thread(probe.result)

        print(
            f"materialising the large grid ({large.grid_size:,} rows), Predict load "
            "during its write phase ...",
            flush=True,
        )
        written = threading.Event()
        version = await bench.registry.versions.new_version(LARGE_MODEL, "bench", timeout_s=CALL_S)
        probe = LatencyProbe(target, SMALL_MODEL, args.predict_rps, args.window)
        bench.exclude.add(probe.pid)
        started = time.monotonic()
        with RssSampler(bench.exclude) as rss:
            task = asyncio.create_task(bench.materialize(version, large, on_written=written))
            await asyncio.sleep(5.0)  # workers up and writing
            probe.begin()
            stopper = asyncio.create_task(asyncio.to_thread(_stop_when, written, probe))
            try:
                result = await task
            finally:
                written.set()
            latency["during_materialize_unlimited"] = await asyncio.to_thread(probe.result)
            await stopper
        out["large"] = {
            "grid_rows": large.grid_size,
            "startup_s": round(result.startup_s, 1),
            "write_s": round(result.write_s, 1),
            "verify_s": round(result.verify_s, 1),
            "rows_per_second": round(result.rows_per_second),
            "watermark_rows_per_second": round(bench.watermark_rate()),
            "total_s_with_verification": round(time.monotonic() - started, 1),
            "verified_rows": result.row_count,
            "sample_ok": bool(result.verification and result.verification.ok),
            **rss.report(),
        }

        if args.engine == "spark":
            out["spark"] = await spark_runs(bench, small, large, target, args, latency)

        out["rate_limited"] = []
        for limit in args.rate_limit:
            print(f"materialising under a {limit:,.0f} rows/s limit, Predict load ...", flush=True)
            figures, latency[f"during_materialize_limited_{limit:.0f}"] = await limited_run(
                bench, small, limit, target, args
            )
            out["rate_limited"].append(figures)
        out["latency"] = latency

    print("raw happybase batch puts again ...", flush=True)
    raw["single_after"] = round(raw_rate(hbase, raw_rows, args.chunk, 1, "single2"))
    raw["parallel_after"] = round(raw_rate(hbase, raw_rows, args.chunk, args.workers, "par2"))
    raw["single_mean"] = round((raw["single_before"] + raw["single_after"]) / 2)
    raw["parallel_mean"] = round((raw["parallel_before"] + raw["parallel_after"]) / 2)
    out["raw"] = raw
    rate = out["large"]["rows_per_second"]
    out["ratios"] = {
        "large_vs_raw_single": round(rate / raw["single_mean"], 3),
        "large_vs_raw_parallel": round(rate / raw["parallel_mean"], 3),
        "peak_rss_large_vs_small": round(
            out["large"]["peak_rss_total_mb"] / out["small"]["peak_rss_total_mb"], 3
        ),
    }
    if "spark" in out:
        spark_rate = out["spark"]["large"]["rows_per_second"]
        out["ratios"]["spark_vs_builtin"] = round(spark_rate / rate, 3)
        out["ratios"]["spark_vs_raw_single"] = round(spark_rate / raw["single_mean"], 3)
    if args.pairs:
        out["paired"] = await paired_rounds(bench, small, args)
    out["machine_at_end"] = machine()
    return out


async def paired_rounds(bench: Bench, small: Signature, args: argparse.Namespace) -> dict[str, Any]:
    """Rounds of (raw single, raw parallel, materialise) on the same volume back to back.

    Other people's load on a shared machine swings absolute rates by tens of percent within
    minutes; ratios taken a minute apart are much steadier than ratios of whole-run figures.
    """
    rounds = []
    rows = small.grid_size
    for i in range(args.pairs):
        print(f"paired round {i + 1}/{args.pairs}: raw then materialise {rows:,} rows", flush=True)
        single = raw_rate(bench.settings.hbase, rows, args.chunk, 1, f"pair{i}s")
        parallel = raw_rate(bench.settings.hbase, rows, args.chunk, args.workers, f"pair{i}p")
        version = await bench.registry.versions.new_version(SMALL_MODEL, "bench", timeout_s=CALL_S)
        result = await bench.materialize(version, small)
        steady = bench.watermark_rate()
        rounds.append(
            {
                "raw_single": round(single),
                "raw_parallel": round(parallel),
                "materialize": round(result.rows_per_second),
                "materialize_steady": round(steady),
                "ratio_single": round(result.rows_per_second / single, 3),
                "ratio_parallel": round(result.rows_per_second / parallel, 3),
                "steady_ratio_single": round(steady / single, 3),
                "steady_ratio_parallel": round(steady / parallel, 3),
            }
        )

    def median(key: str) -> float:
        return round(float(np.median([r[key] for r in rounds])), 3)

    return {
        "rows_per_round": rows,
        "rounds": rounds,
        "median_ratio_single": median("ratio_single"),
        "median_ratio_parallel": median("ratio_parallel"),
        "median_steady_ratio_single": median("steady_ratio_single"),
        "median_steady_ratio_parallel": median("steady_ratio_parallel"),
    }


async def limited_run(
    bench: Bench, small: Signature, limit: float, target: str, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Materialise a new small version under `limit` rows/s while measuring Predict latency;
    cancel it when the latency window ends, then resume it without the limit."""
    version = await bench.registry.versions.new_version(SMALL_MODEL, "bench", timeout_s=CALL_S)
    cancel = threading.Event()
    paced = replace(bench.options, rows_per_second=limit)
    probe = LatencyProbe(target, SMALL_MODEL, args.predict_rps, args.window)
    bench.exclude.add(probe.pid)
    task = asyncio.create_task(bench.materialize(version, small, cancel=cancel, options=paced))
    await asyncio.sleep(5.0)
    probe.begin()
    latency = await asyncio.to_thread(probe.result)
    cancel.set()
    try:
        done: MaterializeResult | None = await task
        limited_rows = small.grid_size
    except MaterializeCancelled as stopped:
        done, limited_rows = None, stopped.rows_done
    limited_rate, cancelled = bench.watermark_rate(), done is None
    if done is None:  # cancelled mid-way, as intended: resume it without the limit
        paused = await bench.registry.versions.get_version(
            SMALL_MODEL, version.version, timeout_s=CALL_S
        )
        done = await bench.materialize(paused, small, resume=True)
    figures = {
        "limit_rows_per_second": limit,
        "rows_before_cancel": limited_rows,
        "achieved_rows_per_second": round(limited_rate),
        "cancelled": cancelled,
        "resumed_rows": done.rows_written if cancelled else 0,
        "final_row_count": done.row_count,
        "final_sample_ok": bool(done.verification and done.verification.ok),
    }
    return figures, latency


def _stop_when(written: threading.Event, probe: LatencyProbe) -> None:
    """End the latency window when the write phase ends (verification is not writing)."""
    written.wait()
    probe.stop()


def summary(result: dict[str, Any]) -> str:
    raw, large, small = result["raw"], result["large"], result["small"]
    lat, ratios, limited = result["latency"], result["ratios"], result["rate_limited"]
    lines = [
        f"raw happybase batch put (chunk {result['setup']['chunk_rows']}): "
        f"1 writer {raw['single_mean']:,} rows/s (before {raw['single_before']:,}, after "
        f"{raw['single_after']:,}); {result['setup']['workers']} writers "
        f"{raw['parallel_mean']:,} rows/s",
        f"materialise {large['grid_rows']:,} rows: {large['rows_per_second']:,} rows/s "
        f"(steady {large['watermark_rows_per_second']:,}; "
        f"{large['startup_s']} s worker start, {large['write_s']} s writing, "
        f"{large['verify_s']} s verifying) = "
        f"{ratios['large_vs_raw_single']}x raw single, "
        f"{ratios['large_vs_raw_parallel']}x raw parallel (goal >= 0.8)",
        f"materialise {small['grid_rows']:,} rows: {small['rows_per_second']:,} rows/s",
        f"peak RSS (this process + workers): {small['peak_rss_total_mb']} MB at "
        f"{small['grid_rows']:,} rows, {large['peak_rss_total_mb']} MB at "
        f"{large['grid_rows']:,} rows (x{ratios['peak_rss_large_vs_small']})",
    ]
    if "spark" in result:
        sp = result["spark"]
        lines += [
            f"Spark ({sp['master']}) {sp['large']['grid_rows']:,} rows: "
            f"{sp['large']['rows_per_second']:,} rows/s ({sp['large']['write_s']} s to loaded, "
            f"{sp['large']['verify_s']} s verifying) = {ratios['spark_vs_builtin']}x built-in, "
            f"{ratios['spark_vs_raw_single']}x raw single; small grid "
            f"{sp['small']['rows_per_second']:,} rows/s",
            f"Spark peak RSS driver (Python + JVM) / executor Python: "
            f"{sp['small']['peak_rss_driver_mb']} / {sp['small']['peak_rss_executor_python_mb']} "
            f"MB at {sp['small']['grid_rows']:,} rows, {sp['large']['peak_rss_driver_mb']} / "
            f"{sp['large']['peak_rss_executor_python_mb']} MB at {sp['large']['grid_rows']:,}",
            *(
                f"Spark phases, {sp[g]['grid_rows']:,} rows (s from the driver's start): "
                + ", ".join(f"{k.removeprefix('spark_')} {v}" for k, v in sp[g]["phases_s"].items())
                for g in ("small", "large")
            ),
        ]
    for name, figures in lat.items():
        lines.append(
            f"Predict {name}: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms "
            f"({figures['calls']} calls in {figures['window_s']} s, errors {figures['errors']})"
        )
    for lim in limited:
        lines.append(
            f"rate limit {lim['limit_rows_per_second']:,.0f} rows/s: achieved "
            f"{lim['achieved_rows_per_second']:,} rows/s; "
            + (
                f"cancelled at {lim['rows_before_cancel']:,} rows, resumed {lim['resumed_rows']:,}"
                if lim["cancelled"]
                else "finished inside the latency window"
            )
            + f"; table {lim['final_row_count']:,} rows, sample ok {lim['final_sample_ok']}"
        )
    if "paired" in result:
        paired = result["paired"]
        lines.append(
            f"paired rounds ({len(paired['rounds'])} x {paired['rows_per_round']:,} rows, raw "
            f"then materialise): median ratio {paired['median_ratio_single']}x raw single, "
            f"{paired['median_ratio_parallel']}x raw parallel (steady rate: "
            f"{paired['median_steady_ratio_single']}x, {paired['median_steady_ratio_parallel']}x)"
        )
    lines.append(
        f"load average {result['machine_at_start']['load_average']} at start, "
        f"{result['machine_at_end']['load_average']} at end on "
        f"{result['machine_at_start']['cpus']} CPUs ({result['machine_at_start']['note']})"
    )
    return "\n".join(lines)


# --- The Spark engine (--engine spark) ----------------------------------------------------


class SparkRss:
    """Peak RSS of a Spark run's processes by role, sampled every `period_s`: the driver's
    Python, the JVM (in local mode the driver and the executors share it) and the executors'
    Python workers (pyspark.daemon and its forks)."""

    def __init__(self, period_s: float = 0.25) -> None:
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spark-rss", daemon=True)
        self.peaks = {"driver_python": 0, "jvm": 0, "executor_python": 0}

    def _sample(self) -> None:
        tree = _children()
        stack = list(tree.get(os.getpid(), []))
        now = dict.fromkeys(self.peaks, 0)
        while stack:
            pid = stack.pop()
            stack.extend(tree.get(pid, []))
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"rowcast.jobs.spark.driver" in cmd:
                now["driver_python"] += _rss_kb(pid)
            elif b"pyspark.daemon" in cmd or b"pyspark.worker" in cmd:
                now["executor_python"] += _rss_kb(pid)
            elif b"org.apache.spark.deploy.SparkSubmit" in cmd:
                now["jvm"] += _rss_kb(pid)
        for role, kb in now.items():
            self.peaks[role] = max(self.peaks[role], kb)

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self._sample()

    def __enter__(self) -> SparkRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, float]:
        mb = {f"peak_rss_{role}_mb": round(kb / 1024, 1) for role, kb in self.peaks.items()}
        mb["peak_rss_driver_mb"] = round(mb["peak_rss_driver_python_mb"] + mb["peak_rss_jvm_mb"], 1)
        return mb


async def spark_run(
    bench: Bench, name: str, signature: Signature, args: argparse.Namespace
) -> dict[str, Any]:
    """Materialise a new version of `name` on Spark; rows/s (JVM start to table loaded),
    verification, and peak memory by role."""
    version = await bench.registry.versions.new_version(name, "bench", timeout_s=CALL_S)
    started = time.monotonic()
    with SparkRss() as rss:
        result = await bench.materialize(
            version,
            signature,
            spark=SparkOptions(
                master=args.spark_master,
                driver_memory=args.spark_driver_memory,
                priority=args.spark_priority,
            ),
        )
    info = await bench.registry.versions.get_version(name, version.version, timeout_s=CALL_S)
    return {
        "grid_rows": signature.grid_size,
        "write_s": round(result.write_s, 1),
        # Seconds from the driver's start to the end of each phase (engine: _Run.timings).
        "phases_s": {k: v for k, v in info.metrics.items() if k.startswith("spark_")},
        "verify_s": round(result.verify_s, 1),
        "rows_per_second": round(result.rows_per_second),
        "total_s_with_verification": round(time.monotonic() - started, 1),
        "verified_rows": result.row_count,
        "sample_ok": bool(result.verification and result.verification.ok),
        **rss.report(),
    }


async def spark_runs(
    bench: Bench,
    small: Signature,
    large: Signature,
    target: str,
    args: argparse.Namespace,
    latency: dict[str, Any],
) -> dict[str, Any]:
    """The small and the large grid on Spark; Predict latency during the large one's run
    (its bulk load included)."""
    print(f"Spark: the small grid ({small.grid_size:,} rows) ...", flush=True)
    figures = {
        "master": args.spark_master,
        "driver_memory": args.spark_driver_memory,
        "priority": args.spark_priority,
        "small": await spark_run(bench, SMALL_MODEL, small, args),
    }
    print(f"Spark: the large grid ({large.grid_size:,} rows), Predict load ...", flush=True)
    probe = LatencyProbe(target, SMALL_MODEL, args.predict_rps, args.window)
    bench.exclude.add(probe.pid)
    task = asyncio.create_task(spark_run(bench, LARGE_MODEL, large, args))
    probe.begin()
    figures["large"] = await task
    latency["during_spark_materialize"] = await asyncio.to_thread(probe.result)
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=10_000_000,
        help="size of the large grid (4 features, bins = rows^(1/4); "
        "default %(default)s gives 56^4 = 9,834,496; 1000000 for a quick run)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=MaterializeOptions.workers,
        help="materialisation worker processes (default %(default)s)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=MaterializeOptions.chunk_rows,
        help="rows per mutateRows batch (default %(default)s)",
    )
    parser.add_argument(
        "--raw-rows",
        type=int,
        default=1_000_000,
        help="rows per raw batch-put measurement (default %(default)s)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        nargs="+",
        default=[10_000.0, 5_000.0],
        help="rows/s of the rate-limited runs, one run each (default %(default)s)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=4,
        help="paired rounds of raw rate then materialisation of the small grid (default "
        "%(default)s; 0 skips them)",
    )
    parser.add_argument(
        "--predict-rps",
        type=float,
        default=50.0,
        help="Predict calls per second of the latency probe (default %(default)s)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=40.0,
        help="seconds of each latency window (default %(default)s)",
    )
    parser.add_argument(
        "--engine",
        choices=["builtin", "spark"],
        default="builtin",
        help="spark: also materialise the small and the large grid on Spark (HFiles and a "
        "bulk load), with its memory and Predict latency (default %(default)s)",
    )
    parser.add_argument(
        "--spark-master",
        default="local[2,2]",
        help="Spark master of --engine spark (default %(default)s)",
    )
    parser.add_argument(
        "--spark-driver-memory",
        default=SparkOptions.driver_memory,
        help="heap of the Spark driver JVM (local mode: the executors' too; default "
        "%(default)s, SparkOptions' default)",
    )
    parser.add_argument(
        "--spark-priority",
        choices=PRIORITIES,
        default=SparkOptions.priority,
        help="CPU priority of the Spark driver and its workers (default %(default)s, "
        "SparkOptions' default; normal competes with serving as an equal)",
    )
    parser.add_argument(
        "--heap",
        default="3g",
        help="heap of the standalone HBase JVM (default %(default)s; 1g runs "
        "into full GCs and ZooKeeper session loss at 10M rows)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="directory for the JSON result (default bench/results)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out / f"materialize-{stamp}.json"
    result["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(summary(result))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
