"""Binning: every input maps to exactly one bin, the same one everywhere; bad signatures and
bad inputs are rejected with the offending field named."""

from __future__ import annotations

import bisect
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.core.signature import (
    BinnedInput,
    CategoricalFeature,
    Feature,
    NumericFeature,
    RawValue,
    Signature,
)
from rowcast.errors import InvalidArgument

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


#: Edges within a range where `edge - 1` is still below the edge.
edge_values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@st.composite
def numeric_features(draw: st.DrawFn) -> NumericFeature:
    edges = sorted(set(draw(st.lists(edge_values, min_size=1, max_size=40))))
    # Each representative inside its bin: below the first edge, then each bin's own edge.
    reps = [edges[0] - 1.0, *edges]
    lo = draw(finite)
    hi = draw(finite.filter(lambda x: x >= lo))
    return NumericFeature("x", tuple(edges), tuple(reps), lo, hi)


@given(numeric_features(), finite)
def test_every_number_falls_in_exactly_one_bin(feature: NumericFeature, x: float) -> None:
    """A finite number lands in the one bin whose half-open interval holds it."""
    index, clamped = feature.bin(x)
    assert 0 <= index < feature.cardinality
    bounds = [-math.inf, *feature.edges, math.inf]
    holding = [i for i in range(feature.cardinality) if bounds[i] <= x < bounds[i + 1]]
    assert holding == [index]
    assert feature.lower is not None and feature.upper is not None
    assert clamped == (x < feature.lower or x > feature.upper)


@given(numeric_features(), st.lists(finite, min_size=2, max_size=2))
def test_binning_is_monotonic(feature: NumericFeature, pair: list[float]) -> None:
    """A larger value never falls in a lower bin."""
    a, b = sorted(pair)
    assert feature.bin(a)[0] <= feature.bin(b)[0]


@given(numeric_features())
def test_edges_open_their_bin(feature: NumericFeature) -> None:
    """An edge value belongs to the bin it opens (bin i holds e[i-1] <= x < e[i])."""
    for i, edge in enumerate(feature.edges):
        assert feature.bin(edge)[0] == i + 1 == bisect.bisect_right(feature.edges, edge)


def test_categorical_known_unknown_and_oov() -> None:
    """Known categories map to their index; unknown ones are rejected unless an OOV bin exists."""
    plain = CategoricalFeature("student", ("No", "Yes"))
    assert plain.bin("Yes") == (1, False)
    with pytest.raises(InvalidArgument) as err:
        plain.bin("Maybe")
    assert err.value.violations[0].field == "features.student"
    oov = CategoricalFeature("student", ("No", "Yes"), oov_bucket=True)
    assert oov.bin("Maybe") == (2, False)
    assert oov.cardinality == 3


SIG = Signature(
    (
        NumericFeature("balance", (10.0, 20.0), (5.0, 15.0, 25.0), 0.0, 30.0),
        CategoricalFeature("student", ("No", "Yes")),
    )
)


def test_signature_bins_in_order_and_reports_clamping() -> None:
    """Bins come in signature order; out-of-range numbers are clamped and named."""
    assert SIG.bin({"student": "Yes", "balance": 12}).bins == (1, 1)
    out = SIG.bin({"balance": 99.0, "student": "No"})
    assert out.bins == (2, 0) and out.clamped == ("balance",)


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({"balance": 1.0}, ["features.student"]),
        ({"balance": 1.0, "student": "No", "age": 3.0}, ["features.age"]),
        ({"balance": "high", "student": "No"}, ["features.balance"]),
        ({"balance": 1.0, "student": 1.0}, ["features.student"]),
        ({"balance": math.nan, "student": "No"}, ["features.balance"]),
        ({"balance": True, "student": "No"}, ["features.balance"]),
        ({}, ["features.balance", "features.student"]),
    ],
)
def test_bad_inputs_name_every_bad_field(raw: dict[str, RawValue], fields: list[str]) -> None:
    """Missing, extra and ill-typed features are all reported, each by name."""
    with pytest.raises(InvalidArgument) as err:
        SIG.bin(raw)
    assert sorted(v.field for v in err.value.violations) == sorted(fields)


@pytest.mark.parametrize(
    ("features", "needle"),
    [
        ((), "at least 1 feature"),
        (
            (
                CategoricalFeature("a", ("x",)),
                CategoricalFeature("a", ("y",)),
            ),
            "duplicate feature name",
        ),
        ((NumericFeature("b", (2.0, 1.0), (0.0, 0.0, 0.0), 0, 1),), "strictly increasing"),
        ((NumericFeature("b", (1.0, 1.0), (0.0, 0.0, 0.0), 0, 1),), "strictly increasing"),
        ((NumericFeature("b", (1.0,), (0.0,), 0, 1),), "one per bin"),
        ((CategoricalFeature("c", ()),), "needs a vocabulary"),
        ((CategoricalFeature("c", ("x", "x")),), "duplicates"),
    ],
)
def test_invalid_signatures_are_rejected(features: tuple[Feature, ...], needle: str) -> None:
    """No features, duplicate names, unsorted/duplicate edges, empty vocabularies: rejected."""
    with pytest.raises(InvalidArgument, match=needle):
        Signature(features)


def test_signature_round_trips_through_its_dict_form() -> None:
    """What the registry stores is what it reads back."""
    assert Signature.from_dict(SIG.to_dict()) == SIG
    assert SIG.grid_size == 6


@pytest.mark.parametrize(
    ("feature", "needle"),
    [
        (NumericFeature("b", (10.0,), (12.0, 15.0), 0, 20), "representative 0 (12)"),
        (NumericFeature("b", (10.0, 20.0), (5.0, 25.0, 30.0), 0, 30), "representative 1 (25)"),
        (NumericFeature("b", (10.0,), (5.0, math.inf), 0, 20), "not a finite number"),
        (NumericFeature("b", (10.0,), (5.0, 15.0), 20, 0), "lower 20 is above upper 0"),
    ],
)
def test_a_representative_outside_its_bin_is_invalid_argument_naming_it(
    feature: NumericFeature, needle: str
) -> None:
    """A hand-written signature is held to the derived one's rules: each representative lies
    in its own bin (it stands for every input of it), the bounds are ordered; the violation
    names the feature's field and the value."""
    with pytest.raises(InvalidArgument) as err:
        Signature((feature,))
    assert needle in err.value.message
    assert err.value.violations[0].field.startswith("signature.features.b.")


def test_the_edge_itself_is_a_valid_representative_of_the_bin_it_opens() -> None:
    """Bin i holds e[i-1] <= x < e[i]: its own left edge may represent it."""
    assert Signature((NumericFeature("b", (10.0,), (0.0, 10.0), 0, 20),)).grid_size == 2


def test_open_bounds_stay_open() -> None:
    """A signature without lower/upper clamps nothing on that side (a missing bound is not
    0.0), keeps its bounds open through to_dict/from_dict, and the protobuf form too."""
    from rowcast.convert import signature_from_pb, signature_to_pb

    open_both = Signature((NumericFeature("b", (10.0, 20.0), (5.0, 15.0, 25.0)),))
    assert open_both.bin({"b": 1e9}).clamped == ()
    assert open_both.bin({"b": -1e9}).clamped == ()
    assert Signature.from_dict(open_both.to_dict()) == open_both
    assert "lower" not in open_both.to_dict()["features"][0]
    assert signature_from_pb(signature_to_pb(open_both)) == open_both
    lower_only = Signature((NumericFeature("b", (10.0,), (5.0, 15.0), lower=0.0),))
    assert lower_only.bin({"b": 1e6}).clamped == ()
    assert lower_only.bin({"b": -1.0}).clamped == ("b",)
    assert signature_from_pb(signature_to_pb(lower_only)) == lower_only


def test_a_stored_signature_registered_under_older_rules_stays_readable() -> None:
    """The registry's JSON of a model registered before representatives were checked (a
    representative on the wrong side of its edge) still loads, so the model keeps serving;
    a structurally broken one does not."""
    old = {
        "features": [
            {"name": "b", "type": "numeric", "edges": [0.0, 10.0],
             "representatives": [0.0, 5.0, 15.0], "lower": 0.0, "upper": 20.0}
        ]
    }  # fmt: skip
    assert Signature.from_dict(old).grid_size == 3
    stored = Signature.from_dict(old)
    assert stored.bin({"b": 12.0}) == stored._bin_valid({"b": 12.0}) == BinnedInput((2,), ())
    with pytest.raises(InvalidArgument):
        Signature(Signature.from_dict(old).features)
    old["features"][0]["representatives"] = [0.0]
    with pytest.raises(InvalidArgument, match="one per bin"):
        Signature.from_dict(old)


@st.composite
def signatures_and_inputs(draw: st.DrawFn) -> tuple[Signature, dict[str, RawValue]]:
    """A signature of up to 4 features of both kinds, and an input that is mostly well formed
    but may miss, add or mistype features, or carry non-finite, bool or unknown values."""
    features: list[Feature] = []
    for i in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            edges = sorted(set(draw(st.lists(edge_values, min_size=1, max_size=8))))
            lo = draw(st.none() | finite)
            hi = draw(
                st.none()
                | (
                    finite
                    if lo is None
                    else st.floats(min_value=lo, allow_nan=False, allow_infinity=False)
                )
            )
            features.append(NumericFeature(f"n{i}", tuple(edges), (edges[0] - 1.0, *edges), lo, hi))
        else:
            vocabulary = draw(st.lists(st.text(max_size=3), min_size=1, max_size=4, unique=True))
            features.append(CategoricalFeature(f"c{i}", tuple(vocabulary), draw(st.booleans())))
    signature = Signature(tuple(features))
    raw: dict[str, RawValue] = {}
    for f in features:
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        if isinstance(f, NumericFeature):
            near = [
                p + d
                for p in (*f.edges, f.lower, f.upper)
                if p is not None
                for d in (-0.5, 0.0, 0.5)
            ]
            raw[f.name] = draw(
                st.sampled_from(near)
                | st.floats(width=64)
                | st.integers(-(10**6), 10**6)
                | st.booleans()
                | st.text(max_size=2)
            )
        else:
            raw[f.name] = draw(st.sampled_from(f.vocabulary) | st.text(max_size=3) | finite)
    if draw(st.integers(0, 9)) == 0:
        raw["extra"] = 1.0
    return signature, raw


@given(signatures_and_inputs())
def test_the_fast_path_bins_as_the_explaining_path_or_leaves_the_input_to_it(
    case: tuple[Signature, dict[str, RawValue]],
) -> None:
    """Signature.bin answers well-formed inputs in one pass (_bin_valid) and everything else
    through the path that names each bad field: where the fast path answers, the other gives
    the same bins and clamping; where it declines, bin() still answers or raises as before."""
    signature, raw = case
    _same_answers(signature, raw)
    _same_answers(Signature.from_dict(signature.to_dict()), raw)  # as the registry loads it


def _same_answers(signature: Signature, raw: dict[str, RawValue]) -> None:
    fast = signature._bin_valid(raw)
    try:
        explained = signature._bin_or_explain(raw)
    except InvalidArgument:
        assert fast is None
        with pytest.raises(InvalidArgument):
            signature.bin(raw)
        return
    assert signature.bin(raw) == explained
    if fast is not None:
        assert fast == explained


def test_the_fast_path_takes_every_well_formed_input() -> None:
    """Plain floats, ints and known categories (and an unknown one with an OOV bin) never fall
    back to the slower path."""
    signature = Signature(
        (
            NumericFeature("x", (0.0, 10.0), (-1.0, 5.0, 15.0), lower=-5.0, upper=20.0),
            CategoricalFeature("c", ("a", "b"), oov_bucket=True),
        )
    )
    cases: list[dict[str, RawValue]] = [
        {"x": 3.0, "c": "a"},
        {"x": 30, "c": "zzz"},
        {"x": -7.5, "c": "b"},
        {"x": 20.5, "c": "a"},
    ]
    for raw in cases:
        assert signature._bin_valid(raw) == signature._bin_or_explain(raw)
    assert signature._bin_valid({"x": 30, "c": "zzz"}).clamped == ("x",)  # type: ignore[union-attr]
