"""The signature of a model and the binning of raw inputs: the one module that owns binning.

Every client and server bins with `Signature.bin`, so a given input always lands in the same
row. A numeric feature with edges e[0] < ... < e[k-1] has k+1 bins: x falls in bin
`bisect_right(e, x)`, i.e. bin i holds e[i-1] <= x < e[i]; the first and last bins are open
ended, so every finite number maps to exactly one bin. Values outside the training range
[lower, upper] still map to an edge bin but are reported as clamped; a bound left out (None) is
open: nothing is clamped on that side.

`derive_numeric` and `derive_categorical` build features from training values (quantile bins,
median representatives, sorted vocabularies); a hand-written feature is held to the same rules
by `violations` (strictly increasing edges, each representative inside its own bin, bounds that
enclose the edges).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rowcast.errors import FieldViolation, InvalidArgument, listing, quoted

#: Bin indices are stored as unsigned 16-bit integers in row keys.
MAX_BINS = 65_535

RawValue = float | int | str


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input: bin edges, one representative value per bin, the training range
    (either bound None: open on that side)."""

    name: str
    edges: tuple[float, ...]
    representatives: tuple[float, ...]
    lower: float | None = None
    upper: float | None = None

    @property
    def cardinality(self) -> int:
        return len(self.edges) + 1

    def violations(self, placement: bool = True) -> list[FieldViolation]:
        """What is wrong with this feature: its structure (edges, one representative per
        bin) and, with `placement`, where its values lie (each representative in its bin,
        bounds finite and ordered)."""
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
        if placement and not out:
            out.extend(self._representative_violations(f"{where}.representatives"))
        if placement:
            out.extend(self._bound_violations(where))
        return out

    def _representative_violations(self, where: str) -> list[FieldViolation]:
        """Each representative must lie in its own bin: it is the value the model is scored
        at for every input of that bin."""
        out: list[FieldViolation] = []
        for i, r in enumerate(self.representatives):
            if not math.isfinite(r):
                out.append(FieldViolation(where, f"representative {i} is {r}, not a finite number"))
            elif bisect.bisect_right(self.edges, r) != i:
                out.append(
                    FieldViolation(
                        where,
                        f"representative {i} ({r:g}) lies outside bin {i} "
                        f"{bin_range(self.edges, i)}",
                    )
                )
        return out

    def _bound_violations(self, where: str) -> list[FieldViolation]:
        out: list[FieldViolation] = []
        for side, bound in (("lower", self.lower), ("upper", self.upper)):
            if bound is not None and not math.isfinite(bound):
                out.append(FieldViolation(f"{where}.{side}", f"must be finite, got {bound}"))
        if out:
            return out
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            out.append(
                FieldViolation(
                    f"{where}.lower", f"lower {self.lower:g} is above upper {self.upper:g}"
                )
            )
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
        clamped = (self.lower is not None and x < self.lower) or (
            self.upper is not None and x > self.upper
        )
        return bisect.bisect_right(self.edges, x), clamped

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": "numeric",
            "edges": list(self.edges),
            "representatives": list(self.representatives),
        }
        for side, bound in (("lower", self.lower), ("upper", self.upper)):
            if bound is not None:
                out[side] = bound
        return out


def bin_range(edges: Sequence[float], i: int) -> str:
    """Bin i of these edges as an interval, for people: `[10, 20)`, `(-inf, 10)`."""
    lo = f"[{edges[i - 1]:g}" if i > 0 else "(-inf"
    hi = f"{edges[i]:g})" if i < len(edges) else "+inf)"
    return f"{lo}, {hi}"


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

    def violations(self, placement: bool = True) -> list[FieldViolation]:
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

#: One feature as `Signature._bin_valid` checks it: name, numeric?, then for a number its
#: edges and training bounds, for a category its index and out-of-vocabulary bin (or None).
_Step = tuple[str, bool, Any, Any, Any]


def _step(f: Feature) -> _Step:
    if isinstance(f, NumericFeature):
        return (f.name, True, f.edges, f.lower, f.upper)
    return (f.name, False, f._index, len(f.vocabulary) if f.oov_bucket else None, None)


@dataclass(frozen=True)
class BinnedInput:
    """The bins of one input, in signature order, and the features that were clamped."""

    bins: tuple[int, ...]
    clamped: tuple[str, ...]


@dataclass(frozen=True)
class Signature:
    """The ordered features of a model: validates a signature and bins raw inputs."""

    features: tuple[Feature, ...]
    #: What `bin` checks on the happy path, per feature in order (see `_bin_valid`).
    _plan: tuple[_Step, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        violations = self.violations()
        if violations:
            raise InvalidArgument("invalid signature: " + listing(violations), violations)
        self._compile()

    def _compile(self) -> None:
        """Prepare `_bin_valid` (every way a Signature is made ends here)."""
        object.__setattr__(self, "_plan", tuple(_step(f) for f in self.features))

    def violations(self, placement: bool = True) -> list[FieldViolation]:
        """Every violation of the signature; `placement` as in NumericFeature.violations."""
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
            out.extend(f.violations(placement))
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
        binned = self._bin_valid(raw)
        return binned if binned is not None else self._bin_or_explain(raw)

    def _bin_valid(self, raw: Mapping[str, RawValue]) -> BinnedInput | None:
        """`bin` for an input with exactly the signature's features, each a plain float, int or
        str of its kind (what every well-formed call sends); None for anything else, which
        `_bin_or_explain` then bins or explains. One pass, no sets or error lists: this runs on
        every Predict (tests/unit/test_signature.py holds the two paths to the same results)."""
        plan = self._plan
        if len(raw) != len(plan):
            return None
        bins: list[int] = []
        clamped: tuple[str, ...] = ()
        for name, numeric, table, low, high in plan:
            value: Any = raw.get(name)
            if numeric:
                kind = value.__class__
                if kind is int:
                    value = float(value)
                elif kind is not float or value - value != 0.0:
                    return None  # not a plain number, or not finite
                bins.append(bisect.bisect_right(table, value))
                if (low is not None and value < low) or (high is not None and value > high):
                    clamped += (name,)
            else:
                if value.__class__ is not str:
                    return None
                index = table.get(value)
                if index is None:
                    if low is None:
                        return None  # unknown category, no out-of-vocabulary bin
                    index = low
                bins.append(index)
        return BinnedInput(tuple(bins), clamped)

    def _bin_or_explain(self, raw: Mapping[str, RawValue]) -> BinnedInput:
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
        """A signature as stored (the registry's JSON). Only its structure is checked: a model
        registered before representatives were checked against their bins stays readable
        and keeps serving (new registrations are checked in full)."""
        features: list[Feature] = []
        for raw in data.get("features", []):
            if raw.get("type") == "numeric":
                features.append(
                    NumericFeature(
                        name=str(raw["name"]),
                        edges=tuple(float(e) for e in raw["edges"]),
                        representatives=tuple(float(r) for r in raw["representatives"]),
                        lower=_bound(raw.get("lower")),
                        upper=_bound(raw.get("upper")),
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
        signature = object.__new__(cls)
        object.__setattr__(signature, "features", tuple(features))
        violations = signature.violations(placement=False)
        if violations:
            raise InvalidArgument("invalid signature: " + listing(violations), violations)
        signature._compile()
        return signature


def _bound(value: Any) -> float | None:
    return None if value is None else float(value)


def derive_numeric(name: str, values: Iterable[float], bins: int) -> NumericFeature:
    """A numeric feature from its training values: at most `bins` bins holding about equal
    numbers of values, each representative the median of its bin's values, bounds the values'
    minimum and maximum.

    Edges are values of the data (a bin starts at one), so no bin is empty and no edge repeats:
    a column with few distinct values gets one bin per value, and a value that alone fills a
    bin's share or more (say the zeros of a mostly-zero column) gets a bin of its own. A column
    with one value (or none) informs no model: ValueError naming it.
    """
    if bins < 2:
        raise ValueError(f"{name}: needs at least 2 bins, got {bins}")
    data = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float)
    data = np.sort(data[np.isfinite(data)])
    distinct, counts = np.unique(data, return_counts=True)
    if len(distinct) < 2:
        raise ValueError(f"{name}: has {len(distinct)} distinct value(s); a feature needs 2")
    edges: list[float] = []
    left = len(data)  # values not yet in a closed bin
    filled = 0  # values in the bin being filled
    for value, count in zip(distinct.tolist(), counts.tolist(), strict=True):
        share = left / (bins - len(edges))
        # Close the bin before this value when adding it would overshoot the bin's share
        # by more than half the value's own count.
        if filled and len(edges) < bins - 1 and filled + count / 2 > share:
            edges.append(float(value))
            left -= filled
            filled = 0
        filled += count
    index = np.searchsorted(np.asarray(edges), data, side="right")
    representatives = tuple(float(np.median(data[index == b])) for b in range(len(edges) + 1))
    return NumericFeature(name, tuple(edges), representatives, float(data[0]), float(data[-1]))


def derive_categorical(name: str, values: Iterable[object]) -> CategoricalFeature:
    """A categorical feature whose vocabulary is the values seen, sorted."""
    vocabulary = tuple(sorted({str(v) for v in values}))
    if not vocabulary:
        raise ValueError(f"{name}: has no values")
    return CategoricalFeature(name, vocabulary)
