"""Retrain checks that a model fits the shipped data set before any work: a model whose features
are not columns of the data set (of the same kind) is FAILED_PRECONDITION naming them, an
unknown data set is INVALID_ARGUMENT naming `dataset`; never a KeyError from pandas."""

from __future__ import annotations

import grpc
import pytest

from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.errors import FailedPrecondition, InvalidArgument
from rowcast.grpc_errors import status_code_for
from rowcast.jobs.retrain import dataset_for


def numeric(name: str) -> NumericFeature:
    return NumericFeature(name, (10.0,), (5.0, 15.0), 0.0, 20.0)


def categorical(name: str) -> CategoricalFeature:
    return CategoricalFeature(name, ("No", "Yes"))


def test_the_demo_features_fit_the_default_data_set() -> None:
    """balance, income (numeric) and student (categorical) are columns of `default`."""
    signature = Signature((numeric("balance"), numeric("income"), categorical("student")))
    ds = dataset_for("m", signature, "default")
    assert ds.name == "default" and set(signature.names) <= set(ds.features)


def test_features_missing_from_the_data_set_are_failed_precondition_naming_them() -> None:
    """A model registered with other feature names (as for an uploaded model file) cannot be
    retrained: the error names every missing column, the target counting as missing."""
    signature = Signature((numeric("age"), numeric("balance"), numeric("default")))
    with pytest.raises(FailedPrecondition) as err:
        dataset_for("uploaded", signature, "default")
    assert "columns missing: ['age', 'default']" in err.value.message
    assert "'uploaded'" in err.value.message
    assert status_code_for(err.value) is grpc.StatusCode.FAILED_PRECONDITION


def test_a_feature_of_another_kind_is_failed_precondition_naming_it() -> None:
    """student is categorical in the data set: a model with a numeric student is refused."""
    signature = Signature((numeric("balance"), numeric("student")))
    with pytest.raises(FailedPrecondition) as err:
        dataset_for("m", signature, "default")
    assert "'student' is numeric in the model, not in the data set" in err.value.message
    assert "columns missing" not in err.value.message


def test_an_unknown_data_set_is_invalid_argument_naming_the_field() -> None:
    """--dataset names a data set that does not ship: INVALID_ARGUMENT on `dataset`."""
    signature = Signature((numeric("balance"),))
    with pytest.raises(InvalidArgument) as err:
        dataset_for("m", signature, "iris")
    assert [v.field for v in err.value.violations] == ["dataset"]
    assert status_code_for(err.value) is grpc.StatusCode.INVALID_ARGUMENT
