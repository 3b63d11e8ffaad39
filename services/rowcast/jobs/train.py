"""Train a LightGBM model and derive the signature (bins) that flattens it.

Numeric features get quantile bins (edges at training-data quantiles, so every bin holds
about the same number of customers) with the median of each bin as its representative value;
categorical features get their vocabulary. The flattened model answers every input with the
model's output at the representative values of its bins, so its fidelity (AUC of the raw model
beside AUC of the flattened one on held-out data) is recorded with each version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from rowcast.core.records import OutputKind
from rowcast.core.signature import CategoricalFeature, NumericFeature, Signature
from rowcast.errors import FieldViolation, InvalidArgument
from rowcast.jobs.dataset import Dataset
from rowcast.jobs.modelfile import Encoding

#: Most boosting rounds a caller may ask for: a training run occupies a ModelService thread,
#: and 10,000 rounds of the shipped data sets already take minutes.
MAX_TREES: Final = 10_000
#: LightGBM's own bounds on leaves per tree (it refuses 1 and more than 131,072).
MIN_LEAVES: Final = 2
MAX_LEAVES: Final = 131_072
#: The seed is a 32-bit signed integer in LightGBM (and in TrainingSpec).
SEED_RANGE: Final = range(-(2**31), 2**31)


@dataclass(frozen=True)
class TrainParams:
    """LightGBM parameters of one training run."""

    num_trees: int = 200
    num_leaves: int = 15
    learning_rate: float = 0.05
    seed: int = 7
    extra: dict[str, Any] = field(default_factory=dict)

    def violations(self, prefix: str = "") -> list[FieldViolation]:
        """Every parameter out of its range, as field violations named `prefix + field`."""
        found: list[FieldViolation] = []
        if not 1 <= self.num_trees <= MAX_TREES:
            found.append(
                FieldViolation(
                    f"{prefix}num_trees", f"must be 1 to {MAX_TREES:,}, got {self.num_trees}"
                )
            )
        if not MIN_LEAVES <= self.num_leaves <= MAX_LEAVES:
            found.append(
                FieldViolation(
                    f"{prefix}num_leaves",
                    f"must be {MIN_LEAVES} to {MAX_LEAVES:,}, got {self.num_leaves}",
                )
            )
        if not (math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1):
            found.append(
                FieldViolation(
                    f"{prefix}learning_rate",
                    f"must be above 0 and at most 1, got {self.learning_rate!r}",
                )
            )
        if self.seed not in SEED_RANGE:
            found.append(
                FieldViolation(f"{prefix}seed", f"must be a 32-bit integer, got {self.seed}")
            )
        return found

    def check(self, prefix: str = "") -> TrainParams:
        """These parameters, or InvalidArgument naming every bad one (before LightGBM sees
        them: its own errors would reach callers as UNKNOWN)."""
        found = self.violations(prefix)
        if found:
            raise invalid(found)
        return self

    def lightgbm(self, kind: OutputKind) -> dict[str, Any]:
        """LightGBM's parameters for a model of `kind`: a binary objective for probabilities,
        squared error for regressions."""
        return {
            "objective": "binary" if kind is OutputKind.PROBABILITY else "regression",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": 1,
            "verbosity": -1,
            **self.extra,
        }


def invalid(violations: list[FieldViolation]) -> InvalidArgument:
    """One InvalidArgument carrying every violation; its message names each field."""
    return InvalidArgument("; ".join(f"{v.field}: {v.description}" for v in violations), violations)


def derive_signature(frame: pd.DataFrame, ds: Dataset, bins: dict[str, int]) -> Signature:
    """Quantile bins for numeric features (bins[name] each), vocabularies for categorical."""
    features: list[NumericFeature | CategoricalFeature] = []
    for name in ds.numeric:
        values = np.sort(frame[name].to_numpy(dtype=float))
        quantiles = np.linspace(0, 1, bins.get(name, 32) + 1)[1:-1]
        edges = np.unique(np.quantile(values, quantiles))
        index = np.searchsorted(edges, values, side="right")
        reps = []
        for b in range(len(edges) + 1):
            in_bin = values[index == b]
            if len(in_bin):
                reps.append(float(np.median(in_bin)))
            elif b == 0:  # nothing below the first edge (it is the minimum): a value below it
                reps.append(float(edges[0] - (edges[1] - edges[0] if len(edges) > 1 else 1.0)))
            else:  # an empty bin: its midpoint, which lies inside it
                hi = edges[b] if b < len(edges) else values[-1]
                reps.append(float((edges[b - 1] + hi) / 2))
        features.append(
            NumericFeature(
                name=name,
                edges=tuple(float(e) for e in edges),
                representatives=tuple(reps),
                lower=float(values[0]),
                upper=float(values[-1]),
            )
        )
    for name in ds.categorical:
        vocabulary = tuple(sorted(frame[name].astype(str).unique()))
        features.append(CategoricalFeature(name=name, vocabulary=vocabulary))
    return Signature(tuple(features))


def encode_matrix(
    signature: Signature, frame: pd.DataFrame, encoding: Encoding | None = None
) -> np.ndarray:
    """The model's input matrix: numbers as they are, categories as the codes of `encoding`
    (vocabulary positions when None); an unknown category is missing (NaN)."""
    coded = encoding or Encoding({})
    columns = []
    for f in signature.features:
        if isinstance(f, NumericFeature):
            columns.append(frame[f.name].to_numpy(dtype=float))
        else:
            lookup = coded.lookup(f)
            columns.append(
                frame[f.name]
                .astype(str)
                .map(lambda v, lk=lookup: lk.get(v, np.nan))
                .to_numpy(dtype=float)
            )
    return np.column_stack(columns)


def training_frame(signature: Signature, frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns LightGBM trains on: numbers, and categories as pandas categoricals
    in the vocabulary's order, so that the model file records that order as its mapping
    (`pandas_categorical`) and the codes it splits on are vocabulary positions."""
    columns: dict[str, Any] = {}
    for f in signature.features:
        if isinstance(f, NumericFeature):
            columns[f.name] = frame[f.name].to_numpy(dtype=float)
        else:
            columns[f.name] = pd.Categorical(
                frame[f.name].astype(str).to_numpy(), categories=list(f.vocabulary)
            )
    return pd.DataFrame(columns, index=frame.index)


def categorical_indices(signature: Signature) -> list[int]:
    return [i for i, f in enumerate(signature.features) if isinstance(f, CategoricalFeature)]


def train(
    ds: Dataset,
    signature: Signature,
    train_frame: pd.DataFrame,
    params: TrainParams,
    weights: np.ndarray | None = None,
) -> lgb.Booster:
    """Train on the frame's feature columns and `ds.target`, rows optionally weighted.
    Parameters out of range are InvalidArgument, before any work."""
    params.check()
    data = lgb.Dataset(
        training_frame(signature, train_frame),
        label=train_frame[ds.target].to_numpy(),
        weight=weights,
        feature_name=list(signature.names),
        categorical_feature=categorical_indices(signature),
        free_raw_data=False,
    )
    return lgb.train(params.lightgbm(ds.kind), data, num_boost_round=params.num_trees)


def representative_matrix(
    signature: Signature, bins: np.ndarray, encoding: Encoding | None = None
) -> np.ndarray:
    """Model inputs of grid cells: bins is (rows, features) of bin indices; a category bin is
    fed as its code in `encoding` (the model file's mapping; vocabulary positions when None)."""
    coded = encoding or Encoding({})
    columns = []
    for j, f in enumerate(signature.features):
        if isinstance(f, NumericFeature):
            columns.append(np.asarray(f.representatives, dtype=float)[bins[:, j]])
        else:
            # An OOV bin has no category: the model sees it as missing (the table's last entry).
            columns.append(coded.code_table(f)[bins[:, j]])
    return np.column_stack(columns)


def bin_frame(signature: Signature, frame: pd.DataFrame) -> np.ndarray:
    """Bin every row of a frame (vectorised, same rule as Signature.bin)."""
    columns = []
    for f in signature.features:
        if isinstance(f, NumericFeature):
            columns.append(
                np.searchsorted(np.asarray(f.edges), frame[f.name].to_numpy(float), side="right")
            )
        else:
            lookup = {v: i for i, v in enumerate(f.vocabulary)}
            oov = len(f.vocabulary)
            columns.append(
                frame[f.name].astype(str).map(lambda v, lk=lookup, o=oov: lk.get(v, o)).to_numpy()
            )
    return np.column_stack(columns).astype(np.int64)


def metric(kind: OutputKind, y: np.ndarray, scores: np.ndarray) -> tuple[str, float]:
    """The fidelity metric of a model kind: AUC for probabilities, RMSE for regressions."""
    if kind is OutputKind.PROBABILITY:
        return "auc", float(roc_auc_score(y, scores))
    return "rmse", float(np.sqrt(np.mean((y.astype(float) - scores) ** 2)))


def fidelity(
    booster: lgb.Booster,
    signature: Signature,
    test: pd.DataFrame,
    target: str,
    kind: OutputKind = OutputKind.PROBABILITY,
) -> dict[str, float]:
    """The metric (AUC or RMSE) of the raw model and of the flattened one (its scores for the
    bins' representatives) on the same held-out rows."""
    y = test[target].to_numpy()
    encoding = Encoding.of(booster, signature)
    raw = np.asarray(booster.predict(encode_matrix(signature, test, encoding)), dtype=float)
    cells = representative_matrix(signature, bin_frame(signature, test), encoding)
    flat = np.asarray(booster.predict(cells), dtype=float)
    name, raw_value = metric(kind, y, raw)
    _, flat_value = metric(kind, y, flat)
    return {
        f"{name}_raw": raw_value,
        f"{name}_flattened": flat_value,
        "heldout_rows": float(len(test)),
    }


def save(booster: lgb.Booster, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path))
    return path


def predict_cells(booster: lgb.Booster, signature: Signature, bins: np.ndarray) -> np.ndarray:
    """The booster's outputs for grid cells, categories coded by the booster's own mapping."""
    cells = representative_matrix(signature, bins, Encoding.of(booster, signature))
    return np.asarray(booster.predict(cells), dtype=float)
