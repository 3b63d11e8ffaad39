"""Materialisation on a real HBase: resume after a cancel, the verification gate, the grid
limit, and fidelity measured with real table lookups.

Each test registers its own model (same signature and model file as the demo's v1), so the
demo model's versions stay as the other integration tests expect them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import happybase
import lightgbm as lgb
import numpy as np
import pytest
import pytest_asyncio

from rowcast.config import Settings
from rowcast.core.keys import chunk_digest, encode_double, key_matrix, prediction_key
from rowcast.core.records import OutputKind, VersionInfo, VersionState
from rowcast.core.signature import Signature
from rowcast.errors import AlreadyExists, InvalidArgument, VerificationFailed
from rowcast.jobs import dataset as datasets
from rowcast.jobs.create import HELDOUT_FRACTION, SPLIT_SEED
from rowcast.jobs.materialize import (
    MaterializeCancelled,
    MaterializeOptions,
    MaterializeResult,
    Progress,
    materialize,
)
from rowcast.jobs.verify import HeldOut, verify
from rowcast.jobs.workers import grid_bins, score
from rowcast.store.admin import TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from tests.integration.conftest import Published

#: Small chunks, so that the demo grid (9,600 cells) spans enough of them to stop half-way.
OPTIONS = MaterializeOptions(chunk_rows=400, checkpoint_every_s=0.0)


class Overrides(TypedDict, total=False):
    """What a test changes in the materialize call that `Stores.run` makes."""

    max_grid_rows: int
    model_file: Path
    options: MaterializeOptions
    progress: Progress
    resume: bool
    cancel: threading.Event
    heldout: HeldOut


@dataclass
class Stores:
    """The stores a materialisation needs, on one pooled client."""

    settings: Settings
    client: HBaseClient
    registry: Registry
    predictions: PredictionStore
    admin: TableAdmin
    signature: Signature
    model_file: Path

    def key_of(self, flat: int) -> bytes:
        """Row key of the grid cell with this flat index (by the reference layout)."""
        bins = np.unravel_index(flat, self.signature.cardinalities)
        return prediction_key([int(b) for b in bins], self.settings.salt_buckets)

    async def new_version(self, model: str) -> VersionInfo:
        """A new REGISTERED version of `model` (registered with the demo signature if new)."""
        with contextlib.suppress(AlreadyExists):
            await self.registry.models.register_model(
                model,
                self.signature,
                OutputKind.PROBABILITY,
                "p",
                "t",
                self.settings.salt_buckets,
                timeout_s=30.0,
            )
        return await self.registry.versions.new_version(model, "test", timeout_s=30.0)

    async def run(self, version: VersionInfo, **overrides: Unpack[Overrides]) -> MaterializeResult:
        args: Overrides = {
            "max_grid_rows": self.settings.max_grid_rows,
            "model_file": self.model_file,
            "options": OPTIONS,
        }
        args.update(overrides)
        return await materialize(
            registry=self.registry,
            predictions=self.predictions,
            admin=self.admin,
            version=version,
            signature=self.signature,
            metrics={},
            salt_buckets=self.settings.salt_buckets,
            hbase=self.settings.hbase,
            timeout_s=30.0,
            **args,
        )

    async def cancelled_half_way(self, version: VersionInfo) -> int:
        """Materialise until about 2,000 rows are done, then cancel; the rows done."""
        cancel = threading.Event()

        def progress(done: int, total: int) -> None:
            if done >= 2_000:
                cancel.set()

        with pytest.raises(MaterializeCancelled) as stopped:
            await self.run(version, cancel=cancel, progress=progress)
        return stopped.value.rows_done


@pytest_asyncio.fixture(loop_scope="session")
async def stores(settings: Settings, published: Published) -> AsyncIterator[Stores]:
    client = HBaseClient(settings.hbase)
    try:
        yield Stores(
            settings,
            client,
            Registry.over(client),
            PredictionStore(client),
            TableAdmin(settings.hbase),
            published.v1.model.signature,
            published.v1.model_file,
        )
    finally:
        client.close()


def expected_digest(signature: Signature, model_file: Path, buckets: int) -> int:
    """The grid's digest computed locally in one pass, for comparison with a resumed run."""
    booster = lgb.Booster(model_file=str(model_file))
    bins = grid_bins(signature.cardinalities, 0, signature.grid_size)
    return chunk_digest(key_matrix(bins, buckets), score(booster, signature, bins))


async def test_resume_after_cancel_writes_exactly_the_grid(
    stores: Stores, published: Published
) -> None:
    """A cancelled run stays MATERIALIZING at its checkpoint; the resumed run writes only the
    rest, the table holds exactly the grid, every sampled cell equals the model, and the
    grid's digest is that of a single uninterrupted pass."""
    version = await stores.new_version("mat_resume")
    grid = stores.signature.grid_size
    stopped = await stores.cancelled_half_way(version)
    assert 2_000 <= stopped < grid
    paused = await stores.registry.versions.get_version(
        "mat_resume", version.version, timeout_s=30.0
    )
    assert paused.state is VersionState.MATERIALIZING
    assert paused.rows_written == stopped

    _, test_frame = datasets.load("default").split(HELDOUT_FRACTION, SPLIT_SEED)
    result = await stores.run(
        paused, resume=True, heldout=HeldOut(test_frame, "default"), options=OPTIONS
    )

    assert result.rows_written == grid - stopped
    assert result.row_count == grid
    assert result.verification is not None and result.verification.ok
    assert result.verification.sampled == 1_000 and result.verification.mismatched == 0
    assert result.digest == expected_digest(
        stores.signature, stores.model_file, stores.settings.salt_buckets
    )
    ready = await stores.registry.versions.get_version(
        "mat_resume", version.version, timeout_s=30.0
    )
    assert ready.state is VersionState.READY and ready.row_count == grid
    # The sample's seed (drawn for this run) is recorded, exactly, beside the other figures.
    seed = ready.metrics["verified_sample_seed"]
    assert seed == result.verification.metrics["verified_sample_seed"] and seed == int(seed)
    # Fidelity through real lookups equals the locally flattened figure, and publish's.
    assert ready.metrics["auc_table"] == ready.metrics["auc_flattened"]
    assert ready.metrics["auc_table"] == pytest.approx(published.v1.metrics["auc_flattened"])
    assert ready.metrics["auc_raw"] == pytest.approx(published.v1.metrics["auc_raw"])


async def test_a_lost_row_fails_verification_and_the_active_version_stays(
    stores: Stores,
) -> None:
    """A row lost below the watermark before a resume: the count check fails, the version is
    FAILED with the reason recorded (never READY), and the active version is untouched."""
    model = "mat_lost"
    good = await stores.new_version(model)
    await stores.run(good)
    await stores.registry.aliases.activate(model, good.version, "test", "baseline", timeout_s=30.0)

    version = await stores.new_version(model)
    await stores.cancelled_half_way(version)
    first_key = stores.key_of(0)
    table = version.table
    stores.client.call(lambda conn: conn.table(table).delete(first_key))

    with pytest.raises(VerificationFailed) as failed:
        await stores.run(version, resume=True)
    assert "holds 9,599 rows, the grid has 9,600" in failed.value.message

    info = await stores.registry.versions.get_version(model, version.version, timeout_s=30.0)
    assert info.state is VersionState.FAILED
    assert "holds 9,599 rows" in info.failure_reason
    current = await stores.registry.models.get_model(model, timeout_s=30.0)
    assert current.current_version == good.version
    assert (
        await stores.registry.versions.get_version(model, good.version, timeout_s=30.0)
    ).state is VersionState.READY


async def test_a_wrong_cell_fails_the_sample_check(stores: Stores) -> None:
    """A stored output that differs from the model (same key, same timestamp) is caught by the
    re-scoring sample, even though the row count is right."""
    model = "mat_wrong"
    version = await stores.new_version(model)
    await stores.cancelled_half_way(version)
    key = stores.key_of(5)
    table = version.table

    def corrupt(conn: happybase.Connection) -> None:
        conn.table(table).put(key, {b"p:o": encode_double(0.123456789)}, timestamp=version.version)

    stores.client.call(corrupt)
    whole_grid = MaterializeOptions(chunk_rows=400, sample_size=stores.signature.grid_size)
    with pytest.raises(VerificationFailed, match="1 of 9600 sampled cells differ"):
        await stores.run(version, resume=True, options=whole_grid)
    info = await stores.registry.versions.get_version(model, version.version, timeout_s=30.0)
    assert info.state is VersionState.FAILED
    assert "differ from the model" in info.failure_reason


async def test_a_failed_sample_check_records_its_seed_and_reproduces(stores: Stores) -> None:
    """Each run samples with a fresh seed; a failed sample check records it in the version's
    metrics and failure reason, and re-verifying with that seed finds the same mismatches."""
    model = "mat_seed"
    version = await stores.new_version(model)
    await stores.cancelled_half_way(version)
    table = version.table

    def corrupt(conn: happybase.Connection) -> None:
        # A tenth of the grid, below the watermark: a 1,000-cell sample hits ~100 of them.
        with conn.table(table).batch(timestamp=version.version) as batch:
            for flat in range(960):
                batch.put(stores.key_of(flat), {b"p:o": encode_double(0.123456789)})

    stores.client.call(corrupt)
    with pytest.raises(VerificationFailed) as failed:
        await stores.run(version, resume=True)
    info = await stores.registry.versions.get_version(model, version.version, timeout_s=30.0)
    assert info.state is VersionState.FAILED
    seed = int(info.metrics["verified_sample_seed"])
    assert f"(verification sample seed {seed})" in info.failure_reason
    assert f"(verification sample seed {seed})" in failed.value.message
    mismatched = int(info.failure_reason.split(" of 1000 sampled cells differ")[0].split()[-1])
    assert mismatched > 0

    again = await verify(
        predictions=stores.predictions,
        hbase=stores.settings.hbase,
        table=table,
        version=version.version,
        signature=stores.signature,
        salt_buckets=stores.settings.salt_buckets,
        booster=lgb.Booster(model_file=str(stores.model_file)),
        seed=seed,
    )
    assert (again.sampled, again.mismatched) == (1_000, mismatched)


async def test_a_grid_over_the_limit_is_refused_before_anything_is_written(
    stores: Stores,
) -> None:
    """INVALID_ARGUMENT naming the grid size; no table, no progress, the version unchanged."""
    version = await stores.new_version("mat_limit")
    with pytest.raises(InvalidArgument, match="9,600 cells"):
        await stores.run(version, max_grid_rows=9_599)
    assert not stores.admin.exists(version.table, timeout_s=30.0)
    info = await stores.registry.versions.get_version("mat_limit", version.version, timeout_s=30.0)
    assert info.state is VersionState.REGISTERED
    assert (info.rows_written, info.checksum_done) == (0, 0)


async def test_a_model_that_cannot_score_the_grid_fails_with_its_reason(
    stores: Stores, tmp_path: Path
) -> None:
    """A worker error (a model trained on 5 features, the signature has 3) makes the version
    FAILED with LightGBM's message as the reason."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 5))
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1}
    wrong = lgb.train(params, lgb.Dataset(x, label=x[:, 0] > 0), num_boost_round=3)
    path = tmp_path / "wrong.txt"
    wrong.save_model(str(path))
    version = await stores.new_version("mat_broken")
    with pytest.raises(Exception, match="number of features"):
        await stores.run(version, model_file=path)
    info = await stores.registry.versions.get_version("mat_broken", version.version, timeout_s=30.0)
    assert info.state is VersionState.FAILED
    assert "number of features" in info.failure_reason


async def test_a_cancelled_task_leaves_the_version_resumable(stores: Stores) -> None:
    """The service stopping mid-run (its asyncio task cancelled) is like a crash: the version
    stays MATERIALIZING, never READY or FAILED, and a resumed run completes it exactly."""
    model = "mat_crash"
    version = await stores.new_version(model)
    task: asyncio.Task[MaterializeResult] | None = None

    def progress(done: int, total: int) -> None:
        if done >= 2_000 and task is not None:
            task.cancel()

    task = asyncio.create_task(stores.run(version, progress=progress))
    with pytest.raises(asyncio.CancelledError):
        await task
    paused = await stores.registry.versions.get_version(model, version.version, timeout_s=30.0)
    assert paused.state is VersionState.MATERIALIZING
    done = (
        await stores.registry.versions.get_version(model, version.version, timeout_s=30.0)
    ).rows_written
    assert 0 < done < stores.signature.grid_size

    result = await stores.run(paused, resume=True)
    assert result.row_count == stores.signature.grid_size
    assert result.rows_written == stores.signature.grid_size - done
    ready = await stores.registry.versions.get_version(model, version.version, timeout_s=30.0)
    assert ready.state is VersionState.READY
