"""An audit that cannot be rewritten, against the real suite (TLS, tokens, HBase): a decision
re-recorded with other content is refused and leaves the indexes consistent, and `rowcast
audit verify` passes a clean table and finds a cell changed, a row removed and rows inserted
through happybase behind rowcast's back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import pytest_asyncio
from click.testing import CliRunner

from rowcast.config import Settings
from rowcast.core.keys import audit_key, new_decision_id
from rowcast.store.client import HBaseClient
from rowcast.store.schema import AUDIT, AUDIT_SALT_BUCKETS
from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import audit_service_pb2_grpc as audit_grpc
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.audit_cmd import audit
from rowcast_client import AsyncRowcastClient
from rowcast_client.channel import aio_channel
from tests.integration.conftest import MODEL, Published, Suite, audited, credentials, service_env

CUSTOMER: dict[str, float | str] = {"balance": 1_500.0, "income": 35_000.0, "student": "No"}


@dataclass(frozen=True)
class Served:
    since: str
    decisions: list[pb.Decision]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(suite: Suite, published: Published) -> AsyncIterator[Served]:
    """Twelve decisions served one after the other (consecutive places in the prediction
    server's chain), each waited for in the audit table."""
    since = datetime.fromtimestamp(time.time() - 1, tz=UTC).isoformat()
    async with AsyncRowcastClient(suite.targets, timeout_s=5.0) as client:
        ids = [
            (await client.predict(MODEL, CUSTOMER, subject=f"integrity-{i}")).decision_id
            for i in range(12)
        ]
        decisions = [await audited(client, i) for i in ids]
        # A decision's row is readable a moment before its index rows are written: wait until
        # the counts stop moving.
        counts: list[object] = []
        while len(counts) < 2 or counts[-1] != counts[-2]:
            await asyncio.sleep(0.3)
            counts.append(await client.count_decisions(MODEL))
        yield Served(since, decisions)


def run_verify(settings: Settings, since: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        audit,
        ["verify", "--since", since, "--model", MODEL, "--json"],
        env=service_env(settings),
        catch_exceptions=False,
    )
    return result.exit_code, json.loads(result.stdout)


async def test_each_decision_carries_its_chain_link(served: Served) -> None:
    """Decisions served one after the other have consecutive places in one chain, with tags."""
    links = [d.chain for d in served.decisions]
    assert len({link.chain_id for link in links}) == 1
    sequences = [link.sequence for link in links]
    assert sequences == list(range(sequences[0], sequences[0] + len(links)))
    assert all(len(link.tag) == 64 for link in links)


async def test_a_rerecorded_decision_with_new_content_is_refused(
    suite: Suite, served: Served, published: Published
) -> None:
    """RecordDecisions of a stored id with another output under another version:
    ALREADY_EXISTS naming decisions[0].decision_id; nothing changes, and CountDecisions still
    equals the rows ListDecisions returns for each version. The same content again is OK."""
    original = served.decisions[0]
    v2 = published.v2.version.version
    forged = pb.Decision()
    forged.CopyFrom(original)
    forged.output, forged.model_version = 0.987, v2
    del forged.augmentations[:]
    again = pb.Decision()
    again.CopyFrom(original)
    del again.augmentations[:]
    target = f"127.0.0.1:{suite.audit.port}"
    async with AsyncRowcastClient(suite.targets, timeout_s=5.0) as client:
        before = {c.model_version: c.decision_count for c in await client.count_decisions(MODEL)}
        async with aio_channel(target, credentials(suite.security)) as channel:
            stub = audit_grpc.AuditServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.RecordDecisions(
                    audit_pb.RecordDecisionsRequest(decisions=[forged]), timeout=10
                )
            assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
            assert "decisions[0].decision_id" in (e.value.details() or "")
            replay = await stub.RecordDecisions(
                audit_pb.RecordDecisionsRequest(decisions=[again]), timeout=10
            )
            assert replay.recorded_count == 1
        stored = await client.get_decision(original.decision_id)
        assert (stored.output, stored.model_version) == (original.output, original.model_version)
        counts = {c.model_version: c.decision_count for c in await client.count_decisions(MODEL)}
        assert counts == before
        for version in (original.model_version, v2):
            listed, token = 0, ""
            while True:
                page = await client.list_decisions(
                    model=MODEL, model_version=version, page_size=1000, page_token=token
                )
                listed += len(page.decisions)
                if version == v2:
                    assert original.decision_id not in {d.decision_id for d in page.decisions}
                token = page.next_page_token
                if not token:
                    break
            assert listed == counts.get(version, 0)


async def test_verify_passes_a_clean_table_and_finds_each_forgery(
    settings: Settings, served: Served
) -> None:
    """A clean table: exit 0, no problem. Then, through happybase: one output cell changed,
    one row deleted, one row inserted without a link and one with a copied link: verify exits
    1 and names each (changed, removed at the next record, inserted twice). Restored, it
    passes again."""
    code, report = await asyncio.to_thread(run_verify, settings, served.since)
    assert code == 0, report
    assert report["problems"] == [] and report["records"] >= len(served.decisions)

    ids = [d.decision_id for d in served.decisions]
    client = HBaseClient(settings.hbase)
    conn = client.connect(30.0)
    conn.open()
    table = conn.table(AUDIT)

    def key(decision_id: str) -> bytes:
        return audit_key(decision_id, AUDIT_SALT_BUCKETS)

    changed, removed, after_removed = ids[3], ids[6], ids[7]
    removed_row = table.row(key(removed))
    original_output = table.row(key(changed), columns=[b"d:output"])[b"d:output"]
    unlinked, copied = new_decision_id(), new_decision_id()
    try:
        table.put(key(changed), {b"d:output": b"0.999"})
        table.delete(key(removed))
        template = {c: v for c, v in table.row(key(ids[8])).items() if c.startswith(b"d:")}
        table.put(
            key(unlinked),
            {c: v for c, v in template.items() if c != b"d:chain"} | {b"d:id": unlinked.encode()},
        )
        table.put(key(copied), template | {b"d:id": copied.encode()})

        code, report = await asyncio.to_thread(run_verify, settings, served.since)
        assert code == 1
        found = {(p["decision_id"], p["problem"]) for p in report["problems"]}
        assert found == {
            (changed, "changed"),
            (after_removed, "removed"),
            (unlinked, "inserted"),
            (copied, "inserted"),
        }, report
    finally:
        later = int(time.time() * 1000) + 10_000
        table.put(key(changed), {b"d:output": original_output}, timestamp=later)
        table.put(key(removed), removed_row, timestamp=later)
        table.delete(key(unlinked))
        table.delete(key(copied))
        conn.close()
        client.close()
    code, report = await asyncio.to_thread(run_verify, settings, served.since)
    assert code == 0, report
