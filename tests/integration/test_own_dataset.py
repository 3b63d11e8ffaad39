"""A data set rowcast does not ship, end to end on real servers and HBase: a CSV generated here
(numeric and categorical features, a binary target) stored with `rowcast datasets add`, a
signature derived from it with `rowcast models register --from-dataset`, a version trained on
it by the ModelService, materialised (held-out AUC through real lookups), activated, served,
and retrained with `rowcast models retrain` on the same data set; a regression data set goes
through the same loop, measured by RMSE. Fit by range and removal rules are checked on the way."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import happybase
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from rowcast.config import Settings
from rowcast.errors import AlreadyExists, NotFound, StoreRejected
from rowcast.store.client import HBaseClient
from rowcast.store.datasets import DatasetStore
from rowcast.store.schema import DATASETS
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.main import cli
from rowcast_client import AsyncRowcastClient, InvalidArgumentError, NotFoundError
from tests.integration.conftest import Suite, service_env


def env(settings: Settings, suite: Suite) -> dict[str, str]:
    """HBase for the commands that talk to it directly, the servers (TLS + the tester's
    token) for those that call the ModelService."""
    return {
        **service_env(settings),
        "ROWCAST_MODEL_PORT": str(suite.model.port),
        "ROWCAST_PREDICTION_PORT": str(suite.prediction.port),
        "ROWCAST_AUDIT_PORT": str(suite.audit.port),
        "ROWCAST_CA_FILE": str(suite.security.ca_file),
        "ROWCAST_TOKEN_FILE": str(suite.security.auth_dir / "admin.token"),
    }


async def rowcast(settings: Settings, suite: Suite, *args: str) -> Result:
    """`rowcast ARGS` in a thread (the servers share this event loop)."""
    return await asyncio.to_thread(
        CliRunner().invoke, cli, list(args), env=env(settings, suite), catch_exceptions=False
    )


def applications(n: int, seed: int) -> pd.DataFrame:
    """Credit applications: income in units of $10,000, a mostly-zero debt, a region, home
    ownership; approved (0/1) drawn from a logistic model of them."""
    rng = np.random.default_rng(seed)
    income = rng.uniform(1.0, 15.0, n).round(3)
    debt = np.where(rng.random(n) < 0.8, 0.0, rng.exponential(3.0, n).round(2))
    region = rng.choice(["north", "south", "east", "west"], n)
    owner = rng.choice(["yes", "no"], n)
    score = 0.4 * income - 0.5 * debt + (owner == "yes") * 1.0 + (region == "east") * 0.8 - 3.0
    approved = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(int)
    return pd.DataFrame(
        {"income": income, "debt": debt, "region": region, "owner": owner, "approved": approved}
    )


async def materialise_and_activate(client: AsyncRowcastClient, name: str, version: int) -> None:
    op = await client.materialize_version(name, version)
    states = [s async for s in client.watch_operation(op.name, timeout=300)]
    assert states[-1].done and not states[-1].HasField("error"), states[-1]
    await client.activate_version(name, version, actor="", reason="first version")


@pytest.mark.timeout(900)
async def test_own_csv_from_add_to_retrain(
    settings: Settings, suite: Suite, client: AsyncRowcastClient, tmp_path: Path
) -> None:
    """datasets add stores the CSV with its profile and split; register --from-dataset prints
    the grid first, refuses it above --max-grid-rows, then registers bins that keep the zeros
    of `debt` in a bin of their own; the ModelService trains on the stored data set (held-out
    AUC raw and table); the version serves; retrain reports both versions on the same 600
    held-out rows."""
    csv = tmp_path / "applications.csv"
    applications(3_000, seed=1).to_csv(csv, index=False)

    added = await rowcast(
        settings,
        suite,
        "datasets",
        "add",
        "apps",
        "--file",
        str(csv),
        "--target",
        "approved",
        "--json",
    )
    assert added.exit_code == 0, added.output
    info = json.loads(added.stdout)
    assert (info["rows"], info["kind"], info["split"]["heldout_rows"]) == (
        3_000,
        "probability",
        600,
    )
    assert {c["name"]: c["type"] for c in info["columns"]} == {
        "income": "numeric",
        "debt": "numeric",
        "region": "categorical",
        "owner": "categorical",
    }
    again = await rowcast(
        settings, suite, "datasets", "add", "apps", "--file", str(csv), "--target", "approved"
    )
    assert again.exit_code == 1 and "already exists" in again.stderr
    listed = await rowcast(settings, suite, "datasets", "list", "--json")
    assert "apps" in [d["name"] for d in json.loads(listed.stdout)["stored"]]
    shown = await rowcast(settings, suite, "datasets", "get", "apps")
    assert "debt: numeric, 0 to" in shown.stdout and "units: not inferred" in shown.stdout

    features = "income,debt,region,owner"
    refused = await rowcast(
        settings,
        suite,
        "models",
        "register",
        "own_apps",
        "--from-dataset",
        "apps",
        "--features",
        features,
        "--bins",
        "12",
        "--max-grid-rows",
        "100",
    )
    assert refused.exit_code == 2, refused.output
    assert "grid: 12 x " in refused.stdout and "more than --max-grid-rows 100" in refused.stderr
    with pytest.raises(NotFoundError):
        await client.get_model("own_apps")
    registered = await rowcast(
        settings,
        suite,
        "models",
        "register",
        "own_apps",
        "--from-dataset",
        "apps",
        "--features",
        features,
        "--bins",
        "12",
    )
    assert registered.exit_code == 0, registered.output
    assert "grid: 12 x " in registered.stdout and "registered own_apps" in registered.stdout
    model = await client.get_model("own_apps")
    debt = model.signature.features[1].numeric
    assert debt.representatives[0] == 0.0 and debt.edges[0] > 0.0
    assert debt.HasField("lower") and debt.lower == 0.0
    assert list(model.signature.features[2].categorical.vocabulary) == [
        "east",
        "north",
        "south",
        "west",
    ]

    v1 = await client.create_version(
        "own_apps",
        creator="",
        training=model_pb.TrainingSpec(dataset="apps", num_trees=60, num_leaves=7),
        timeout=300,
    )
    assert v1.evaluation_dataset == "apps" and v1.metrics["auc_raw"] > 0.7
    await materialise_and_activate(client, "own_apps", v1.version)
    ready = await client.get_version("own_apps", v1.version)
    assert ready.state == pb.VERSION_STATE_READY
    assert ready.metrics["auc_raw"] - ready.metrics["auc_table"] < 0.02

    answer = await client.predict(
        "own_apps", {"income": 12.0, "debt": 0.0, "region": "east", "owner": "yes"}
    )
    low = await client.predict(
        "own_apps", {"income": 1.5, "debt": 8.0, "region": "north", "owner": "no"}
    )
    assert answer.model_version == v1.version and answer.output > low.output

    retrained = await rowcast(
        settings,
        suite,
        "models",
        "retrain",
        "own_apps",
        "--num-trees",
        "80",
        "--num-leaves",
        "7",
        "--json",
    )
    assert retrained.exit_code == 0, retrained.output
    report = json.loads(retrained.stdout)
    assert (report["metric"], report["heldout_rows"], report["state"]) == ("auc", 600, "READY")
    assert report["active"]["version"] == v1.version
    assert report["active"]["raw"] == pytest.approx(ready.metrics["auc_raw"], abs=1e-12)
    assert report["retrained"]["version"] == v1.version + 1
    assert (await client.get_model("own_apps")).current_version == v1.version


async def test_a_data_set_in_other_units_is_refused_naming_the_column(
    settings: Settings, suite: Suite, client: AsyncRowcastClient, tmp_path: Path
) -> None:
    """A model whose income is in dollars cannot train on a data set whose income is in units
    of $10,000: INVALID_ARGUMENT naming `income` and both ranges, no version made."""
    csv = tmp_path / "units.csv"
    applications(500, seed=2).to_csv(csv, index=False)
    added = await rowcast(
        settings, suite, "datasets", "add", "units", "--file", str(csv), "--target", "approved"
    )
    assert added.exit_code == 0, added.output
    numeric = pb.NumericBinning(
        edges=[50_000.0], representatives=[20_000.0, 100_000.0], lower=10_000, upper=150_000
    )
    await client.register_model(
        pb.Model(
            name="dollars",
            signature=pb.Signature(features=[pb.Feature(name="income", numeric=numeric)]),
            output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY),
        )
    )
    with pytest.raises(InvalidArgumentError) as err:
        await client.create_version(
            "dollars", creator="", training=model_pb.TrainingSpec(dataset="units"), timeout=120
        )
    assert "'income': the data set's values span [" in err.value.message
    assert "the signature's [10000, 150000]" in err.value.message
    assert await client.list_versions("dollars") == []


@pytest.mark.timeout(900)
async def test_a_regression_on_its_own_data_set_retrains_and_reports_rmse(
    settings: Settings, suite: Suite, client: AsyncRowcastClient, tmp_path: Path
) -> None:
    """A regression target (a balance in dollars): register --from-dataset makes a value
    model, a trained version goes READY with RMSE raw and table, retrain reports RMSE of both
    versions; the data set cannot be removed while versions name it, unless --force."""
    frame = applications(1_500, seed=3)
    rng = np.random.default_rng(4)
    frame["balance"] = 200.0 * (frame["owner"] == "yes") + 20.0 * frame["income"]
    frame["balance"] += rng.normal(0, 40, len(frame))
    frame = frame.drop(columns=["approved"])
    parquet = tmp_path / "balances.parquet"
    frame.to_parquet(parquet, index=False)

    added = await rowcast(
        settings,
        suite,
        "datasets",
        "add",
        "balances",
        "--file",
        str(parquet),
        "--target",
        "balance",
        "--kind",
        "regression",
    )
    assert added.exit_code == 0, added.output
    registered = await rowcast(
        settings,
        suite,
        "models",
        "register",
        "own_balance",
        "--from-dataset",
        "balances",
        "--features",
        "income,owner",
        "--bins",
        "12",
    )
    assert registered.exit_code == 0, registered.output
    assert (await client.get_model("own_balance")).output.kind == pb.OUTPUT_KIND_REGRESSION
    v1 = await client.create_version(
        "own_balance",
        creator="",
        training=model_pb.TrainingSpec(dataset="balances", num_trees=60, num_leaves=7),
        timeout=300,
    )
    await materialise_and_activate(client, "own_balance", v1.version)
    ready = await client.get_version("own_balance", v1.version)
    assert ready.state == pb.VERSION_STATE_READY, ready.failure_reason
    assert 30 < ready.metrics["rmse_raw"] < 60 and "rmse_table" in ready.metrics

    retrained = await rowcast(
        settings, suite, "models", "retrain", "own_balance", "--num-trees", "80", "--json"
    )
    assert retrained.exit_code == 0, retrained.output
    report = json.loads(retrained.stdout)
    assert (report["metric"], report["heldout_rows"]) == ("rmse", 300)
    assert report["active"]["raw"] == pytest.approx(ready.metrics["rmse_raw"], abs=1e-9)

    kept = await rowcast(settings, suite, "datasets", "remove", "balances")
    assert kept.exit_code == 4 and "own_balance v1" in kept.stderr
    removed = await rowcast(settings, suite, "datasets", "remove", "balances", "--force")
    assert removed.exit_code == 0, removed.output
    gone = await rowcast(settings, suite, "datasets", "get", "balances")
    assert gone.exit_code == 3


async def test_content_over_several_chunks_reads_back_whole_and_is_removed_whole(
    settings: Settings, suite: Suite
) -> None:
    """9 MiB of content is stored as three chunk rows, read back byte for byte with its hash
    checked; a second add of the name is ALREADY_EXISTS; remove deletes the info row and every
    chunk row; a damaged chunk is refused on read, never returned."""
    content = np.random.default_rng(9).bytes(9 * 1024 * 1024)
    client = HBaseClient(settings.hbase)
    store = DatasetStore(client)
    try:
        record = await store.add("chunked", content, {"rows": 0}, timeout_s=60)
        assert record.info["chunks"] == 3
        back, data = await asyncio.to_thread(store.read, "chunked")
        assert data == content and back.sha256 == hashlib.sha256(content).hexdigest()
        with pytest.raises(AlreadyExists):
            await store.add("chunked", b"other", {}, timeout_s=60)

        def chunk_rows(conn: happybase.Connection) -> list[bytes]:
            return [k for k, _ in conn.table(DATASETS).scan(row_prefix=b"chunked/")]

        rows = await client.run(chunk_rows, timeout_s=30)
        assert len(rows) == 3
        await client.run(
            lambda c: c.table(DATASETS).put(rows[1], {b"f:c": b"damaged"}), timeout_s=30
        )
        with pytest.raises(StoreRejected, match="damaged"):
            await asyncio.to_thread(store.read, "chunked")
        await store.remove("chunked", timeout_s=60)
        assert await client.run(chunk_rows, timeout_s=30) == []
        with pytest.raises(NotFound):
            await store.get("chunked", timeout_s=30)
    finally:
        client.close()
