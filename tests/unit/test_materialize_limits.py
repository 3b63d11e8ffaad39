"""A per-run rate limit can only lower the server's cap; the verification sample's seed is
fresh for every run unless given."""

from __future__ import annotations

import math

import pytest

from rowcast.errors import InvalidArgument
from rowcast.jobs.materialize import MaterializeOptions, sample_seed
from rowcast.registry.materializations import run_rate_limit


@pytest.mark.parametrize(
    ("requested", "cap", "limit"),
    [
        (None, 5_000.0, 5_000.0),
        (None, None, None),
        (1_000.0, 5_000.0, 1_000.0),
        (5_000.0, 5_000.0, 5_000.0),
        (1e9, None, 1e9),
    ],
    ids=["server-limit", "unlimited", "lower", "equal", "anything-when-uncapped"],
)
def test_a_run_gets_the_lower_of_its_limit_and_the_cap(
    requested: float | None, cap: float | None, limit: float | None
) -> None:
    """No per-run limit: the server's. A lower one: that. No cap (0 in the settings): any."""
    assert run_rate_limit(requested, cap) == limit


@pytest.mark.parametrize("requested", [5_000.5, 1e9, math.inf, math.nan, -1.0])
def test_a_limit_above_the_cap_or_not_a_rate_is_invalid_argument(requested: float) -> None:
    """Above the cap (or not a positive finite rate): INVALID_ARGUMENT on
    rows_per_second_limit; above the cap, the message states the cap."""
    with pytest.raises(InvalidArgument) as err:
        run_rate_limit(requested, 5_000.0)
    assert [v.field for v in err.value.violations] == ["rows_per_second_limit"]
    if math.isfinite(requested) and requested > 0:
        assert "cap of 5,000 rows/s" in err.value.message


def test_each_run_draws_a_fresh_seed_unless_one_is_given() -> None:
    """By default every run's seed is new (32 bits, exact as a float metric); an explicit one
    is kept (tests, reproducing a failed check)."""
    seeds = {sample_seed(MaterializeOptions()) for _ in range(20)}
    assert len(seeds) > 15
    assert all(0 <= s < 2**32 and float(s) == s for s in seeds)
    assert sample_seed(MaterializeOptions(sample_seed=1234)) == 1234
    assert sample_seed(MaterializeOptions(sample_seed=0)) == 0
