"""A regression model end to end through ModelService and the real client: trained on ISLR
Credit (average card balance in dollars), materialised with its fidelity measured as RMSE
through real table lookups, served by Predict, and refused for a probability model."""

from __future__ import annotations

import numpy as np
import pytest

from rowcast.convert import signature_to_pb
from rowcast.jobs import dataset as datasets
from rowcast.jobs.train import derive_signature
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient, InvalidArgumentError
from tests.integration.conftest import Suite

BALANCE = "card_balance"
HOLDER: dict[str, float | str] = {
    "income": 60.0,
    "limit": 6_000.0,
    "rating": 450.0,
    "age": 45.0,
    "student": "No",
}


async def test_a_regression_version_is_verified_with_rmse_and_served(suite: Suite) -> None:
    """CreateVersion trains a LightGBM regression; MaterializeVersion makes it READY with
    rmse_raw / rmse_table / rmse_flattened on the held-out split (lookups equal the flattened
    scores, and both beat predicting the mean); Predict answers in dollars."""
    ds = datasets.load("credit_balance")
    train_frame, test_frame = ds.split(0.2, 42)
    bins = {"income": 8, "limit": 8, "rating": 8, "age": 4}
    signature = signature_to_pb(derive_signature(train_frame, ds, bins))
    async with AsyncRowcastClient(suite.targets, timeout_s=60.0) as client:
        await client.register_model(
            pb.Model(
                name=BALANCE,
                description="average credit-card balance",
                signature=signature,
                output=pb.OutputSpec(kind=pb.OUTPUT_KIND_REGRESSION, description="dollars"),
            )
        )
        v = await client.create_version(
            BALANCE,
            creator="",
            training=model_pb.TrainingSpec(dataset="credit_balance", num_trees=100),
        )
        assert set(v.metrics) >= {"rmse_raw", "rmse_flattened"}
        op = await client.materialize_version(BALANCE, v.version)
        done = [s async for s in client.watch_operation(op.name, timeout=120)][-1]
        assert done.version.state == pb.VERSION_STATE_READY, done.error.message
        m = done.version.metrics
        assert done.version.evaluation_dataset == "credit_balance"
        assert m["heldout_rows"] == len(test_frame) == 80
        assert m["rmse_table"] == m["rmse_flattened"]
        spread = float(np.std(test_frame["balance"]))
        assert m["rmse_raw"] < 0.5 * spread and m["rmse_table"] < 0.5 * spread, (m, spread)
        await client.activate_version(BALANCE, v.version, actor="")
        answer = await client.predict(BALANCE, HOLDER)
        assert answer.model_version == v.version
        assert 0.0 < answer.output < 2_500.0  # dollars, not a probability


async def test_a_data_set_of_the_wrong_kind_is_invalid_argument(suite: Suite) -> None:
    """A probability model with the regression data set's features cannot be trained on it:
    INVALID_ARGUMENT on training.dataset naming both kinds, and no version number is used."""
    ds = datasets.load("credit_balance")
    train_frame, _ = ds.split(0.2, 42)
    async with AsyncRowcastClient(suite.targets, timeout_s=60.0) as client:
        await client.register_model(
            pb.Model(
                name="card_balance_prob",
                signature=signature_to_pb(derive_signature(train_frame, ds, {})),
                output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY),
            )
        )
        with pytest.raises(InvalidArgumentError) as err:
            await client.create_version(
                "card_balance_prob",
                creator="",
                training=model_pb.TrainingSpec(dataset="credit_balance"),
            )
        assert await client.list_versions("card_balance_prob") == []
    violation = err.value.violations[0]
    assert violation.field == "training.dataset"
    assert "regression" in violation.description and "probability" in violation.description
