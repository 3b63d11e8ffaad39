"""Retrain checks that a model fits its data set before any work: a model whose features are
not columns of the data set (of the same kind and range) is FAILED_PRECONDITION naming them, an
unknown data set is INVALID_ARGUMENT naming `dataset`; never a KeyError from pandas. Stored data
sets are found by name as the shipped ones are."""

from __future__ import annotations

import grpc
import numpy as np
import pandas as pd
import pytest

from rowcast.core.records import (
    Augmentation,
    AugmentationSource,
    AugmentationState,
    Decision,
    ModelInfo,
    OutputKind,
    Source,
)
from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.errors import FailedPrecondition, InvalidArgument
from rowcast.grpc_errors import status_code_for
from rowcast.jobs import dataset as datasets
from rowcast.jobs.augmented import WEIGHT, AugmentedRows
from rowcast.jobs.retrain import dataset_for


def numeric(name: str, lo: float = 0.0, hi: float = 3000.0) -> NumericFeature:
    mid = (lo + hi) / 2
    return NumericFeature(name, (mid,), (lo, hi), lo, hi)


def categorical(name: str) -> CategoricalFeature:
    return CategoricalFeature(name, ("No", "Yes"))


def model(signature: Signature, kind: OutputKind = OutputKind.PROBABILITY) -> ModelInfo:
    return ModelInfo("m", "", signature, kind, "", 1, 0, 0, 4)


def shipped(name: str) -> datasets.Dataset:
    return datasets.load(name)


def stored_loader(ds: datasets.Dataset) -> datasets.Loader:
    """Finds `ds` by its name, as a Catalog over HBase finds a stored one."""

    def load(name: str) -> datasets.Dataset:
        if name == ds.name:
            return ds
        return datasets.load(name)

    return load


def test_the_demo_features_fit_the_default_data_set() -> None:
    """balance, income (numeric, in dollars) and student (categorical) fit `default`."""
    signature = Signature(
        (numeric("balance"), numeric("income", 0, 75_000), categorical("student"))
    )
    ds = dataset_for(model(signature), "default", shipped)
    assert ds.name == "default" and set(signature.names) <= set(ds.features)


def test_features_missing_from_the_data_set_are_failed_precondition_naming_them() -> None:
    """A model registered with other feature names (as for an uploaded model file) cannot be
    retrained: the error names every missing column, the target counting as missing."""
    signature = Signature((numeric("age"), numeric("balance"), numeric("default")))
    with pytest.raises(FailedPrecondition) as err:
        dataset_for(model(signature), "default", shipped)
    assert "columns missing: ['age', 'default']" in err.value.message
    assert "'m'" in err.value.message
    assert status_code_for(err.value) is grpc.StatusCode.FAILED_PRECONDITION


def test_a_feature_of_another_kind_is_failed_precondition_naming_it() -> None:
    """student is categorical in the data set: a model with a numeric student is refused."""
    signature = Signature((numeric("balance"), numeric("student")))
    with pytest.raises(FailedPrecondition) as err:
        dataset_for(model(signature), "default", shipped)
    assert "'student' is numeric in the model, not in the data set" in err.value.message
    assert "columns missing" not in err.value.message


def test_a_column_in_other_units_is_failed_precondition_naming_both_ranges() -> None:
    """income in units of $10,000 in the signature, in dollars in the data set: refused,
    naming the column and both ranges."""
    signature = Signature((numeric("balance"), numeric("income", 0.0, 7.5)))
    with pytest.raises(FailedPrecondition) as err:
        dataset_for(model(signature), "default", shipped)
    assert "'income': the data set's values span [" in err.value.message
    assert "the signature's [0, 7.5]" in err.value.message
    assert "balance" not in err.value.message.split("):", 1)[1]


def test_a_regression_data_set_does_not_fit_a_probability_model() -> None:
    """The output kind is part of the fit: credit_balance's target is a number."""
    signature = Signature((numeric("income", 10, 190), numeric("limit", 800, 14_000)))
    with pytest.raises(FailedPrecondition) as err:
        dataset_for(model(signature), "credit_balance", shipped)
    assert "regression target" in err.value.message


def test_a_stored_data_set_is_found_by_name() -> None:
    """A data set brought by its owner fits by the same rules as a shipped one."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "x": rng.uniform(0, 100, 200),
            "c": rng.choice(["a", "b"], 200),
            "y": rng.integers(0, 2, 200),
        }
    )
    ds, _, _ = datasets.prepare("mine", frame, "y")
    signature = datasets.derive_signature(ds, ["x", "c"], 8)
    assert dataset_for(model(signature), "mine", stored_loader(ds)) is ds


def test_an_unknown_data_set_is_invalid_argument_naming_the_field() -> None:
    """--dataset names a data set that is neither shipped nor stored: INVALID_ARGUMENT on
    `dataset`."""
    signature = Signature((numeric("balance"),))
    with pytest.raises(InvalidArgument) as err:
        dataset_for(model(signature), "iris", shipped)
    assert [v.field for v in err.value.violations] == ["dataset"]
    assert status_code_for(err.value) is grpc.StatusCode.INVALID_ARGUMENT


def test_an_approved_answer_of_a_regression_is_one_training_row_of_its_value() -> None:
    """For a regression the better output is the target itself (any number, not a
    probability): one row (inputs, value) of weight 1."""
    signature = Signature((numeric("income", 0, 200),))
    rows = AugmentedRows(signature, "balance", kind=OutputKind.REGRESSION)
    aug = Augmentation(
        "a", 812.5, AugmentationSource.PERSON, "ana", "r", AugmentationState.APPROVED, 0
    )
    rows.add([Decision("d", "m", 1, "s", {"income": 50.0}, "00", 700.0, Source.HBASE, 0, (aug,))])
    frame = rows.frame()
    assert rows.approved == 1 and rows.skipped == {}
    assert frame.to_dict("records") == [{"income": 50.0, "balance": 812.5, WEIGHT: 1.0}]
