"""Registry hygiene through the real client: a retired version says who retired it, when and
that its table is gone; retirements and a model's deletion appear in its history beside
activations; a model that still serves cannot be deleted; a deleted model's version numbers are
never reused."""

from __future__ import annotations

import pytest

from rowcast.config import Settings
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import AsyncRowcastClient, FailedPreconditionError, NotFoundError
from tests.integration.conftest import MODEL, Published, registered_version


async def _new_model(client: AsyncRowcastClient, name: str) -> None:
    """A model with the demo model's signature, under another name."""
    model = pb.Model()
    model.CopyFrom(await client.get_model(MODEL))
    fresh = pb.Model(
        name=name,
        description="registry hygiene test",
        signature=model.signature,
        output=model.output,
    )
    await client.register_model(fresh)


async def test_retire_and_delete_are_recorded_and_numbers_never_reused(
    client: AsyncRowcastClient, settings: Settings, published: Published
) -> None:
    name = "hygiene_model"
    await _new_model(client, name)
    v1 = await registered_version(settings, name)
    v2 = await registered_version(settings, name)

    retired = await client.retire_version(name, v1, actor="")
    assert retired.state == pb.VERSION_STATE_RETIRED
    assert retired.retired_by == "tester"
    assert retired.retire_time.seconds > 0
    assert retired.table_dropped
    assert (await client.get_version(name, v1)).table_dropped

    assert await client.delete_model(name, reason="experiment over") == [v2]
    with pytest.raises(NotFoundError):
        await client.get_model(name)
    assert name not in {m.name for m in await client.list_models()}

    # The records and history stay, in order: retirement, then deletion.
    gone = await client.get_version(name, v2)
    assert (gone.state, gone.retired_by, gone.table_dropped) == (
        pb.VERSION_STATE_RETIRED,
        "tester",
        True,
    )
    await _new_model(client, name)  # the name may be registered again...
    history = await client.list_activations(name)
    kinds = [a.kind for a in history]
    assert kinds[:2] == [model_pb.HISTORY_KIND_DELETION, model_pb.HISTORY_KIND_RETIREMENT]
    deletion, retirement = history[0], history[1]
    assert (deletion.actor, deletion.reason) == ("tester", "experiment over")
    assert (retirement.from_version, retirement.to_version, retirement.actor) == (v1, 0, "tester")
    # ...and its next version number continues after the deleted ones.
    assert await registered_version(settings, name) == v2 + 1
    await client.delete_model(name)


async def test_a_model_that_serves_cannot_be_deleted(
    client: AsyncRowcastClient, published: Published
) -> None:
    """The demo model has a current version: FAILED_PRECONDITION naming the alias, and nothing
    changes."""
    with pytest.raises(FailedPreconditionError) as err:
        await client.delete_model(MODEL)
    assert "current" in err.value.message
    assert (await client.get_model(MODEL)).current_version == published.v1.version.version


async def test_activations_are_labelled_by_kind(
    client: AsyncRowcastClient, published: Published
) -> None:
    """Every entry of the demo model's history says what it was."""
    history = await client.list_activations(MODEL)
    assert history and all(a.kind != model_pb.HISTORY_KIND_UNSPECIFIED for a in history)
