"""Uploads correct by construction and a verification gate that fails for the right reasons, on
real HBase with a 24-cell grid: a model whose categories are in another order than the
signature's is served correctly; a vocabulary the file lacks and a booster of the wrong output
kind are refused at CreateVersion; two swapped cells, a deleted row and a corrupted cell,
written into the table through happybase after the workers wrote it and before the gate runs,
each make the version FAILED naming why."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import happybase
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import pytest_asyncio

from rowcast.config import Settings
from rowcast.convert import signature_to_pb
from rowcast.core.keys import decode_double, encode_double, prediction_key
from rowcast.core.records import OutputKind, VersionInfo, VersionState
from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.errors import AlreadyExists, VerificationFailed
from rowcast.jobs.materialize import MaterializeOptions, materialize
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from rowcast.store.schema import ensure_schema
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient, InvalidArgumentError
from rowcast_dev.hbase.runtime import StandaloneHBase
from tests.integration.conftest import Suite

SIGNATURE = Signature(
    (
        NumericFeature("income", (25.0, 50.0, 75.0), (12.5, 37.5, 62.5, 87.5), 0.0, 100.0),
        CategoricalFeature("owner", ("yes", "no")),
        CategoricalFeature("colour", ("red", "green", "blue")),
    )
)
GRID = SIGNATURE.grid_size
#: The file's orders: owner reversed against the signature's, colours in another order.
FILE_ORDERS = {"owner": ["no", "yes"], "colour": ["blue", "red", "green"]}
OPTIONS = MaterializeOptions(workers=1, chunk_rows=8, sample_size=GRID, checkpoint_every_s=0.0)


def raw_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "income": rng.uniform(0, 100, n),
            "owner": rng.choice(["yes", "no"], n),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    # A strong owner effect: a category fed with the other one's code answers visibly wrong.
    logit = (data.income - 50) / 12 + np.where(data.owner == "yes", 2.5, -2.5)
    data["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    data["amount"] = data.income * 3 + np.where(data.owner == "yes", 40.0, 0.0)
    return data


def pandas_frame(data: pd.DataFrame) -> pd.DataFrame:
    """Raw feature columns with the file's categories, as the booster was trained on them."""
    x = data[["income", "owner", "colour"]].copy()
    for name, order in FILE_ORDERS.items():
        x[name] = pd.Categorical(x[name], categories=order)
    return x


def outside_booster(objective: str = "binary", target: str = "y") -> lgb.Booster:
    """A model trained outside rowcast on a pandas frame with categoricals."""
    data = raw_rows(3_000, 0)
    params = {"objective": objective, "verbosity": -1, "num_leaves": 15, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(pandas_frame(data), label=data[target]), 30)


def model_pb(name: str, signature: Signature) -> pb.Model:
    """A probability model of `signature`, as RegisterModel takes it."""
    return pb.Model(
        name=name,
        signature=signature_to_pb(signature),
        output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY, description="test"),
    )


async def test_a_model_with_another_category_order_is_served_as_the_booster_answers(
    suite: Suite,
) -> None:
    """Uploaded with owner as ["no", "yes"] (the signature says ["yes", "no"]): READY, and every
    served answer for raw rows equals the booster's own prediction, through its pandas path,
    for the row's bin (its numeric representative, its category)."""
    booster = outside_booster()
    name = "gate_order"
    async with AsyncRowcastClient(suite.targets, timeout_s=60.0) as client:
        await client.register_model(model_pb(name, SIGNATURE))
        v = await client.create_version(
            name, creator="", lightgbm_model=booster.model_to_string().encode()
        )
        op = await client.materialize_version(name, v.version)
        done = [s async for s in client.watch_operation(op.name, timeout=120)][-1]
        assert done.version.state == pb.VERSION_STATE_READY, done.error.message
        await client.activate_version(name, v.version, actor="")
        rows = raw_rows(200, 5)
        inputs: list[dict[str, float | str]] = [
            {"income": income, "owner": owner, "colour": colour}
            for income, owner, colour in zip(
                rows.income.tolist(), rows.owner.tolist(), rows.colour.tolist(), strict=True
            )
        ]
        answers = await client.predict_batch(name, inputs)
    income = SIGNATURE.features[0]
    assert isinstance(income, NumericFeature)
    binned = rows.assign(income=[income.representatives[SIGNATURE.bin(i).bins[0]] for i in inputs])
    expected = booster.predict(pandas_frame(binned))
    served = np.array([a.output for a in answers])
    assert {a.model_version for a in answers} == {v.version}
    assert np.array_equal(served, expected)
    # What the old reading (vocabulary positions as codes) would have served differs.
    swapped = binned.assign(owner=binned.owner.map({"yes": "no", "no": "yes"}))
    assert not np.array_equal(served, booster.predict(pandas_frame(swapped)))


async def test_a_vocabulary_the_file_does_not_have_is_refused(suite: Suite) -> None:
    """The signature's owner vocabulary has "maybe", the file has no such category:
    INVALID_ARGUMENT naming the feature and both orders; no version number is used."""
    name = "gate_vocab"
    widened = Signature(
        (
            SIGNATURE.features[0],
            CategoricalFeature("owner", ("yes", "no", "maybe")),
            SIGNATURE.features[2],
        )
    )
    content = outside_booster().model_to_string().encode()
    async with AsyncRowcastClient(suite.targets, timeout_s=60.0) as client:
        await client.register_model(model_pb(name, widened))
        with pytest.raises(InvalidArgumentError) as refused:
            await client.create_version(name, creator="", lightgbm_model=content)
        assert await client.list_versions(name) == []
    message = refused.value.message
    assert "'owner'" in message and "['no', 'yes']" in message
    assert "['yes', 'no', 'maybe']" in message and "not in the file: ['maybe']" in message


async def test_a_regression_booster_for_a_probability_model_is_refused(suite: Suite) -> None:
    """A booster trained with objective regression (its outputs are amounts, ~280) uploaded to
    a probability model: INVALID_ARGUMENT naming the objective and the output kind."""
    name = "gate_kind"
    content = outside_booster("regression", "amount").model_to_string().encode()
    async with AsyncRowcastClient(suite.targets, timeout_s=60.0) as client:
        await client.register_model(model_pb(name, SIGNATURE))
        with pytest.raises(InvalidArgumentError) as refused:
            await client.create_version(name, creator="", lightgbm_model=content)
        assert await client.list_versions(name) == []
    message = refused.value.message
    assert "objective 'regression'" in message and "output kind probability" in message


@dataclass
class Gate:
    """Materialisations of one model, run through the jobs layer on real HBase."""

    settings: Settings
    client: HBaseClient
    registry: Registry
    model_file: Path

    def key(self, bins: tuple[int, ...]) -> bytes:
        return prediction_key(bins, self.settings.salt_buckets)

    async def new_version(self, model: str) -> VersionInfo:
        with contextlib.suppress(AlreadyExists):
            await self.registry.models.register_model(
                model,
                SIGNATURE,
                OutputKind.PROBABILITY,
                "p",
                "t",
                self.settings.salt_buckets,
                timeout_s=30.0,
            )
        return await self.registry.versions.new_version(model, "test", timeout_s=30.0)

    async def run(
        self, version: VersionInfo, fault: Callable[[happybase.Table], None] | None = None
    ) -> None:
        """Materialise; `fault` edits the table once every cell is written, before the gate."""
        done = [False]

        def progress(rows: int, total: int) -> None:
            if fault is not None and rows == total and not done[0]:
                done[0] = True
                self.client.call(lambda conn: fault(conn.table(version.table)))

        await materialize(
            registry=self.registry,
            predictions=PredictionStore(self.client),
            admin=TableAdmin(self.settings.hbase),
            version=version,
            signature=SIGNATURE,
            metrics={},
            salt_buckets=self.settings.salt_buckets,
            max_grid_rows=self.settings.max_grid_rows,
            hbase=self.settings.hbase,
            model_file=self.model_file,
            progress=progress,
            options=OPTIONS,
            timeout_s=30.0,
        )
        assert fault is None or done[0], "the fault was never injected"

    async def failed(
        self, model: str, fault: Callable[[happybase.Table], None]
    ) -> tuple[str, VersionInfo]:
        """The gate's refusal and the version it left, for a run with `fault`."""
        version = await self.new_version(model)
        with pytest.raises(VerificationFailed) as refused:
            await self.run(version, fault)
        info = await self.registry.versions.get_version(model, version.version, timeout_s=30.0)
        return refused.value.message, info


@pytest_asyncio.fixture(loop_scope="session")
async def gate(settings: Settings, hbase: StandaloneHBase, tmp_path: Path) -> AsyncIterator[Gate]:
    path = tmp_path / "model.txt"
    outside_booster().save_model(str(path))
    await asyncio.to_thread(ensure_schema, TableAdmin(settings.hbase), timeout_s=DDL_TIMEOUT_S)
    client = HBaseClient(settings.hbase)
    try:
        yield Gate(settings, client, Registry.over(client), path)
    finally:
        client.close()


async def test_a_faithful_table_is_ready(gate: Gate) -> None:
    """Without a fault the same run is READY: the written and scanned digests agree."""
    version = await gate.new_version("gate_clean")
    await gate.run(version)
    info = await gate.registry.versions.get_version("gate_clean", version.version, timeout_s=30)
    assert info.state is VersionState.READY and info.row_count == GRID
    assert info.metrics["verified_sample"] == GRID


async def test_two_swapped_cells_fail_the_gate(gate: Gate) -> None:
    """Two outputs exchanged between keys: the row count holds, the digest and the re-score
    do not; the version is FAILED with both reasons."""
    first, second = gate.key((0, 0, 0)), gate.key((3, 1, 2))

    def swap(table: happybase.Table) -> None:
        a, b = table.row(first, include_timestamp=True), table.row(second, include_timestamp=True)
        (out_a, ts), (out_b, _) = a[b"p:o"], b[b"p:o"]
        assert decode_double(out_a) != decode_double(out_b)
        table.put(first, {b"p:o": out_b}, timestamp=ts)
        table.put(second, {b"p:o": out_a}, timestamp=ts)

    message, info = await gate.failed("gate_swap", swap)
    assert info.state is VersionState.FAILED
    for reason in (message, info.failure_reason):
        assert "table digest" in reason and "moved between keys" in reason
        assert f"2 of {GRID} sampled cells differ from the model" in reason
        assert "holds" not in reason


async def test_a_truncated_table_fails_the_gate(gate: Gate) -> None:
    """A row deleted: the count, the digest and the sample each say so."""
    message, info = await gate.failed(
        "gate_truncated", lambda table: table.delete(gate.key((2, 0, 1)))
    )
    assert info.state is VersionState.FAILED
    assert f"holds {GRID - 1} rows, the grid has {GRID}" in info.failure_reason
    assert "table digest" in info.failure_reason
    assert f"1 of {GRID} sampled cells are missing" in message


async def test_a_corrupted_cell_fails_the_gate(gate: Gate) -> None:
    """One output overwritten with another value (same key, same cell timestamp)."""
    key = gate.key((1, 1, 0))

    def corrupt(table: happybase.Table) -> None:
        (value, ts) = table.row(key, include_timestamp=True)[b"p:o"]
        table.put(key, {b"p:o": encode_double(decode_double(value) + 1e-6)}, timestamp=ts)

    message, info = await gate.failed("gate_corrupt", corrupt)
    assert info.state is VersionState.FAILED
    assert "table digest" in info.failure_reason and "holds" not in info.failure_reason
    assert f"1 of {GRID} sampled cells differ from the model" in message
