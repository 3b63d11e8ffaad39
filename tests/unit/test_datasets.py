"""Data sets people bring: a file is checked before it is stored (target, missing values,
constant and id-like columns, names), profiled (types, ranges, values, split), stored as
Parquet and read back identical with the same fixed held-out split; a Catalog finds stored and
shipped data sets by name; the fit check names a column whose values are in another unit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rowcast.core.records import OutputKind
from rowcast.core.signature import CategoricalFeature, NumericFeature
from rowcast.errors import InvalidArgument, NotFound
from rowcast.jobs import dataset as datasets
from rowcast.store.datasets import DatasetRecord


def applications(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.uniform(1.0, 20.0, n).round(2),  # units of $10,000
            "age": rng.integers(18, 80, n),
            "owner": rng.choice(["yes", "no"], n),
            "approved": rng.integers(0, 2, n),
        }
    )


class FakeSource:
    """Stored data sets in memory, read as DatasetStore.read reads them."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[DatasetRecord, bytes]] = {}

    def add(self, name: str, content: bytes, info: dict[str, object]) -> None:
        sha = hashlib.sha256(content).hexdigest()
        self.stored[name] = (DatasetRecord(name, sha, len(content), dict(info)), content)

    def read(self, name: str) -> tuple[DatasetRecord, bytes]:
        if name not in self.stored:
            raise NotFound(f"no data set {name!r}")
        return self.stored[name]


def test_a_frame_becomes_a_data_set_with_its_profile() -> None:
    """Numbers are numeric features, text categorical; a 0/1 target is binary; the profile
    has each column's type and range or values, says no units were inferred, and the split."""
    ds, content, info = datasets.prepare("apps", applications(), "approved")
    assert ds.numeric == ("income", "age") and ds.categorical == ("owner",)
    assert ds.kind is OutputKind.PROBABILITY and content[:4] == b"PAR1"
    columns = {c["name"]: c for c in info["columns"]}
    assert columns["age"]["integer"] is True and columns["age"]["units"] is None
    assert 1.0 <= columns["income"]["min"] < columns["income"]["max"] <= 20.0
    assert columns["owner"]["values"] == ["no", "yes"]
    assert info["rows"] == 400 and info["split"]["heldout_rows"] == 80
    assert info["split"]["seed"] == datasets.SPLIT_SEED and info["split"]["stratified"]


def test_a_numeric_target_that_is_not_binary_is_a_regression() -> None:
    """Without --kind, a target of other numbers makes a regression data set."""
    frame = applications().assign(approved=lambda f: f["income"] * 3.0)
    ds, _, info = datasets.prepare("apps", frame, "approved")
    assert ds.kind is OutputKind.REGRESSION and info["split"]["stratified"] is False


def with_target(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(nope=f["approved"])


BAD_FILES: list[tuple[Callable[[pd.DataFrame], pd.DataFrame], str, str]] = [
    (lambda f: f, "target", "'nope' is not a column"),
    (lambda f: f.assign(nope=f["income"]), "target", "only 0 and 1"),
    (lambda f: f.assign(nope=["a", "b"] * (len(f) // 2)), "target", "only 0 and 1"),
    (lambda f: with_target(f).assign(age=np.nan), "file", "missing values in"),
    (lambda f: with_target(f).assign(flag=1), "file", "'flag' has one value"),
    (lambda f: with_target(f).assign(id=[f"c{i}" for i in range(len(f))]), "file", "1,000"),
    (lambda f: with_target(f).head(5), "file", "at least 10"),
]


@pytest.mark.parametrize(("change", "field", "needle"), BAD_FILES)
def test_a_file_that_cannot_be_a_data_set_is_refused_naming_why(
    change: Callable[[pd.DataFrame], pd.DataFrame], field: str, needle: str
) -> None:
    """Target not a column or not 0/1 for a binary kind, missing values, a constant column,
    an id-like categorical column (1,200 distinct values), too few rows: INVALID_ARGUMENT
    naming the field."""
    with pytest.raises(InvalidArgument) as err:
        datasets.prepare("apps", change(applications(1_200)), "nope", OutputKind.PROBABILITY)
    assert needle in err.value.message
    assert [v.field for v in err.value.violations] == [field]


@pytest.mark.parametrize("name", ["default", "credit_balance", "Apps", "1apps", "a-b", ""])
def test_a_bad_or_shipped_name_is_refused(name: str) -> None:
    """Names follow the model-name rule and never shadow a shipped data set."""
    with pytest.raises(InvalidArgument):
        datasets.check_name(name)


def test_a_stored_data_set_reads_back_equal_with_the_same_split() -> None:
    """Stored as Parquet and read back through a Catalog: the same rows, column kinds and
    held-out rows; a shipped name still finds the shipped data set; an unknown name is
    ValueError naming it."""
    source = FakeSource()
    ds, content, info = datasets.prepare("apps", applications(), "approved", heldout_fraction=0.25)
    source.add("apps", content, info)
    catalog = datasets.Catalog(source)
    back = catalog.load("apps")
    pd.testing.assert_frame_equal(back.frame, ds.frame)
    assert (back.numeric, back.categorical, back.target) == (ds.numeric, ds.categorical, ds.target)
    assert back.heldout_split()[1].index.equals(ds.heldout_split()[1].index)
    assert len(back.heldout_split()[1]) == 100
    assert catalog.load("default").name == "default"
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        catalog.load("nope")


def test_the_split_is_stratified_and_fixed_by_its_seed() -> None:
    """The same seed draws the same held-out rows; the held-out share of positives is the
    data set's."""
    ds, _, _ = datasets.prepare("apps", applications(1_000), "approved")
    a, b = ds.heldout_split()[1], ds.heldout_split()[1]
    assert a.index.equals(b.index)
    assert abs(a["approved"].mean() - ds.frame["approved"].mean()) < 0.01
    other = datasets.Dataset(**{**ds.__dict__, "split_seed": 7})
    assert not other.heldout_split()[1].index.equals(a.index)


def test_a_column_in_other_units_does_not_fit_naming_both_ranges() -> None:
    """Income in dollars against a signature in units of $10,000 (and the reverse) is a
    misfit naming the column and both ranges; the same unit fits."""
    ds, _, _ = datasets.prepare("apps", applications(), "approved")
    units = NumericFeature("income", (5.0, 10.0), (3.0, 7.0, 15.0), 1.0, 20.0)
    assert datasets.range_problem(units, ds.frame["income"]) is None
    dollars = ds.frame["income"] * 10_000
    problem = datasets.range_problem(units, dollars)
    assert problem is not None and "'income'" in problem and "the signature's [1, 20]" in problem
    in_dollars = NumericFeature("income", (50_000.0,), (20_000.0, 100_000.0), 10_000, 200_000)
    assert datasets.range_problem(in_dollars, ds.frame["income"]) is not None


def test_categories_outside_the_vocabulary_do_not_fit() -> None:
    """A vocabulary `Y`/`N` against values `yes`/`no`: a misfit naming the unseen values."""
    ds, _, _ = datasets.prepare("apps", applications(), "approved")
    problem = datasets.range_problem(CategoricalFeature("owner", ("N", "Y")), ds.frame["owner"])
    assert problem is not None and "unseen: ['no', 'yes']" in problem


def test_read_file_takes_csv_and_parquet_only(tmp_path: Path) -> None:
    """A .csv and a .parquet file read to the same frame; another suffix is refused."""
    frame = applications(20)
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    pd.testing.assert_frame_equal(datasets.read_file(tmp_path / "a.csv"), frame)
    pd.testing.assert_frame_equal(datasets.read_file(tmp_path / "a.parquet"), frame)
    (tmp_path / "a.xlsx").write_bytes(b"x")
    with pytest.raises(InvalidArgument, match=r"give a \.csv or \.parquet file"):
        datasets.read_file(tmp_path / "a.xlsx")


@pytest.mark.parametrize("name", ["add", "list", "get", "export", "remove"])
def test_every_datasets_subcommand_has_help_and_json(name: str) -> None:
    """`rowcast datasets NAME --help` exits 0 with its usage and offers --json."""
    from click.testing import CliRunner

    from rowcast_cli.datasets_cmd import datasets_group

    assert sorted(datasets_group.commands) == sorted(["add", "list", "get", "export", "remove"])
    result = CliRunner().invoke(datasets_group, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: datasets {name}" in result.stdout and "--json" in result.stdout
