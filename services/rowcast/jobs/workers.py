"""The process stage of materialisation: spawned workers that score grid chunks and write them,
and the parent-side driver that feeds them chunk ranges and tracks the watermark.

Each worker loads the booster once from the saved model file (a booster cannot cross a process
boundary cheaply, a file path can) and opens its own HBase connection. A task names a range of
flat grid indices, never the cells themselves, so what crosses the process boundary is a few
integers each way and memory stays flat in the grid size: a worker holds one chunk at a time.

Workers run under the `spawn` start method: the parent may be a gRPC server with threads, and
forking a threaded process (or gRPC's own state) is unsafe.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import lightgbm as lgb
import numpy as np

from rowcast.config import HBaseSettings
from rowcast.core.keys import add_digests, chunk_digest, key_matrix, split_rows
from rowcast.core.ratelimit import TokenBucket
from rowcast.core.signature import Signature
from rowcast.jobs.modelfile import Encoding
from rowcast.jobs.train import representative_matrix
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore


def cell_bins(shape: tuple[int, ...], flat: np.ndarray) -> np.ndarray:
    """Bins of the grid cells with these flat (row-major) indices, shape (rows, features)."""
    return np.column_stack(np.unravel_index(flat, shape)).astype(np.int64)


def grid_bins(shape: tuple[int, ...], start: int, stop: int) -> np.ndarray:
    """Bins of the grid cells with flat indices start..stop-1."""
    return cell_bins(shape, np.arange(start, stop, dtype=np.int64))


def score(
    booster: lgb.Booster, signature: Signature, bins: np.ndarray, encoding: Encoding | None = None
) -> np.ndarray:
    """The model's outputs at the representative inputs of grid cells, categories coded by
    `encoding` (the booster's own mapping, read from it when None).

    One thread per worker: the workers are the parallelism, and LightGBM's per-row result does
    not depend on its thread count (checked: bit-identical), so this loses nothing.
    """
    coded = encoding if encoding is not None else Encoding.of(booster, signature)
    matrix = representative_matrix(signature, bins, coded)
    return np.asarray(booster.predict(matrix, num_threads=1), dtype=np.float64)


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of one materialisation needs (pickled once per worker)."""

    hbase: HBaseSettings
    table: str
    version: int
    signature: Signature
    salt_buckets: int
    model_file: Path


@dataclass(frozen=True)
class ChunkTask:
    """Score and write grid cells start..stop-1 (chunk number `index` of this run)."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class ChunkDone:
    """A chunk acknowledged by HBase: its rows, digest and where the worker spent its time."""

    index: int
    rows: int
    digest: int
    score_s: float
    write_s: float


@dataclass
class _WorkerState:
    config: WorkerConfig
    booster: lgb.Booster
    encoding: Encoding
    store: PredictionStore
    shape: tuple[int, ...]


_state: _WorkerState | None = None


def init_worker(config: WorkerConfig) -> None:
    """Process initializer: load the booster (and its category mapping) and open the store
    once per worker."""
    global _state
    booster = lgb.Booster(model_file=str(config.model_file))
    encoding = Encoding.of(booster, config.signature)
    store = PredictionStore(HBaseClient(config.hbase))
    _state = _WorkerState(config, booster, encoding, store, config.signature.cardinalities)


def write_chunk(task: ChunkTask) -> ChunkDone:
    """Score one chunk and write it in one mutateRows call; returns once HBase acknowledged."""
    if _state is None:
        raise RuntimeError("worker not initialised (init_worker was not run)")
    cfg = _state.config
    started = time.perf_counter()
    bins = grid_bins(_state.shape, task.start, task.stop)
    outputs = score(_state.booster, cfg.signature, bins, _state.encoding)
    keys = key_matrix(bins, cfg.salt_buckets)
    digest = chunk_digest(keys, outputs)
    rows = zip(split_rows(keys), outputs.tolist(), strict=True)
    scored = time.perf_counter()
    written = _state.store.write(cfg.table, rows, cfg.version)
    return ChunkDone(task.index, written, digest, scored - started, time.perf_counter() - scored)


def digest_range(
    hbase: HBaseSettings, table: str, start: bytes, stop: bytes | None
) -> tuple[int, int]:
    """(rows, digest) of the rows of `table` with keys in [start, stop) that hold an output.

    A top-level function so that any executor (the worker processes, or threads) can run it.
    """
    client = HBaseClient(hbase)
    try:
        return PredictionStore(client).digest(table, row_start=start or None, row_stop=stop)
    finally:
        client.close()


def _ready() -> int:
    # Long enough that each warm-up call lands on its own worker, not all on the first one up.
    time.sleep(0.2)
    return os.getpid()


async def warm_up(pool: Executor, workers: int) -> None:
    """Wait until the workers are started and initialised (booster loaded), so that paced
    tokens are not spent while nothing can write, and start-up is not counted as writing."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(workers)))


def spawn_pool(config: WorkerConfig, workers: int) -> ProcessPoolExecutor:
    """Worker processes started with `spawn`, each initialised with `config`."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(config,),
    )


# --- The parent side: handing chunks to the workers and tracking what is done. ---------

#: The longest the driver waits before reporting progress and looking at `cancel` again.
TICK_S: Final = 0.5


class Watermark:
    """Tracks finished chunks of one run and the contiguous prefix of the grid that is written.

    Chunk i covers flat indices [start + i * chunk, start + (i + 1) * chunk) clipped to the
    grid, where `start` is where this run began (a resumed run's chunks need not align with the
    previous run's). Only chunks above the prefix are remembered, so memory is bounded by the
    number of chunks in flight.
    """

    def __init__(self, start: int, total: int, chunk_rows: int, digest: int = 0) -> None:
        if chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        if not 0 <= start <= total:
            raise ValueError(f"start {start} is outside the grid of {total}")
        self._start = start
        self._total = total
        self._chunk = chunk_rows
        self._next = 0
        self._ahead: dict[int, int] = {}
        self._digest = digest

    @property
    def chunks(self) -> int:
        return -(-(self._total - self._start) // self._chunk)

    def task(self, index: int) -> ChunkTask:
        lo = self._start + index * self._chunk
        return ChunkTask(index, lo, min(self._total, lo + self._chunk))

    def complete(self, index: int, digest: int = 0) -> None:
        """Record chunk `index` as written (a repeated completion changes nothing)."""
        if not 0 <= index < self.chunks:
            raise ValueError(f"no chunk {index} in this run ({self.chunks} chunks)")
        if index < self._next:
            return
        self._ahead[index] = digest
        while self._next in self._ahead:
            self._digest = add_digests(self._digest, self._ahead.pop(self._next))
            self._next += 1

    @property
    def total(self) -> int:
        return self._total

    @property
    def rows_done(self) -> int:
        """Every cell below this flat index is written."""
        return min(self._total, self._start + self._next * self._chunk)

    @property
    def digest(self) -> int:
        """Table digest (`rowcast.core.keys`) of the cells below the watermark."""
        return self._digest

    @property
    def finished(self) -> bool:
        return self.rows_done >= self._total


class ChunkDriver:
    """Feeds chunks to the workers within the window and the rate, and collects completions."""

    def __init__(
        self,
        pool: Executor,
        mark: Watermark,
        window: int,
        bucket: TokenBucket,
        cancel: threading.Event | None,
        on_tick: Callable[[], Awaitable[None]],
        work: Callable[[ChunkTask], ChunkDone] = write_chunk,
    ) -> None:
        self._work = work
        self._pool = pool
        self._mark = mark
        self._window = window
        self._bucket = bucket
        self._cancel = cancel
        self._on_tick = on_tick
        self._inflight: dict[asyncio.Future[ChunkDone], int] = {}
        self._next = 0
        self.rows_written = 0

    def _stopping(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    def _dispatch(self) -> float:
        """Submit chunks until the window is full; the seconds to wait for the rate, or TICK_S."""
        while len(self._inflight) < self._window and self._next < self._mark.chunks:
            task = self._mark.task(self._next)
            delay = self._bucket.try_take(task.stop - task.start)
            if delay > 0:
                return min(TICK_S, delay)
            future = asyncio.wrap_future(self._pool.submit(self._work, task))
            self._inflight[future] = task.index
            self._next += 1
        return TICK_S

    async def run(self) -> bool:
        """Write the run's chunks; True if all were written, False if stopped by `cancel`.

        On a worker error no new chunk is handed out, the chunks in flight are collected (so
        the checkpoint includes them) and the first error is raised.
        """
        error: BaseException | None = None
        while True:
            halt = error is not None or self._stopping()
            wait_s = TICK_S if halt else self._dispatch()
            if not self._inflight:
                if halt or self._next >= self._mark.chunks:
                    break
                await asyncio.sleep(wait_s)  # paced: nothing in flight, tokens not there yet
            else:
                done, _ = await asyncio.wait(
                    self._inflight, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
                )
                for future in done:
                    self._inflight.pop(future)
                    try:
                        chunk = future.result()
                    except Exception as exc:
                        error = error or exc
                        continue
                    self._mark.complete(chunk.index, chunk.digest)
                    self.rows_written += chunk.rows
            await self._on_tick()
        if error is not None:
            raise error
        return self._mark.finished

    def abandon(self) -> None:
        """Forget chunks in flight (task cancelled): the workers finish them, nobody waits."""
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
