"""Training rows from approved augmentations: the better answers people and programs recorded
on served decisions, turned into labelled rows for the next model.

Which answer counts: a decision's augmentations are its review history. The latest *reviewed*
one (approved or rejected) is the verdict; proposals still waiting for review do not override
it. A decision counts only when that verdict is APPROVED.

How it becomes a label (probability models): the better output p is the probability that the
target is true, so the decision's inputs become two weighted rows, (x, 1) with weight p and
(x, 0) with weight 1 - p (zero weights dropped). Binary log-loss on these rows is exactly the
cross-entropy against the soft label p; p = 0 or 1 gives one ordinary row. Regressions: the
better output is the target itself, one row (x, value) of weight 1.

Leakage guard: an augmented decision whose inputs equal a held-out row of the data set is left
out, so the comparison on held-out data stays honest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rowcast.core.records import AugmentationState, Decision, OutputKind
from rowcast.core.signature import CategoricalFeature, Signature

#: Column of the weight of each training row in an augmented frame.
WEIGHT = "__weight"


def verdict(decision: Decision) -> float | None:
    """The approved better output of a decision, or None when its latest review is not an
    approval (or it has none)."""
    for aug in reversed(decision.augmentations):
        if aug.state is AugmentationState.APPROVED:
            return aug.better_output
        if aug.state is AugmentationState.REJECTED:
            return None
    return None


def input_rows(signature: Signature, frame: pd.DataFrame) -> set[tuple[float | str, ...]]:
    """The distinct feature tuples of a frame, as `AugmentedRows` compares them."""
    columns = [
        frame[f.name].astype(str) if isinstance(f, CategoricalFeature) else frame[f.name]
        for f in signature.features
    ]
    return set(zip(*(c.tolist() for c in columns), strict=True))


@dataclass
class AugmentedRows:
    """Training rows built from augmented decisions, and what was left out and why."""

    signature: Signature
    target: str
    #: Feature tuples of the held-out rows (`input_rows`): decisions with these inputs are left
    #: out.
    heldout: set[tuple[float | str, ...]] = field(default_factory=set)
    kind: OutputKind = OutputKind.PROBABILITY
    scanned: int = 0
    approved: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    _features: list[dict[str, float | str]] = field(default_factory=list)
    _labels: list[float] = field(default_factory=list)

    def add(self, decisions: Iterable[Decision]) -> None:
        for d in decisions:
            self.scanned += 1
            better = verdict(d)
            if better is None:
                continue
            row = self._inputs(d)
            if row is None:
                continue
            if self.kind is OutputKind.PROBABILITY and not 0.0 <= better <= 1.0:
                self.skipped["better output outside [0, 1]"] += 1
                continue
            if tuple(row.values()) in self.heldout:
                self.skipped["inputs equal a held-out row"] += 1
                continue
            self.approved += 1
            self._features.append(row)
            self._labels.append(better)

    def _inputs(self, d: Decision) -> dict[str, float | str] | None:
        row: dict[str, float | str] = {}
        for f in self.signature.features:
            value = d.features.get(f.name)
            if value is None:
                self.skipped[f"input {f.name!r} missing"] += 1
                return None
            if isinstance(f, CategoricalFeature):
                row[f.name] = str(value)
            elif isinstance(value, str):
                self.skipped[f"input {f.name!r} is not a number"] += 1
                return None
            else:
                row[f.name] = float(value)
        return row

    def frame(self) -> pd.DataFrame:
        """The weighted training rows: feature columns, the target and WEIGHT."""
        inputs = pd.DataFrame(self._features, columns=list(self.signature.names))
        labels = np.asarray(self._labels, dtype=float)
        if self.kind is OutputKind.REGRESSION:
            inputs[self.target], inputs[WEIGHT] = labels, 1.0
            return inputs
        positive, negative = inputs.copy(), inputs.copy()
        positive[self.target], positive[WEIGHT] = 1, labels
        negative[self.target], negative[WEIGHT] = 0, 1.0 - labels
        rows = pd.concat([positive, negative], ignore_index=True)
        return rows[rows[WEIGHT] > 0].reset_index(drop=True)


def combine(original: pd.DataFrame, augmented: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The original training rows (weight 1) followed by the augmented ones."""
    base = original[columns].copy()
    base[WEIGHT] = 1.0
    return pd.concat([base, augmented[[*columns, WEIGHT]]], ignore_index=True)
