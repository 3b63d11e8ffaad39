"""The hot path's quick constructors (Decision.made, Answer.of) build the same frozen records
as the dataclasses' own `__init__`: every field set, equal, still immutable."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.core.records import Answer, Decision, FallbackRule, Source

texts = st.text(max_size=12)
features = st.dictionaries(texts, st.one_of(texts, st.floats(allow_nan=False), st.integers()))


@given(
    texts, texts, st.integers(0, 2**31), texts, features, texts, st.floats(allow_nan=False),
    st.sampled_from(Source), st.integers(0, 2**47),
    st.lists(texts, max_size=3).map(tuple),
    st.lists(st.sampled_from(FallbackRule), max_size=2).map(tuple),
)  # fmt: skip
def test_quick_constructors_build_the_same_records(
    decision_id: str,
    model: str,
    version: int,
    subject: str,
    raw: dict[str, float | int | str],
    key_hex: str,
    output: float,
    source: Source,
    now_ms: int,
    clamped: tuple[str, ...],
    rules: tuple[FallbackRule, ...],
) -> None:
    args = (decision_id, model, version, subject, raw, key_hex, output, source, now_ms)
    made = Decision.made(*args)
    assert made == Decision(*args)
    assert set(vars(made)) == {f.name for f in dataclasses.fields(Decision)}
    answer = Answer.of(made, clamped, rules)
    assert answer == Answer(output, version, decision_id, source, key_hex, clamped, rules)
    assert set(vars(answer)) == {f.name for f in dataclasses.fields(Answer)}


def test_quickly_built_records_stay_frozen() -> None:
    made = Decision.made("ab" * 16, "m", 1, "s", {"x": 1.0}, "00", 0.5, Source.CACHE, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.output = 0.9  # type: ignore[misc]
    answer = Answer.of(made, (), ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.output = 0.9  # type: ignore[misc]
    assert dataclasses.replace(made, output=0.9).output == 0.9
