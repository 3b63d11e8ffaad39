"""Bad requests to ModelService through the real client are INVALID_ARGUMENT naming the field,
before anything is written: training parameters out of range, an unknown data set, and a
per-run rate limit above the server's cap."""

from __future__ import annotations

import pytest

from rowcast.v1 import model_service_pb2 as model_pb
from rowcast_client import AsyncRowcastClient, InvalidArgumentError
from tests.integration.conftest import MODEL, Published


@pytest.mark.parametrize(
    ("training", "fields"),
    [
        (model_pb.TrainingSpec(dataset="default", num_leaves=-5), ["training.num_leaves"]),
        (model_pb.TrainingSpec(dataset="default", num_leaves=1), ["training.num_leaves"]),
        (model_pb.TrainingSpec(dataset="default", num_trees=-1), ["training.num_trees"]),
        (model_pb.TrainingSpec(dataset="default", learning_rate=-0.5), ["training.learning_rate"]),
        (model_pb.TrainingSpec(dataset="no_such_data"), ["training.dataset"]),
        (
            model_pb.TrainingSpec(dataset="no_such_data", num_leaves=-5, num_trees=-2),
            ["training.dataset", "training.num_trees", "training.num_leaves"],
        ),
    ],
    ids=[
        "negative-leaves",
        "one-leaf",
        "negative-trees",
        "negative-learning-rate",
        "unknown-dataset",
        "all-at-once",
    ],
)
async def test_bad_training_parameters_are_invalid_argument_and_write_nothing(
    client: AsyncRowcastClient,
    published: Published,
    training: model_pb.TrainingSpec,
    fields: list[str],
) -> None:
    """CreateVersion with bad training parameters: INVALID_ARGUMENT with one violation per bad
    field (never UNKNOWN from inside LightGBM), and no version is created."""
    before = [v.version for v in await client.list_versions(MODEL)]
    with pytest.raises(InvalidArgumentError) as err:
        await client.create_version(MODEL, creator="", training=training, timeout=60)
    assert [v.field for v in err.value.violations] == fields
    assert fields[0] in err.value.message
    assert [v.version for v in await client.list_versions(MODEL)] == before


async def test_a_rate_limit_above_the_servers_cap_is_invalid_argument(
    client: AsyncRowcastClient, published: Published
) -> None:
    """MaterializeVersion asking for more rows/s than ROWCAST_MATERIALIZE_ROWS_PER_SECOND
    (5,000 here): INVALID_ARGUMENT on rows_per_second_limit stating the cap; nothing starts."""
    v2 = published.v2.version.version
    before = await client.get_version(MODEL, v2)
    with pytest.raises(InvalidArgumentError) as err:
        await client.materialize_version(MODEL, v2, rows_per_second_limit=1e9)
    assert [v.field for v in err.value.violations] == ["rows_per_second_limit"]
    assert "cap of 5,000 rows/s" in err.value.message
    assert await client.get_version(MODEL, v2) == before
