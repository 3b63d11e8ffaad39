"""The signature of a model and the binning of raw inputs: the one module that owns binning.

Every client and server bins with `Signature.bin`, so a given input always lands in the same
row. A numeric feature with edges e[0] < ... < e[k-1] has k+1 bins: x falls in bin
`bisect_right(e, x)`, i.e. bin i holds e[i-1] <= x < e[i]; the first and last bins are open
ended, so every finite number maps to exactly one bin. Values outside the training range
[lower, upper] still map to an edge bin but are reported as clamped.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rowcast.errors import FieldViolation, InvalidArgument, listing, quoted

#: Bin indices are stored as unsigned 16-bit integers in row keys.
MAX_BINS = 65_535

RawValue = float | int | str


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input: bin edges, one representative value per bin, the training range."""

    name: str
    edges: tuple[float, ...]
    representatives: tuple[float, ...]
    lower: float
    upper: float

    @property
    def cardinality(self) -> int:
        return len(self.edges) + 1

    def violations(self) -> list[FieldViolation]:
        where = f"signature.features.{self.name}"
        out: list[FieldViolation] = []
        if not self.edges:
            out.append(FieldViolation(f"{where}.edges", "a numeric feature needs at least 1 edge"))
        if any(not math.isfinite(e) for e in self.edges):
            out.append(FieldViolation(f"{where}.edges", "edges must be finite numbers"))
        elif any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            out.append(FieldViolation(f"{where}.edges", "edges must be strictly increasing"))
        if len(self.representatives) != self.cardinality:
            out.append(
                FieldViolation(
                    f"{where}.representatives",
                    f"needs {self.cardinality} values (one per bin), got "
                    f"{len(self.representatives)}",
                )
            )
        if self.cardinality > MAX_BINS:
            out.append(FieldViolation(f"{where}.edges", f"at most {MAX_BINS - 1} edges"))
        return out

    def bin(self, value: RawValue) -> tuple[int, bool]:
        """Return (bin index, clamped?) for a raw value; raise InvalidArgument if not a number."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument.field(
                f"features.{self.name}", f"must be a number, got {type(value).__name__}"
            )
        x = float(value)
        if not math.isfinite(x):
            raise InvalidArgument.field(f"features.{self.name}", f"must be finite, got {x}")
        clamped = x < self.lower or x > self.upper
        return bisect.bisect_right(self.edges, x), clamped

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "numeric",
            "edges": list(self.edges),
            "representatives": list(self.representatives),
            "lower": self.lower,
            "upper": self.upper,
        }


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input: a vocabulary, optionally with an out-of-vocabulary bin at the end."""

    name: str
    vocabulary: tuple[str, ...]
    oov_bucket: bool = False
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {v: i for i, v in enumerate(self.vocabulary)})

    @property
    def cardinality(self) -> int:
        return len(self.vocabulary) + (1 if self.oov_bucket else 0)

    def violations(self) -> list[FieldViolation]:
        where = f"signature.features.{self.name}.vocabulary"
        out: list[FieldViolation] = []
        if not self.vocabulary:
            out.append(FieldViolation(where, "a categorical feature needs a vocabulary"))
        if len(set(self.vocabulary)) != len(self.vocabulary):
            out.append(FieldViolation(where, "vocabulary has duplicates"))
        if self.cardinality > MAX_BINS:
            out.append(FieldViolation(where, f"at most {MAX_BINS - 1} categories"))
        return out

    def bin(self, value: RawValue) -> tuple[int, bool]:
        """Return (bin index, False); unknown categories go to the OOV bin or are rejected."""
        if not isinstance(value, str):
            raise InvalidArgument.field(
                f"features.{self.name}", f"must be a string, got {type(value).__name__}"
            )
        index = self._index.get(value)
        if index is not None:
            return index, False
        if self.oov_bucket:
            return len(self.vocabulary), False
        shown = ", ".join(quoted(v, 20) for v in self.vocabulary[:10])
        raise InvalidArgument.field(
            f"features.{self.name}", f"unknown category {quoted(value)} (known: {shown})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "categorical",
            "vocabulary": list(self.vocabulary),
            "oov_bucket": self.oov_bucket,
        }


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class BinnedInput:
    """The bins of one input, in signature order, and the features that were clamped."""

    bins: tuple[int, ...]
    clamped: tuple[str, ...]


@dataclass(frozen=True)
class Signature:
    """The ordered features of a model: validates a signature and bins raw inputs."""

    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        violations = self.violations()
        if violations:
            raise InvalidArgument("invalid signature: " + listing(violations), violations)

    def violations(self) -> list[FieldViolation]:
        out: list[FieldViolation] = []
        if not self.features:
            out.append(FieldViolation("signature.features", "a signature needs at least 1 feature"))
        names = [f.name for f in self.features]
        for name in sorted({n for n in names if names.count(n) > 1}):
            out.append(
                FieldViolation("signature.features", f"duplicate feature name {quoted(name)}")
            )
        for f in self.features:
            if not f.name:
                out.append(FieldViolation("signature.features", "a feature name is empty"))
            out.extend(f.violations())
        return out

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(f.cardinality for f in self.features)

    @property
    def grid_size(self) -> int:
        return math.prod(self.cardinalities)

    def bin(self, raw: Mapping[str, RawValue]) -> BinnedInput:
        """Bin one raw input. Missing, unknown or ill-typed features are all reported at once."""
        violations: list[FieldViolation] = []
        for name in sorted(set(raw) - set(self.names)):
            violations.append(FieldViolation(f"features.{name}", "not a feature of this model"))
        bins: list[int] = []
        clamped: list[str] = []
        for f in self.features:
            if f.name not in raw:
                violations.append(FieldViolation(f"features.{f.name}", "is required"))
                continue
            try:
                index, was_clamped = f.bin(raw[f.name])
            except InvalidArgument as e:
                violations.extend(e.violations)
                continue
            bins.append(index)
            if was_clamped:
                clamped.append(f.name)
        if violations:
            raise InvalidArgument("bad features: " + listing(violations, " "), violations)
        return BinnedInput(tuple(bins), tuple(clamped))

    def representative(self, bins: Sequence[int]) -> list[RawValue]:
        """The raw input that stands for a grid cell (used when materialising)."""
        out: list[RawValue] = []
        for f, b in zip(self.features, bins, strict=True):
            if isinstance(f, NumericFeature):
                out.append(f.representatives[b])
            else:
                out.append(f.vocabulary[b] if b < len(f.vocabulary) else "")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"features": [f.to_dict() for f in self.features]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        features: list[Feature] = []
        for raw in data.get("features", []):
            if raw.get("type") == "numeric":
                features.append(
                    NumericFeature(
                        name=str(raw["name"]),
                        edges=tuple(float(e) for e in raw["edges"]),
                        representatives=tuple(float(r) for r in raw["representatives"]),
                        lower=float(raw["lower"]),
                        upper=float(raw["upper"]),
                    )
                )
            else:
                features.append(
                    CategoricalFeature(
                        name=str(raw["name"]),
                        vocabulary=tuple(str(v) for v in raw["vocabulary"]),
                        oov_bucket=bool(raw.get("oov_bucket", False)),
                    )
                )
        return cls(tuple(features))
