"""What a LightGBM model file says about its inputs and its output, checked against the model
it serves: feature names and their order, which features are categorical, the category order
its trees were trained on, and its objective.

A categorical feature reaches the trees as an integer code. A model trained from a pandas frame
records, for each categorical column in order, the list of categories whose positions are those
codes (`pandas_categorical` at the end of the text file). A model trained from a matrix of codes
records none (`pandas_categorical:null`); its codes are taken to be positions in the signature's
vocabulary, the only reading the file allows. `Encoding` is that mapping for one signature: the
code of each vocabulary entry, which is never assumed to be its position when the file says
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import lightgbm as lgb
import numpy as np

from rowcast.core.records import OutputKind
from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.errors import InvalidArgument

#: Objectives whose prediction is a probability, and those whose prediction is a value.
PROBABILITY_OBJECTIVES: Final = ("binary", "cross_entropy")
REGRESSION_OBJECTIVES: Final = (
    "regression",
    "regression_l1",
    "huber",
    "fair",
    "poisson",
    "quantile",
    "mape",
    "gamma",
    "tweedie",
)
OBJECTIVES: Final = {
    OutputKind.PROBABILITY: PROBABILITY_OBJECTIVES,
    OutputKind.REGRESSION: REGRESSION_OBJECTIVES,
}
#: The request field a model file arrives in (CreateVersionRequest.lightgbm_model).
MODEL_FIELD: Final = "lightgbm_model"
#: Entries of a list shown in an error message (a vocabulary may have thousands).
SHOWN: Final = 12


def shown(values: Sequence[object]) -> str:
    """A list for an error message, cut after SHOWN entries."""
    head = ", ".join(repr(v) for v in values[:SHOWN])
    more = len(values) - SHOWN
    return f"[{head}{f', ... {more} more' if more > 0 else ''}]"


@dataclass(frozen=True)
class Encoding:
    """The codes a model's trees know each category by: `codes[name][i]` is the code of the
    i-th vocabulary value of categorical feature `name` (a feature absent here is coded by
    vocabulary position)."""

    codes: Mapping[str, tuple[int, ...]]

    @classmethod
    def of(cls, booster: lgb.Booster, signature: Signature) -> Encoding:
        """The booster's encoding for `signature`, from the category lists its file records;
        InvalidArgument when they do not cover exactly the signature's vocabularies."""
        return cls(category_codes(booster.pandas_categorical, signature))

    def code_table(self, feature: CategoricalFeature) -> np.ndarray:
        """Float codes indexed by bin: one per vocabulary entry, then NaN (missing) for the
        out-of-vocabulary bin."""
        codes = self.codes.get(feature.name, tuple(range(len(feature.vocabulary))))
        return np.append(np.asarray(codes, dtype=float), np.nan)

    def lookup(self, feature: CategoricalFeature) -> dict[str, float]:
        """Raw category -> code, for encoding raw rows (an unknown category is absent)."""
        return dict(zip(feature.vocabulary, self.code_table(feature)[:-1].tolist(), strict=True))


def category_codes(
    pandas_categorical: list[list[Any]] | None, signature: Signature
) -> dict[str, tuple[int, ...]]:
    """Per categorical feature, the file's code of each vocabulary value. The file's j-th list
    belongs to the signature's j-th categorical feature (pandas keeps column order). A list
    that is not the vocabulary's set (a value missing on either side) is InvalidArgument
    naming the feature and both orders."""
    if pandas_categorical is None:
        return {}
    features = [f for f in signature.features if isinstance(f, CategoricalFeature)]
    if len(pandas_categorical) != len(features):
        raise InvalidArgument.field(
            MODEL_FIELD,
            f"the model file records categories (pandas_categorical) for "
            f"{len(pandas_categorical)} feature(s), the signature has {len(features)} "
            f"categorical feature(s) {[f.name for f in features]}",
        )
    codes: dict[str, tuple[int, ...]] = {}
    for feature, categories in zip(features, pandas_categorical, strict=True):
        # Categories may be numbers in the file; the signature's vocabulary is text.
        names = [str(c) for c in categories]
        position = {name: i for i, name in enumerate(names)}
        if len(position) != len(names) or set(names) != set(feature.vocabulary):
            missing = [v for v in feature.vocabulary if v not in position]
            known = set(feature.vocabulary)
            extra = [n for n in names if n not in known]
            raise InvalidArgument.field(
                MODEL_FIELD,
                f"feature {feature.name!r}: the model file's categories, in its order "
                f"{shown(names)}, are not the signature's vocabulary, in its order "
                f"{shown(feature.vocabulary)} (not in the file: {shown(missing)}; not in the "
                f"signature: {shown(extra)})",
            )
        codes[feature.name] = tuple(position[v] for v in feature.vocabulary)
    return codes


def header(text: str) -> dict[str, str]:
    """The `key=value` lines of a model file before its first tree."""
    end = text.find("\nTree=")
    lines = (text if end < 0 else text[:end]).splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def objective(text: str) -> str:
    """The objective's name (without its parameters: `binary sigmoid:1` is `binary`)."""
    words = header(text).get("objective", "").split()
    return words[0] if words else ""


def check_objective(text: str, kind: OutputKind) -> None:
    """InvalidArgument unless the file's objective gives outputs of `kind`."""
    name = objective(text)
    allowed = OBJECTIVES[kind]
    if name not in allowed:
        raise InvalidArgument.field(
            MODEL_FIELD,
            f"objective {name or '(none)'!r} does not fit the model's output kind "
            f"{kind.value}: a {kind.value} model needs the objective "
            + (" or ".join(allowed) if len(allowed) < 3 else "one of " + ", ".join(allowed)),
        )


def check_features(text: str, booster: lgb.Booster, signature: Signature) -> None:
    """InvalidArgument unless the file's features are the signature's, in its order, each
    numeric or categorical as the signature says."""
    names = tuple(booster.feature_name())
    wanted = signature.names
    if names != wanted:
        if sorted(names) == sorted(wanted):
            problem = (
                f"model features are in another order than the signature's: the model has "
                f"{list(names)}, the signature {list(wanted)} (train on columns in the "
                "signature's order)"
            )
        else:
            problem = f"model features {list(names)} differ from the signature's {list(wanted)}"
        raise InvalidArgument.field(MODEL_FIELD, problem)
    infos = header(text).get("feature_infos", "").split()
    for feature, info in zip(signature.features, infos, strict=False):
        # feature_infos: "[min:max]" for a numeric feature, category codes "a:b:c" for a
        # categorical one, "none" for one the trees never use.
        if info == "none":
            continue
        numeric_in_file = info.startswith("[")
        if isinstance(feature, NumericFeature) and not numeric_in_file:
            raise InvalidArgument.field(
                MODEL_FIELD,
                f"feature {feature.name!r} is numeric in the signature, categorical in the "
                "model file",
            )
        if isinstance(feature, CategoricalFeature) and numeric_in_file:
            raise InvalidArgument.field(
                MODEL_FIELD,
                f"feature {feature.name!r} is categorical in the signature, numeric in the "
                "model file (train with it as a pandas category or in categorical_feature)",
            )


def check_model_file(
    text: str, booster: lgb.Booster, signature: Signature, kind: OutputKind
) -> Encoding:
    """Every check of a model file against the model it is for; its encoding when it passes."""
    check_features(text, booster, signature)
    check_objective(text, kind)
    return Encoding.of(booster, signature)
