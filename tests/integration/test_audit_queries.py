"""ListDecisions by subject, model version, input key and time range (newest first, paged),
CountDecisions per version and augmentation state, and augmentation checks, on a real HBase.
Decisions are made up with chosen times and versions and delivered the production way
(AuditSink -> spool -> StreamDecisions -> HBase)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict, Unpack, cast

import pytest
import pytest_asyncio

from rowcast.config import Settings
from rowcast.core.records import Decision
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient, InvalidArgumentError, Targets
from tests.integration.audit_helpers import made_up, start_audit
from tests.integration.conftest import MODEL, Published

V_A, V_B, V_NOW = 9101, 9102, 9103
KEY = "0f0e0d0c0b"
#: Ten days ago, on a whole second: no other test makes decisions then.
T0 = (int(time.time()) - 10 * 86_400) * 1000


class Selection(TypedDict, total=False):
    """The ListDecisions selection a test asks for (keyword arguments of list_decisions)."""

    subject: str
    model: str
    model_version: int
    key: str
    start_time: datetime
    end_time: datetime


@dataclass(frozen=True)
class World:
    client: AsyncRowcastClient
    decisions: list[Decision]
    #: Made now (other version, subject and key): newer than every decision of `decisions`.
    now: Decision

    def newest_first(self, keep: Callable[[Decision], bool]) -> list[str]:
        chosen = [d for d in self.decisions if keep(d)]
        return [d.decision_id for d in sorted(chosen, key=lambda d: d.decision_id, reverse=True)]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp((T0 + seconds * 1000) / 1000, tz=UTC)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    settings: Settings, published: Published, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    audit = await start_audit(settings)
    target = f"127.0.0.1:{audit.port}"
    spool: Path = tmp_path_factory.mktemp("query-spool")
    sink = AuditSink(target, SpoolConfig(spool))
    await sink.start()
    decisions = [
        made_up(
            MODEL,
            V_A if i % 3 else V_B,
            subject="q-subject" if i % 2 else "q-other",
            key_hex=KEY if i % 5 == 0 else "0a00010002",
            time_ms=T0 + i * 1000,
            output=0.1,
        )
        for i in range(30)
    ]
    now = made_up(MODEL, V_NOW, subject="q-now", key_hex="0b0b0b0b0b", output=0.1)
    await sink.record([*decisions, now])
    try:
        async with AsyncRowcastClient(Targets(audit=target), 10.0) as client:
            await asyncio.wait_for(sink.delivered(), 60)
            yield World(client, decisions, now)
    finally:
        await sink.stop(2.0)
        await audit.stop(0.5)


async def all_pages(
    client: AsyncRowcastClient, page_size: int, **selection: Unpack[Selection]
) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page = await client.list_decisions(page_size=page_size, page_token=token, **selection)
        assert len(page.decisions) <= page_size
        ids.extend(d.decision_id for d in page.decisions)
        token = page.next_page_token
        if not token:
            return ids


async def test_list_by_model_version_pages_newest_first(world: World) -> None:
    """One version's decisions, merged over every salt bucket, newest first, 7 per page."""
    got = await all_pages(world.client, 7, model=MODEL, model_version=V_A)
    assert got == world.newest_first(lambda d: d.model_version == V_A)
    assert len(got) == 20


async def test_list_by_input_key(world: World) -> None:
    """Decisions about one encoded input key, whatever version served them."""
    got = await all_pages(world.client, 4, model=MODEL, key=KEY)
    assert got == world.newest_first(lambda d: d.key_hex == KEY)
    assert len(got) == 6


async def test_list_by_time_range_alone_and_combined(world: World) -> None:
    """[start, end) on the whole audit table, and inside a version and a subject selection."""
    start, end = at(5), at(17)

    def in_range(d: Decision) -> bool:
        return T0 + 5000 <= d.decide_time_ms < T0 + 17_000

    got = await all_pages(world.client, 5, start_time=start, end_time=end)
    assert got == world.newest_first(in_range)
    got = await all_pages(
        world.client, 3, model=MODEL, model_version=V_B, start_time=start, end_time=end
    )
    assert got == world.newest_first(lambda d: in_range(d) and d.model_version == V_B)
    got = await all_pages(world.client, 2, subject="q-subject", start_time=start)
    assert got == world.newest_first(
        lambda d: d.subject == "q-subject" and d.decide_time_ms >= T0 + 5000
    )


async def test_list_everything_starts_with_the_newest(world: World) -> None:
    """Without a selection, the first page holds the newest decisions of the whole audit."""
    page = await world.client.list_decisions(page_size=3)
    assert len(page.decisions) == 3
    ids = [d.decision_id for d in page.decisions]
    assert ids == sorted(ids, reverse=True)
    # Other tests may have made newer decisions still; none is older than `now`.
    assert ids[0] >= world.now.decision_id > max(d.decision_id for d in world.decisions)


@pytest.mark.parametrize(
    ("selection", "field"),
    [
        ({"subject": "x", "model": MODEL, "model_version": V_A}, "model"),
        ({"model_version": V_A}, "model"),
        ({"model": MODEL}, "model_version"),
        ({"model": MODEL, "key": "zz"}, "key"),
        ({"model": MODEL, "key": KEY, "model_version": V_A}, "model_version"),
        ({"start_time": at(10), "end_time": at(5)}, "end_time"),
    ],
)
async def test_selections_that_do_not_fit_are_invalid_argument(
    world: World, selection: Selection, field: str
) -> None:
    """Unsupported combinations and malformed values name the field."""
    with pytest.raises(InvalidArgumentError) as err:
        await world.client.list_decisions(**selection)
    assert err.value.violations[0].field == field


async def test_a_page_token_only_continues_its_own_selection(world: World) -> None:
    """A token from one selection is INVALID_ARGUMENT for another."""
    page = await world.client.list_decisions(model=MODEL, model_version=V_A, page_size=2)
    with pytest.raises(InvalidArgumentError) as err:
        await world.client.list_decisions(
            model=MODEL, model_version=V_B, page_token=page.next_page_token
        )
    assert err.value.violations[0].field == "page_token"


async def test_counts_per_version_and_latest_augmentation_state(world: World) -> None:
    """Counts by version; an augmented decision counts under its latest augmentation's state."""
    of_b = [d for d in world.decisions if d.model_version == V_B]
    c = world.client
    await c.augment(of_b[0].decision_id, 1.0, actor="a", state=pb.AUGMENTATION_STATE_PROPOSED)
    await c.augment(of_b[0].decision_id, 1.0, actor="b", state=pb.AUGMENTATION_STATE_APPROVED)
    await c.augment(of_b[1].decision_id, 0.0, actor="b")
    await c.augment(of_b[1].decision_id, 0.0, actor="a", state=pb.AUGMENTATION_STATE_REJECTED)
    await c.augment(of_b[2].decision_id, 0.0, actor="a")
    counts = {x.model_version: x for x in await c.count_decisions(MODEL)}
    b = counts[V_B]
    assert (b.decision_count, b.approved_count, b.rejected_count, b.proposed_count) == (
        len(of_b),
        1,
        1,
        1,
    )
    assert b.unaugmented_count == len(of_b) - 3
    assert counts[V_A].decision_count == 20 and counts[V_A].unaugmented_count == 20
    versions = [x.model_version for x in await c.count_decisions(MODEL)]
    assert versions == sorted(versions, reverse=True)


async def test_a_better_output_of_the_wrong_kind_is_invalid_argument(world: World) -> None:
    """credit_default outputs a probability: 1.5 is refused, naming the field."""
    with pytest.raises(InvalidArgumentError) as err:
        await world.client.augment(world.decisions[0].decision_id, 1.5, actor="alice")
    assert [v.field for v in err.value.violations] == ["augmentation.better_output"]


async def test_an_unknown_augmentation_state_is_invalid_argument(world: World) -> None:
    """A state number the contract does not define is refused by the server (the client does
    not check it), naming augmentation.state, and nothing is recorded."""
    decision = next(d for d in world.decisions if d.model_version == V_A)
    # Not a member of the enum, which is what the test sends; the wire carries any number.
    unknown = cast(pb.AugmentationState.ValueType, 99)
    with pytest.raises(InvalidArgumentError) as err:
        await world.client.augment(decision.decision_id, 1.0, actor="alice", state=unknown)
    assert [v.field for v in err.value.violations] == ["augmentation.state"]
    stored = await world.client.get_decision(decision.decision_id)
    assert list(stored.augmentations) == []
