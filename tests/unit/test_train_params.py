"""Training parameters are checked before LightGBM sees them: each one out of range is an
InvalidArgument naming its field."""

from __future__ import annotations

import math

import pytest

from rowcast.errors import InvalidArgument
from rowcast.jobs.train import MAX_LEAVES, MAX_TREES, TrainParams


def test_the_defaults_and_the_bounds_are_accepted() -> None:
    """Default parameters, and each parameter at its bounds, pass unchanged."""
    for params in (
        TrainParams(),
        TrainParams(num_trees=1, num_leaves=2, learning_rate=1.0, seed=-(2**31)),
        TrainParams(num_trees=MAX_TREES, num_leaves=MAX_LEAVES, learning_rate=1e-9, seed=2**31 - 1),
    ):
        assert params.check("training.") is params
        assert params.violations() == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (TrainParams(num_leaves=-5), "training.num_leaves"),
        (TrainParams(num_leaves=1), "training.num_leaves"),
        (TrainParams(num_leaves=MAX_LEAVES + 1), "training.num_leaves"),
        (TrainParams(num_trees=0), "training.num_trees"),
        (TrainParams(num_trees=-3), "training.num_trees"),
        (TrainParams(num_trees=MAX_TREES + 1), "training.num_trees"),
        (TrainParams(learning_rate=0.0), "training.learning_rate"),
        (TrainParams(learning_rate=-0.1), "training.learning_rate"),
        (TrainParams(learning_rate=math.nan), "training.learning_rate"),
        (TrainParams(learning_rate=math.inf), "training.learning_rate"),
        (TrainParams(learning_rate=2.0), "training.learning_rate"),
        (TrainParams(seed=2**31), "training.seed"),
    ],
)
def test_a_parameter_out_of_range_is_invalid_argument_naming_it(
    params: TrainParams, field: str
) -> None:
    """One bad parameter: InvalidArgument with exactly that field, named in the message."""
    with pytest.raises(InvalidArgument) as err:
        params.check("training.")
    assert [v.field for v in err.value.violations] == [field]
    assert err.value.message.startswith(f"{field}: ")


def test_every_bad_parameter_is_reported_at_once() -> None:
    """Several bad parameters: one violation each, in one error."""
    with pytest.raises(InvalidArgument) as err:
        TrainParams(num_trees=0, num_leaves=-1, learning_rate=0.0).check()
    assert [v.field for v in err.value.violations] == ["num_trees", "num_leaves", "learning_rate"]
