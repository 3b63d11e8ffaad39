"""Signatures derived from training values: quantile bins that are never empty and never
repeat an edge, fewer bins for few distinct values, a bin of its own for a value that fills
one (mostly-zero columns), representatives inside their bins (the median of the bin's values),
bounds the values seen, vocabularies sorted; each derived feature passes the same validation
as a hand-written one."""

from __future__ import annotations

import bisect

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rowcast.core.signature import NumericFeature, Signature, derive_categorical, derive_numeric
from rowcast.errors import InvalidArgument
from rowcast.jobs import dataset as datasets


def bins_of(feature: NumericFeature, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(feature.edges), values, side="right")


def test_continuous_values_get_the_bins_asked_for_each_about_equally_full() -> None:
    """10,000 uniform values in 16 bins: 16 bins of about 625 values each."""
    values = np.random.default_rng(3).uniform(0, 1000, 10_000)
    f = derive_numeric("x", values, 16)
    counts = np.bincount(bins_of(f, values))
    assert f.cardinality == 16
    assert counts.min() > 500 and counts.max() < 750


def test_few_distinct_values_get_one_bin_each() -> None:
    """A column of 0, 1, 2 (children, say) gets 3 bins, each value its own representative."""
    values = np.array([0, 1, 2] * 100 + [2] * 50, dtype=float)
    f = derive_numeric("children", values, 16)
    assert f.edges == (1.0, 2.0)
    assert f.representatives == (0.0, 1.0, 2.0)


def test_a_mostly_zero_column_gives_the_zeros_a_bin_of_their_own() -> None:
    """90% zeros: bin 0 holds exactly the zeros; the rest are binned by quantiles, no bin
    empty, no edge twice."""
    rng = np.random.default_rng(5)
    values = np.concatenate([np.zeros(9_000), rng.exponential(500, 1_000)])
    f = derive_numeric("balance", values, 16)
    index = bins_of(f, values)
    assert set(values[index == 0]) == {0.0}
    assert f.representatives[0] == 0.0
    assert len(set(f.edges)) == len(f.edges) and np.all(np.bincount(index) > 0)
    assert f.cardinality <= 16


def test_bounds_are_the_values_seen() -> None:
    """lower and upper are the minimum and maximum, never 0.0 by default."""
    f = derive_numeric("x", [5.0, 6.0, 7.0, 8.0], 2)
    assert (f.lower, f.upper) == (5.0, 8.0)


def test_a_column_with_one_value_is_refused_naming_it() -> None:
    """A constant informs no model: ValueError naming the column."""
    with pytest.raises(ValueError, match="flag: has 1 distinct value"):
        derive_numeric("flag", [1.0] * 50, 8)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-5, 5).map(float)),
        min_size=2,
        max_size=300,
    ).filter(lambda v: len(set(v)) > 1),
    st.integers(2, 64),
)
def test_every_derived_feature_is_valid_and_no_bin_is_empty(values: list[float], bins: int) -> None:
    """Whatever the values: at most `bins` bins, strictly increasing edges, every bin holds
    a training value, every representative is the median of its bin and lies inside it."""
    f = derive_numeric("x", values, bins)
    assert f.violations() == [] and f.cardinality <= bins
    data = np.asarray(values)
    index = bins_of(f, data)
    for b, rep in enumerate(f.representatives):
        in_bin = data[index == b]
        assert len(in_bin) > 0
        assert rep == float(np.median(in_bin))
        assert bisect.bisect_right(f.edges, rep) == b


def test_vocabularies_are_the_values_sorted() -> None:
    """Categories seen, as text, sorted, once each."""
    assert derive_categorical("c", ["b", "a", "b", 3]).vocabulary == ("3", "a", "b")


def test_a_data_set_signature_uses_the_training_split_and_the_order_asked() -> None:
    """Features in the order given; bins from the training rows only (a held-out extreme
    value is not a bound); categories from the column."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "amount": rng.uniform(0, 100, 500),
            "region": rng.choice(["north", "south", "east"], 500),
            "bad": rng.integers(0, 2, 500),
        }
    )
    ds, _, _ = datasets.prepare("loans", frame, "bad")
    train, test = ds.heldout_split()
    sig = datasets.derive_signature(ds, ["region", "amount"], 8)
    assert sig.names == ("region", "amount")
    amount = sig.features[1]
    assert isinstance(amount, NumericFeature)
    assert (amount.lower, amount.upper) == (train["amount"].min(), train["amount"].max())
    assert sig.grid_size == 3 * 8
    assert isinstance(Signature.from_dict(sig.to_dict()), Signature)
    assert len(test) == 100


@pytest.mark.parametrize(
    ("features", "needle"),
    [
        (["bad"], "not feature columns"),
        (["nope"], "not feature columns"),
        ([], "none given"),
        (["amount", "amount"], "twice"),
    ],
)
def test_features_that_are_no_columns_are_invalid_argument(
    features: list[str], needle: str
) -> None:
    """The target, an unknown name or no name at all: INVALID_ARGUMENT on `features`."""
    frame = pd.DataFrame({"amount": np.arange(50.0), "bad": [0, 1] * 25})
    ds, _, _ = datasets.prepare("loans", frame, "bad")
    with pytest.raises(InvalidArgument) as err:
        datasets.derive_signature(ds, features)
    assert needle in err.value.message
    assert [v.field for v in err.value.violations] == ["features"]
