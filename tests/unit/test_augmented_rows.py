"""Approved augmentations become weighted training rows: which review counts, the soft label,
and what is left out (with the reason counted)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.core.records import (
    Augmentation,
    AugmentationSource,
    AugmentationState,
    Decision,
    Source,
)
from rowcast.core.signature import CategoricalFeature, NumericFeature, RawValue, Signature
from rowcast.jobs.augmented import WEIGHT, AugmentedRows, combine, input_rows, verdict

SIG = Signature(
    (
        NumericFeature("balance", (10.0, 20.0), (5.0, 15.0, 25.0), 0.0, 30.0),
        CategoricalFeature("student", ("No", "Yes")),
    )
)
APPROVED, REJECTED, PROPOSED = (
    AugmentationState.APPROVED,
    AugmentationState.REJECTED,
    AugmentationState.PROPOSED,
)


def aug(better: float, state: AugmentationState) -> Augmentation:
    return Augmentation("a", better, AugmentationSource.PERSON, "ana", "r", state, 0)


def decision(
    *augs: Augmentation, features: dict[str, RawValue] | None = None, output: float = 0.5
) -> Decision:
    return Decision(
        decision_id="d",
        model="m",
        model_version=1,
        subject="s",
        features={"balance": 12.0, "student": "Yes"} if features is None else features,
        key_hex="00",
        output=output,
        source=Source.HBASE,
        decide_time_ms=0,
        augmentations=augs,
    )


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ((), None),
        ((aug(1.0, PROPOSED),), None),
        ((aug(1.0, APPROVED),), 1.0),
        ((aug(1.0, APPROVED), aug(0.0, PROPOSED)), 1.0),
        ((aug(1.0, APPROVED), aug(0.0, REJECTED)), None),
        ((aug(0.0, REJECTED), aug(0.2, APPROVED)), 0.2),
        ((aug(0.9, APPROVED), aug(0.1, APPROVED)), 0.1),
    ],
)
def test_the_latest_review_decides(
    history: tuple[Augmentation, ...], expected: float | None
) -> None:
    """Pending proposals never override a review; the newest approval or rejection wins."""
    assert verdict(decision(*history)) == expected


@given(st.floats(min_value=0.0, max_value=1.0))
def test_a_soft_label_becomes_rows_whose_weighted_mean_is_the_label(p: float) -> None:
    rows = AugmentedRows(SIG, "default")
    rows.add([decision(aug(p, APPROVED))])
    frame = rows.frame()
    assert rows.approved == 1
    assert frame[WEIGHT].sum() == pytest.approx(1.0)
    assert (frame[WEIGHT] > 0).all()
    assert (frame[WEIGHT] * frame["default"]).sum() == pytest.approx(p)
    assert len(frame) == (1 if p in (0.0, 1.0) else 2)
    assert set(frame["student"]) == {"Yes"} and set(frame["balance"]) == {12.0}


def test_left_out_decisions_are_counted_by_reason() -> None:
    heldout = pd.DataFrame({"balance": [12.0], "student": ["Yes"], "default": [1]})
    rows = AugmentedRows(SIG, "default", input_rows(SIG, heldout))
    rows.add(
        [
            decision(aug(1.0, APPROVED)),  # the held-out row's inputs
            decision(aug(1.0, APPROVED), features={"student": "No"}),
            decision(aug(1.0, APPROVED), features={"balance": "x", "student": "No"}),
            decision(aug(1.0, PROPOSED), features={"balance": 3.0, "student": "No"}),
            decision(aug(0.0, APPROVED), features={"balance": 3.0, "student": "No"}),
        ]
    )
    assert rows.scanned == 5
    assert rows.approved == 1
    assert rows.skipped == {
        "inputs equal a held-out row": 1,
        "input 'balance' missing": 1,
        "input 'balance' is not a number": 1,
    }
    frame = rows.frame()
    assert frame[["balance", "student", "default", WEIGHT]].values.tolist() == [[3.0, "No", 0, 1.0]]


def test_original_rows_come_first_with_weight_one() -> None:
    original = pd.DataFrame({"balance": [1.0, 2.0], "student": ["No", "Yes"], "default": [0, 1]})
    rows = AugmentedRows(SIG, "default")
    rows.add([decision(aug(0.25, APPROVED))])
    combined = combine(original, rows.frame(), ["balance", "student", "default"])
    assert combined[WEIGHT].tolist() == [1.0, 1.0, 0.25, 0.75]
    assert combined["default"].tolist() == [0, 1, 1, 0]
