"""Predict through the real client, servers and HBase; every decision is audited; augment."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from rowcast.core.keys import key_bins
from rowcast.jobs.train import representative_matrix
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import (
    AsyncRowcastClient,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from tests.integration.conftest import MODEL, Published, Suite, audited

CUSTOMER: dict[str, float | str] = {"balance": 1_800.0, "income": 30_000.0, "student": "No"}


async def test_predict_answers_with_the_model_output_for_the_binned_inputs(
    client: AsyncRowcastClient, published: Published
) -> None:
    """The served output is the real model's output at the representative values of the bins."""
    r = await client.predict(MODEL, CUSTOMER, subject="cust-42")
    assert r.model_version == published.v1.version.version
    # Earlier tests may have cached this key: the cache and HBase must agree (test_prediction_
    # serving checks which source answers on a fresh server).
    assert r.source in (pb.PREDICTION_SOURCE_HBASE, pb.PREDICTION_SOURCE_CACHE)
    assert len(r.decision_id) == 32
    booster = lgb.Booster(model_file=str(published.v1.model_file))
    bins = np.array([key_bins(bytes.fromhex(r.key))])
    expected = booster.predict(representative_matrix(published.v1.model.signature, bins))[0]
    assert r.output == pytest.approx(float(expected), abs=1e-12)
    assert list(r.clamped_features) == []


async def test_out_of_range_inputs_are_clamped_and_said(client: AsyncRowcastClient) -> None:
    """A balance beyond the training range is answered from the edge bin and reported."""
    r = await client.predict(MODEL, {**CUSTOMER, "balance": 1e9})
    assert list(r.clamped_features) == ["balance"]


async def test_every_prediction_is_audited_with_all_fields(client: AsyncRowcastClient) -> None:
    """GetDecision returns the decision with subject, inputs, key, output and version."""
    r = await client.predict(MODEL, CUSTOMER, subject="cust-audit")
    d = await audited(client, r.decision_id)
    assert d.decision_id == r.decision_id
    assert d.subject == "cust-audit"
    assert d.model == MODEL and d.model_version == r.model_version
    assert d.output == r.output and d.key == r.key
    assert d.features["balance"].number_value == 1_800.0
    assert d.features["student"].string_value == "No"
    assert d.source == r.source
    assert d.decide_time.seconds > 0


async def test_list_decisions_by_subject_pages_newest_first(client: AsyncRowcastClient) -> None:
    """Three decisions about one subject come back newest first, two per page."""
    ids = []
    for balance in (500.0, 1_000.0, 1_500.0):
        ids.append(
            (
                await client.predict(MODEL, {**CUSTOMER, "balance": balance}, subject="cust-pages")
            ).decision_id
        )
    for decision_id in ids:
        await audited(client, decision_id)
    first = await client.list_decisions("cust-pages", page_size=2)
    assert [d.decision_id for d in first.decisions] == ids[::-1][:2]
    assert first.next_page_token
    second = await client.list_decisions(
        "cust-pages", page_size=2, page_token=first.next_page_token
    )
    assert [d.decision_id for d in second.decisions] == ids[:1]
    assert second.next_page_token == ""
    other = await client.list_decisions("nobody-has-this-subject")
    assert list(other.decisions) == []


async def test_augment_keeps_history(client: AsyncRowcastClient, suite: Suite) -> None:
    """Two augmentations of one decision are both kept, oldest first: a proposal, then its
    approval by another identity (better output 0: the proposal's), which names it; each
    actor recorded is the authenticated caller."""
    r = await client.predict(MODEL, CUSTOMER, subject="cust-aug")
    await audited(client, r.decision_id)
    await client.augment(r.decision_id, 1.0, actor="", reason="defaulted")
    async with AsyncRowcastClient(suite.targets_as("approver.token"), timeout_s=5.0) as approver:
        response = await approver.augment(
            r.decision_id,
            0.0,
            actor="",
            source=pb.AUGMENTATION_SOURCE_PROGRAM,
            state=pb.AUGMENTATION_STATE_APPROVED,
            reason="paid in full",
        )
    d = response.decision
    assert [(a.actor, a.better_output) for a in d.augmentations] == [
        ("tester", 1.0),
        ("approver-1", 1.0),
    ]
    assert d.augmentations[1].reviewed_augmentation_id == d.augmentations[0].augmentation_id
    assert d.augmentations[0].state == pb.AUGMENTATION_STATE_PROPOSED
    assert d.augmentations[1].source == pb.AUGMENTATION_SOURCE_PROGRAM
    again = await client.get_decision(r.decision_id)
    assert len(again.augmentations) == 2


async def test_augment_rejects_bad_input_and_unknown_decisions(client: AsyncRowcastClient) -> None:
    """Unknown decision: NOT_FOUND; an actor other than the caller: PERMISSION_DENIED naming
    the field; an approval by a caller without the approver role: PERMISSION_DENIED naming
    the role."""
    with pytest.raises(NotFoundError):
        await client.augment("0" * 32, 1.0, actor="")
    r = await client.predict(MODEL, CUSTOMER)
    await audited(client, r.decision_id)
    with pytest.raises(PermissionDeniedError, match=r"augmentation\.actor"):
        await client.augment(r.decision_id, 1.0, actor="alice")
    with pytest.raises(PermissionDeniedError, match="needs role approver"):
        await client.augment(r.decision_id, 1.0, actor="", state=pb.AUGMENTATION_STATE_APPROVED)
    with pytest.raises(InvalidArgumentError) as err:
        await client.get_decision("not-an-id")
    assert err.value.violations[0].field == "decision_id"


@pytest.mark.parametrize(
    ("features", "fields"),
    [
        ({"balance": 1.0, "income": 2.0}, ["features.student"]),
        ({**CUSTOMER, "age": 40.0}, ["features.age"]),
        ({**CUSTOMER, "balance": "lots"}, ["features.balance"]),
        ({**CUSTOMER, "student": 1.0}, ["features.student"]),
        ({**CUSTOMER, "student": "Maybe"}, ["features.student"]),
    ],
)
async def test_bad_features_are_invalid_argument_naming_the_field(
    client: AsyncRowcastClient, features: dict[str, float | str], fields: list[str]
) -> None:
    """Missing, extra or ill-typed features: INVALID_ARGUMENT with BadRequest details."""
    with pytest.raises(InvalidArgumentError) as err:
        await client.predict(MODEL, features)
    assert [v.field for v in err.value.violations] == fields


async def test_unknown_model_is_not_found(client: AsyncRowcastClient) -> None:
    """A model nobody registered: NOT_FOUND with reason MODEL_NOT_FOUND."""
    with pytest.raises(NotFoundError) as err:
        await client.predict("no_such_model", CUSTOMER)
    assert err.value.reason == "MODEL_NOT_FOUND"
    with pytest.raises(InvalidArgumentError) as bad:
        await client.predict("Not A Name!", CUSTOMER)
    assert bad.value.violations[0].field == "model"
