"""Uploads are correct by construction: CreateVersion's model file is checked against the model
it is for (features and their order, numeric or categorical, category lists, objective), and
the file's own category order is what the grid is scored with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from rowcast.core.records import ModelInfo, OutputKind
from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.errors import InvalidArgument
from rowcast.jobs.create import load_booster
from rowcast.jobs.modelfile import Encoding
from rowcast.jobs.train import TrainParams, encode_matrix, train
from rowcast.jobs.verify import model_frame, representative_columns, rescore
from rowcast.jobs.workers import grid_bins, score

OWNER = ("yes", "no")
COLOUR = ("red", "green", "blue")


def signature(owner: Sequence[str] = OWNER, colour: Sequence[str] = COLOUR) -> Signature:
    return Signature(
        (
            NumericFeature("income", (20.0, 40.0, 60.0), (10.0, 30.0, 50.0, 70.0), 0.0, 100.0),
            CategoricalFeature("owner", tuple(owner)),
            CategoricalFeature("colour", tuple(colour), oov_bucket=True),
        )
    )


def model_info(sig: Signature, kind: OutputKind = OutputKind.PROBABILITY) -> ModelInfo:
    return ModelInfo("m", "", sig, kind, "", 0, 0, 0, 4)


def frame(rows: int = 3_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "income": rng.uniform(0, 100, rows),
            "owner": rng.choice(list(OWNER), rows),
            "colour": rng.choice(list(COLOUR), rows),
        }
    )
    # The owner effect is strong, so that a category fed with the other one's code shows.
    logit = (data.income - 50) / 15 + np.where(data.owner == "yes", 2.5, -2.5)
    logit += np.where(data.colour == "blue", 1.0, 0.0)
    data["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    data["amount"] = data.income * 3 + np.where(data.owner == "yes", 40.0, 0.0)
    return data


def outside_model(
    data: pd.DataFrame,
    orders: Mapping[str, Sequence[str]],
    objective: str = "binary",
    target: str = "y",
    columns: Sequence[str] = ("income", "owner", "colour"),
) -> bytes:
    """A model trained outside rowcast, from a pandas frame whose categories are in `orders`."""
    x = pd.DataFrame(
        {
            c: pd.Categorical(data[c], categories=list(orders[c])) if c in orders else data[c]
            for c in columns
        }
    )
    params: dict[str, Any] = {"objective": objective, "verbosity": -1, "num_leaves": 7}
    if objective == "multiclass":
        params["num_class"] = 2
    booster = lgb.train(params, lgb.Dataset(x, label=data[target]), num_boost_round=15)
    return booster.model_to_string().encode()


def pandas_predictions(booster: lgb.Booster, data: pd.DataFrame, orders: dict[str, Any]) -> Any:
    """What the booster answers for raw rows through its own pandas path."""
    x = data[["income", "owner", "colour"]].copy()
    for c, order in orders.items():
        x[c] = pd.Categorical(x[c], categories=list(order))
    return booster.predict(x)


def test_a_model_whose_categories_are_in_another_order_is_scored_by_the_files_order() -> None:
    """The file learned owner as ["no", "yes"] and colours in reverse; the signature lists
    them otherwise. Accepted, and every grid cell is scored as the booster scores the cell's
    raw values (not with the signature's positions as codes)."""
    data = frame()
    orders = {"owner": ("no", "yes"), "colour": ("blue", "green", "red")}
    sig = signature()
    booster = load_booster(outside_model(data, orders), model_info(sig))
    encoding = Encoding.of(booster, sig)
    assert encoding.codes == {"owner": (1, 0), "colour": (2, 1, 0)}
    bins = grid_bins(sig.cardinalities, 0, sig.grid_size)
    written = score(booster, sig, bins, encoding)
    raw = representative_columns(sig, bins)
    cells = pd.DataFrame(raw)
    in_vocab = cells["colour"].notna().to_numpy()
    expected = pandas_predictions(booster, cells[in_vocab], orders)
    assert np.array_equal(written[in_vocab], expected)
    # The out-of-vocabulary colour bin is a missing value, in both paths.
    assert np.array_equal(written, rescore(booster, sig, bins))
    # The old reading (positions as codes) answers owner=yes with owner=no's output.
    positions = score(booster, sig, bins, Encoding({}))
    assert not np.array_equal(positions[in_vocab], expected)


def test_raw_rows_are_encoded_by_the_files_order() -> None:
    """encode_matrix with the file's encoding gives the booster's own pandas answers."""
    data = frame(500, seed=3)
    orders = {"owner": ("no", "yes"), "colour": ("green", "blue", "red")}
    sig = signature()
    booster = load_booster(outside_model(data, orders), model_info(sig))
    got = booster.predict(encode_matrix(sig, data, Encoding.of(booster, sig)))
    assert np.array_equal(got, pandas_predictions(booster, data, orders))
    columns = {c: data[c].tolist() for c in ("income", "owner", "colour")}
    assert np.array_equal(got, booster.predict(model_frame(booster, sig, columns)))


@pytest.mark.parametrize(
    ("vocabulary", "absent"),
    [(("yes", "no", "maybe"), "not in the file: ['maybe']"), (("yes",), "not in the signature")],
)
def test_a_vocabulary_the_file_does_not_have_is_refused_naming_the_feature_and_both_orders(
    vocabulary: tuple[str, ...], absent: str
) -> None:
    """INVALID_ARGUMENT on lightgbm_model naming the feature, the file's order and the
    signature's, and what is missing on which side."""
    content = outside_model(frame(), {"owner": ("no", "yes"), "colour": COLOUR})
    with pytest.raises(InvalidArgument) as refused:
        load_booster(content, model_info(signature(owner=vocabulary)))
    message = refused.value.message
    assert "lightgbm_model" in message and "'owner'" in message
    assert "['no', 'yes']" in message and str(list(vocabulary)) in message
    assert absent in message


def test_categories_for_another_number_of_features_are_refused() -> None:
    """A file with a category list for owner only (colour given to LightGBM as integer codes
    in categorical_feature): which list is colour's is unknown, so it is refused."""
    data = frame()
    x = pd.DataFrame(
        {
            "income": data.income,
            "owner": pd.Categorical(data.owner, categories=list(OWNER)),
            "colour": data.colour.map({"red": 0, "green": 1, "blue": 2}),
        }
    )
    params = {"objective": "binary", "verbosity": -1, "num_leaves": 7}
    dataset = lgb.Dataset(x, label=data.y, categorical_feature=["owner", "colour"])
    content = lgb.train(params, dataset, num_boost_round=10).model_to_string().encode()
    with pytest.raises(InvalidArgument, match=r"for 1 feature\(s\), the signature has 2"):
        load_booster(content, model_info(signature()))


def test_features_in_another_order_say_order_and_show_both() -> None:
    content = outside_model(
        frame(), {"owner": OWNER, "colour": COLOUR}, columns=("owner", "income", "colour")
    )
    with pytest.raises(InvalidArgument) as refused:
        load_booster(content, model_info(signature()))
    message = refused.value.message
    assert "order" in message
    assert "['owner', 'income', 'colour']" in message and "['income', 'owner', 'colour']" in message


def test_a_categorical_feature_the_model_treats_as_numeric_is_refused() -> None:
    """Codes as plain numbers in the file (no categorical split) for a categorical feature."""
    data = frame()
    codes = data.assign(colour=data.colour.map({"red": 0.0, "green": 1.0, "blue": 2.0}))
    content = outside_model(codes, {"owner": OWNER})
    with pytest.raises(InvalidArgument, match="'colour' is categorical in the signature, numeric"):
        load_booster(content, model_info(signature(), OutputKind.PROBABILITY))


@pytest.mark.parametrize(
    ("objective", "target", "kind"),
    [
        ("regression", "amount", OutputKind.PROBABILITY),
        ("huber", "amount", OutputKind.PROBABILITY),
        ("binary", "y", OutputKind.REGRESSION),
        ("multiclass", "y", OutputKind.PROBABILITY),
        ("multiclass", "y", OutputKind.REGRESSION),
    ],
)
def test_an_objective_of_another_output_kind_is_refused_naming_both(
    objective: str, target: str, kind: OutputKind
) -> None:
    """A regression booster for a probability model (it would serve 280.3 as a probability),
    a binary one for a regression, a multiclass one for either: INVALID_ARGUMENT naming the
    objective and the model's output kind."""
    content = outside_model(frame(), {"owner": OWNER, "colour": COLOUR}, objective, target)
    with pytest.raises(InvalidArgument) as refused:
        load_booster(content, model_info(signature(), kind))
    message = refused.value.message
    assert f"objective {objective!r}" in message and f"output kind {kind.value}" in message


@pytest.mark.parametrize(
    ("objective", "target", "kind"),
    [
        ("binary", "y", OutputKind.PROBABILITY),
        ("cross_entropy", "y", OutputKind.PROBABILITY),
        ("regression", "amount", OutputKind.REGRESSION),
        ("huber", "amount", OutputKind.REGRESSION),
        ("poisson", "amount", OutputKind.REGRESSION),
    ],
)
def test_an_objective_of_the_models_output_kind_is_accepted(
    objective: str, target: str, kind: OutputKind
) -> None:
    content = outside_model(frame(), {"owner": OWNER, "colour": COLOUR}, objective, target)
    assert load_booster(content, model_info(signature(), kind)).num_trees() > 0


def test_a_model_trained_on_codes_is_read_as_vocabulary_positions() -> None:
    """A file without category lists (trained from a matrix of codes) is accepted; its codes
    are the signature's vocabulary positions."""
    data = frame()
    sig = signature()
    x = encode_matrix(sig, data)
    params = {"objective": "binary", "verbosity": -1, "num_leaves": 7}
    booster = lgb.train(
        params,
        lgb.Dataset(x, label=data.y, feature_name=list(sig.names), categorical_feature=[1, 2]),
        num_boost_round=10,
    )
    loaded = load_booster(booster.model_to_string().encode(), model_info(sig))
    assert loaded.pandas_categorical is None and Encoding.of(loaded, sig).codes == {}
    bins = grid_bins(sig.cardinalities, 0, sig.grid_size)
    assert np.array_equal(score(loaded, sig, bins), rescore(loaded, sig, bins))


def test_rowcasts_own_training_records_the_vocabulary_as_the_files_mapping() -> None:
    """A trained version's file carries its categories (in vocabulary order), passes the
    upload checks, and its grid is scored the same by the writer and the independent path."""

    class Spec:
        target = "y"
        kind = OutputKind.PROBABILITY

    sig = signature(owner=("no", "yes"))
    booster = train(Spec(), sig, frame(), TrainParams(num_trees=10))  # type: ignore[arg-type]
    assert booster.pandas_categorical == [["no", "yes"], list(COLOUR)]
    loaded = load_booster(booster.model_to_string().encode(), model_info(sig))
    bins = grid_bins(sig.cardinalities, 0, sig.grid_size)
    assert np.array_equal(score(loaded, sig, bins), rescore(loaded, sig, bins))
