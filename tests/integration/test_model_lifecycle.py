"""The model-version lifecycle through ModelService and the real client: register, create
(train or upload), materialise as an operation, activate, alias, roll back, retire, diff."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from rowcast.config import Settings
from rowcast.convert import signature_to_pb
from rowcast.jobs import dataset as datasets
from rowcast.jobs.train import TrainParams, derive_signature, train
from rowcast.store.admin import TableAdmin
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import (
    AsyncRowcastClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from rowcast_client.errors import AlreadyExistsError
from tests.integration.conftest import MODEL, Published, Suite

LIFE = "lifecycle"
CUSTOMER: dict[str, float | str] = {"balance": 1_600.0, "income": 20_000.0, "student": "Yes"}


def small_signature() -> pb.Signature:
    ds = datasets.load("default")
    train, _ = ds.split(0.2, 42)
    return signature_to_pb(derive_signature(train, ds, {"balance": 20, "income": 10}))


async def materialized(client: AsyncRowcastClient, version: int) -> model_pb.Operation:
    """Start MaterializeVersion and watch it to the end; return the last state."""
    op = await client.materialize_version(LIFE, version)
    assert op.name.startswith("operations/") and not op.done
    states = [s async for s in client.watch_operation(op.name, timeout=120)]
    assert states[-1].done
    assert [s.progress.rows_written for s in states] == sorted(
        s.progress.rows_written for s in states
    )
    return states[-1]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def life(suite: Suite) -> AsyncIterator[list[int]]:
    """A registered model with two READY versions (trained with different parameters)."""
    async with AsyncRowcastClient(suite.targets, timeout_s=30.0) as client:
        yield await _two_versions(client)


async def _two_versions(client: AsyncRowcastClient) -> list[int]:
    model = pb.Model(
        name=LIFE,
        description="lifecycle test model",
        signature=small_signature(),
        output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY, description="P(default)"),
    )
    registered = await client.register_model(model)
    cells = [
        len(f.numeric.edges) + 1 if f.HasField("numeric") else len(f.categorical.vocabulary)
        for f in model.signature.features
    ]
    assert registered.grid_size == math.prod(cells)
    versions = []
    for leaves in (7, 31):
        v = await client.create_version(
            LIFE,
            creator="",
            training=model_pb.TrainingSpec(dataset="default", num_leaves=leaves, num_trees=50),
        )
        assert v.state == pb.VERSION_STATE_REGISTERED and v.metrics["auc_raw"] > 0.9
        done = await materialized(client, v.version)
        assert done.version.state == pb.VERSION_STATE_READY, done.error.message
        assert done.version.row_count == registered.grid_size
        check_fidelity(done.version)
        versions.append(v.version)
    return versions


def check_fidelity(version: pb.ModelVersion) -> None:
    """MaterializeVersion measured the fidelity on the evaluation data set's held-out rows
    through real lookups of the version's table, beside the raw model's."""
    assert version.evaluation_dataset == "default"
    m = version.metrics
    assert m["heldout_rows"] == 2_000
    assert m["auc_table"] == m["auc_flattened"]  # lookups return exactly the flattened scores
    assert 0.85 < m["auc_table"] <= 1.0 and 0.85 < m["auc_raw"] <= 1.0
    assert abs(m["auc_raw"] - m["auc_table"]) < 0.05, m


@pytest.mark.parametrize(
    ("signature", "field"),
    [
        (pb.Signature(), "model.signature.features"),
        (
            pb.Signature(
                features=[
                    pb.Feature(name="a", categorical=pb.CategoricalBinning(vocabulary=["x"])),
                    pb.Feature(name="a", categorical=pb.CategoricalBinning(vocabulary=["y"])),
                ]
            ),
            "model.signature.features",
        ),
        (
            pb.Signature(
                features=[
                    pb.Feature(
                        name="b",
                        numeric=pb.NumericBinning(edges=[2.0, 1.0], representatives=[0, 0, 0]),
                    )
                ]
            ),
            "model.signature.features.b.edges",
        ),
        (
            pb.Signature(features=[pb.Feature(name="c", categorical=pb.CategoricalBinning())]),
            "model.signature.features.c.vocabulary",
        ),
    ],
    ids=["no-features", "duplicate-names", "unsorted-edges", "empty-vocabulary"],
)
async def test_invalid_signatures_are_rejected_before_anything_is_written(
    client: AsyncRowcastClient, signature: pb.Signature, field: str
) -> None:
    """RegisterModel with a bad signature: INVALID_ARGUMENT naming the field; no model row."""
    model = pb.Model(
        name="bad_sig", signature=signature, output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY)
    )
    with pytest.raises(InvalidArgumentError) as err:
        await client.register_model(model)
    assert field in [v.field for v in err.value.violations]
    with pytest.raises(NotFoundError):
        await client.get_model("bad_sig")


async def test_a_grid_over_the_limit_is_refused_with_its_size(
    client: AsyncRowcastClient, settings: Settings
) -> None:
    """A signature whose grid exceeds the server's limit: INVALID_ARGUMENT giving the size."""
    edges = [float(i) for i in range(1, 2_000)]
    reps = [i + 0.5 for i in range(2_000)]  # each inside its bin [i, i + 1)
    numeric = pb.NumericBinning(edges=edges, representatives=reps, lower=0, upper=2_000)
    model = pb.Model(
        name="too_big",
        signature=pb.Signature(
            features=[pb.Feature(name=n, numeric=numeric) for n in ("x", "y", "z")]
        ),
        output=pb.OutputSpec(kind=pb.OUTPUT_KIND_REGRESSION),
    )
    with pytest.raises(InvalidArgumentError) as err:
        await client.register_model(model)
    assert "8,000,000,000" in err.value.message
    with pytest.raises(NotFoundError):
        await client.get_model("too_big")


async def test_registering_twice_is_already_exists(
    client: AsyncRowcastClient, life: list[int]
) -> None:
    """Model names are unique."""
    existing = await client.get_model(LIFE)
    with pytest.raises(AlreadyExistsError):
        await client.register_model(
            pb.Model(name=LIFE, signature=existing.signature, output=existing.output)
        )


async def test_version_numbers_are_never_reused(
    client: AsyncRowcastClient, life: list[int]
) -> None:
    """A new version gets a number above every earlier one, even after a retirement."""
    v = await client.create_version(
        LIFE,
        creator="",
        training=model_pb.TrainingSpec(dataset="default", num_trees=20),
        timeout=120,
    )
    assert v.version > max(life)
    await client.retire_version(LIFE, v.version, actor="", timeout=120)
    again = await client.create_version(
        LIFE,
        creator="",
        training=model_pb.TrainingSpec(dataset="default", num_trees=20),
        timeout=120,
    )
    assert again.version > v.version


async def test_uploaded_model_must_match_the_signature(
    client: AsyncRowcastClient, published: Published
) -> None:
    """A LightGBM file becomes a version when its features are the signature's, else it is
    INVALID_ARGUMENT; garbage is INVALID_ARGUMENT too."""
    content = published.v1.model_file.read_bytes()
    v = await client.create_version(MODEL, creator="", lightgbm_model=content)
    assert v.state == pb.VERSION_STATE_REGISTERED
    with pytest.raises(InvalidArgumentError) as err:
        await client.create_version(MODEL, creator="", lightgbm_model=b"not a model")
    assert err.value.violations[0].field == "lightgbm_model"


async def test_an_uploaded_model_is_evaluated_on_the_data_set_it_names(
    client: AsyncRowcastClient, life: list[int]
) -> None:
    """An uploaded model with `evaluation_dataset` gets its fidelity measured through lookups
    when materialised; without one it has no fidelity figures; an unknown data set is
    INVALID_ARGUMENT naming `evaluation_dataset`, and consumes no version number."""
    ds = datasets.load("default")
    train_frame, _ = ds.split(0.2, 42)
    signature = derive_signature(train_frame, ds, {"balance": 20, "income": 10})
    booster = train(ds, signature, train_frame, TrainParams(num_trees=30, num_leaves=7))
    content = booster.model_to_string().encode()
    with pytest.raises(InvalidArgumentError) as err:
        await client.create_version(
            LIFE, creator="", lightgbm_model=content, evaluation_dataset="nope"
        )
    assert err.value.violations[0].field == "evaluation_dataset"
    evaluated = await client.create_version(
        LIFE, creator="", lightgbm_model=content, evaluation_dataset="default"
    )
    plain = await client.create_version(LIFE, creator="", lightgbm_model=content)
    assert plain.version == evaluated.version + 1
    done = await materialized(client, evaluated.version)
    assert done.version.state == pb.VERSION_STATE_READY, done.error.message
    check_fidelity(done.version)
    done = await materialized(client, plain.version)
    assert done.version.state == pb.VERSION_STATE_READY, done.error.message
    assert done.version.evaluation_dataset == ""
    assert not any(k.startswith("auc") for k in done.version.metrics)
    for v in (evaluated.version, plain.version):
        await client.retire_version(LIFE, v, actor="")


async def test_only_ready_versions_can_be_activated_or_aliased(
    client: AsyncRowcastClient, life: list[int]
) -> None:
    """REGISTERED versions: FAILED_PRECONDITION for Activate and SetAlias; reserved aliases are
    INVALID_ARGUMENT."""
    v = await client.create_version(
        LIFE,
        creator="",
        training=model_pb.TrainingSpec(dataset="default", num_trees=20),
        timeout=120,
    )
    with pytest.raises(FailedPreconditionError):
        await client.activate_version(LIFE, v.version, actor="")
    with pytest.raises(FailedPreconditionError):
        await client.set_alias(LIFE, "canary", v.version)
    with pytest.raises(InvalidArgumentError):
        await client.set_alias(LIFE, "current", life[0])


async def test_activate_alias_rollback_and_history(
    client: AsyncRowcastClient, life: list[int]
) -> None:
    """Activate a, then b; a canary alias routes Predict; rollback returns to a; the history
    records every switch with the caller's identity as actor and its reason, newest first."""
    a, b = life
    with pytest.raises(FailedPreconditionError):
        await client.rollback_model(LIFE, actor="")  # nothing to roll back to yet
    await client.activate_version(LIFE, a, actor="", reason="first")
    model = (await client.activate_version(LIFE, b, actor="", reason="better")).model
    assert (model.current_version, model.previous_version) == (b, a)
    await client.set_alias(LIFE, "canary", a)
    # Prediction servers learn of alias changes within their refresh interval (0.1 s here).
    await asyncio.sleep(0.5)
    r = await client.predict(LIFE, CUSTOMER, alias="canary")
    assert r.model_version == a
    rolled = (await client.rollback_model(LIFE, actor="", reason="b misbehaves")).model
    assert (rolled.current_version, rolled.previous_version) == (a, b)
    history = await client.list_activations(LIFE)
    assert [(h.kind, h.from_version, h.to_version, h.actor, h.reason) for h in history[:3]] == [
        (model_pb.HISTORY_KIND_ROLLBACK, b, a, "tester", "b misbehaves"),
        (model_pb.HISTORY_KIND_ACTIVATION, a, b, "tester", "better"),
        (model_pb.HISTORY_KIND_ACTIVATION, 0, a, "tester", "first"),
    ]
    await client.delete_alias(LIFE, "canary")
    await asyncio.sleep(0.5)
    with pytest.raises(NotFoundError):
        await client.predict(LIFE, CUSTOMER, alias="canary")


async def test_retire_refuses_the_active_version_and_drops_others(
    client: AsyncRowcastClient, life: list[int], settings: Settings
) -> None:
    """Retiring the active version is FAILED_PRECONDITION; retiring another drops its table."""
    model = (await client.activate_version(LIFE, life[0], actor="")).model
    with pytest.raises(FailedPreconditionError) as err:
        await client.retire_version(LIFE, model.current_version, actor="")
    assert "active" in err.value.message
    extra = await client.create_version(
        LIFE,
        creator="",
        training=model_pb.TrainingSpec(dataset="default", num_trees=20),
        timeout=120,
    )
    done = await materialized(client, extra.version)
    assert done.version.state == pb.VERSION_STATE_READY
    retired = await client.retire_version(LIFE, extra.version, actor="", timeout=120)
    assert retired.state == pb.VERSION_STATE_RETIRED
    assert not TableAdmin(settings.hbase).exists(retired.table, timeout_s=30.0)
    with pytest.raises(FailedPreconditionError):
        await client.activate_version(LIFE, extra.version, actor="")


async def test_diff_versions_reports_changes_over_the_whole_grid(
    client: AsyncRowcastClient, life: list[int]
) -> None:
    """Two differently trained versions differ; a version does not differ from itself."""
    a, b = life
    grid = (await client.get_model(LIFE)).grid_size
    d = await client.diff_versions(LIFE, a, b, timeout=60)
    assert d.cells == grid
    assert 0 < d.changed_cells <= grid
    assert sum(h.count for h in d.histogram) == d.changed_cells
    assert {f.feature for f in d.features} == {"balance", "income", "student"}
    assert all(sum(f.changed_cells_per_bin) == d.changed_cells for f in d.features)
    same = await client.diff_versions(LIFE, a, a, timeout=60)
    assert (same.changed_cells, same.max_abs_delta) == (0, 0.0)


async def test_a_cancelled_materialisation_resumes_where_it_stopped(suite: Suite) -> None:
    """CancelOperation stops the writers at a checkpoint: the operation ends CANCELLED, the
    version stays MATERIALIZING (never READY) with its watermark; MaterializeVersion again
    continues from there and ends READY with exactly the grid's rows."""
    ds = datasets.load("default")
    train, _ = ds.split(0.2, 42)
    signature = signature_to_pb(derive_signature(train, ds, {"balance": 100, "income": 50}))
    model = pb.Model(
        name="cancel_resume",
        signature=signature,
        output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY, description="P(default)"),
    )
    async with AsyncRowcastClient(suite.targets, timeout_s=30.0) as client:
        grid = (await client.register_model(model)).grid_size
        v = await client.create_version(
            "cancel_resume",
            creator="",
            training=model_pb.TrainingSpec(dataset="default", num_leaves=7, num_trees=30),
        )
        op = await client.materialize_version(
            "cancel_resume", v.version, rows_per_second_limit=1_000
        )
        async for state in client.watch_operation(op.name, timeout=120):
            if state.progress.rows_written > 0:
                break
        await client.cancel_operation(op.name)
        states = [s async for s in client.watch_operation(op.name, timeout=120)]
        stopped = states[-1]
        assert stopped.done and stopped.error.code == 1, stopped  # google.rpc CANCELLED
        paused = await client.get_version("cancel_resume", v.version)
        assert paused.state == pb.VERSION_STATE_MATERIALIZING
        assert 0 < paused.rows_written < grid
        assert stopped.progress.rows_written == paused.rows_written

        resumed = await client.materialize_version("cancel_resume", v.version)
        states = [s async for s in client.watch_operation(resumed.name, timeout=120)]
        assert states[0].progress.rows_written >= paused.rows_written
        done = states[-1]
        assert done.version.state == pb.VERSION_STATE_READY, done.error.message
        assert done.version.row_count == grid


async def test_concurrent_materialize_calls_start_one_operation(
    client: AsyncRowcastClient, life: list[int]
) -> None:
    """Two MaterializeVersion calls for one version at the same moment: one operation starts,
    the other call is FAILED_PRECONDITION, and the version ends READY once."""
    v = await client.create_version(
        LIFE,
        creator="",
        training=model_pb.TrainingSpec(dataset="default", num_leaves=7, num_trees=20),
    )
    results = await asyncio.gather(
        client.materialize_version(LIFE, v.version),
        client.materialize_version(LIFE, v.version),
        return_exceptions=True,
    )
    started = [r for r in results if isinstance(r, model_pb.Operation)]
    refused = [r for r in results if isinstance(r, FailedPreconditionError)]
    assert len(started) == 1 and len(refused) == 1, results
    states = [s async for s in client.watch_operation(started[0].name, timeout=120)]
    assert states[-1].version.state == pb.VERSION_STATE_READY, states[-1].error.message
    await client.retire_version(LIFE, v.version, actor="")
