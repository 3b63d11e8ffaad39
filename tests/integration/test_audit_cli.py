"""`rowcast audit augment --file` and `rowcast audit export` against real servers and HBase:
every row of a bulk file is accepted or rejected with its reason; an export holds the
decisions with inputs, served and better outputs, versions and times."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

# pyarrow ships no type information (no stubs, no py.typed).
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from click.testing import CliRunner, Result

from rowcast.apps import start_model_server
from rowcast.config import Settings
from rowcast.core.records import Decision
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.audit_cmd import audit
from rowcast_client import AsyncRowcastClient, Targets
from tests.integration.audit_helpers import made_up, start_audit
from tests.integration.conftest import MODEL, Published

VERSION = 9201


@dataclass(frozen=True)
class Env:
    client: AsyncRowcastClient
    env: dict[str, str]
    decisions: list[Decision]

    async def run(self, *args: str) -> Result:
        # The CLI runs its own event loop: give it a thread so the servers here keep serving.
        return await asyncio.to_thread(
            CliRunner().invoke, audit, list(args), env=self.env, catch_exceptions=False
        )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cli_env(
    settings: Settings, published: Published, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Env]:
    audit_server = await start_audit(settings)
    # Plain text like start_audit: the CLI calls both the same way (ROWCAST_INSECURE below).
    model_server = await start_model_server(
        dataclasses.replace(settings, security=settings.security.insecure()), 0
    )
    target = f"127.0.0.1:{audit_server.port}"
    sink = AuditSink(target, SpoolConfig(tmp_path_factory.mktemp("cli-spool")))
    await sink.start()
    decisions = [made_up(MODEL, VERSION, subject=f"cli-{i}", output=0.2) for i in range(6)]
    await sink.record(decisions)
    await asyncio.wait_for(sink.delivered(), 60)
    env = {
        # start_audit serves plain text without authentication (made-up model versions, no
        # registry check): the CLI must call it the same way.
        "ROWCAST_INSECURE": "on",
        "ROWCAST_HOST": "127.0.0.1",
        "ROWCAST_AUDIT_PORT": str(audit_server.port),
        "ROWCAST_MODEL_PORT": str(model_server.port),
    }
    targets = Targets(audit=target, model=f"127.0.0.1:{model_server.port}")
    try:
        async with AsyncRowcastClient(targets, 10.0) as client:
            yield Env(client, env, decisions)
    finally:
        await sink.stop(1.0)
        await audit_server.stop(0.5)
        await model_server.stop(0.5)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["decision_id", "better_output", "actor", "state"])
            w.writeheader()
            w.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
async def test_bulk_augment_reports_accepted_and_rejected_rows(
    cli_env: Env, tmp_path: Path, suffix: str
) -> None:
    """Valid rows are applied (an approval of someone else's proposal among them); an unknown
    decision, a non-number, a better output outside the model's [0, 1], a missing actor and an
    unknown state are rejected with reasons."""
    d = cli_env.decisions
    await cli_env.client.augment(d[0].decision_id, 1.0, actor="ana")

    def row(
        decision_id: str, better: str, actor: str = "ops", state: str = ""
    ) -> dict[str, object]:
        return {"decision_id": decision_id, "better_output": better, "actor": actor, "state": state}

    rows = [
        row(d[0].decision_id, "1", state="approved"),
        row(d[1].decision_id, "0"),
        row("0" * 32, "1"),
        row(d[2].decision_id, "abc"),
        row(d[3].decision_id, "1.7"),
        row(d[4].decision_id, "1", actor=""),
        row(d[5].decision_id, "1", state="maybe"),
    ]
    file = tmp_path / f"aug{suffix}"
    write_rows(file, rows)
    rejects = tmp_path / "rejects.csv"
    result = await cli_env.run("augment", "--file", str(file), "--rejects", str(rejects), "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert (report["accepted"], report["rejected"]) == (2, 5)
    reasons = {r["decision_id"]: r["reason"] for r in report["rejections"]}
    assert reasons["0" * 32].startswith("NOT_FOUND")
    assert "better_output" in reasons[d[2].decision_id]
    assert "augmentation.better_output" in reasons[d[3].decision_id]
    assert "actor" in reasons[d[4].decision_id]
    assert "state" in reasons[d[5].decision_id]
    assert len(read_csv(rejects)) == 5
    first = await cli_env.client.get_decision(d[0].decision_id)
    assert first.augmentations[-1].actor == "ops"
    assert first.augmentations[-1].better_output == 1.0

    # Running the same file again (a retry after a crash or a timeout) records nothing twice.
    again = await cli_env.run("augment", "--file", str(file), "--json")
    report = json.loads(again.output)
    assert (report["accepted"], report["already_applied"], report["rejected"]) == (0, 2, 5)
    assert (await cli_env.client.get_decision(d[0].decision_id)).augmentations == (
        first.augmentations
    )


async def test_the_single_form_of_augment_still_works(cli_env: Env) -> None:
    """`rowcast audit augment DECISION_ID --better X --actor A` attaches one augmentation."""
    d = cli_env.decisions[4]
    result = await cli_env.run("augment", d.decision_id, "--better", "0", "--actor", "bob")
    assert result.exit_code == 0, result.output
    assert (await cli_env.client.get_decision(d.decision_id)).augmentations[-1].actor == "bob"


async def test_an_augment_retried_with_its_request_id_is_recorded_once(cli_env: Env) -> None:
    """The first call writes (replayed false); a retry with the same request id writes nothing
    and returns the decision as stored; another request id is a new augmentation."""
    d = cli_env.decisions[3]
    before = len((await cli_env.client.get_decision(d.decision_id)).augmentations)
    first = await cli_env.client.augment(d.decision_id, 0.5, actor="ops", request_id="ticket-7")
    retry = await cli_env.client.augment(d.decision_id, 0.5, actor="ops", request_id="ticket-7")
    assert (first.replayed, retry.replayed) == (False, True)
    assert len(first.decision.augmentations) == before + 1
    assert retry.decision == first.decision
    other = (
        await cli_env.client.augment(d.decision_id, 0.5, actor="ops", request_id="ticket-8")
    ).decision
    assert len(other.augmentations) == before + 2


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
async def test_export_writes_decisions_with_their_augmentations(
    cli_env: Env, tmp_path: Path, fmt: str
) -> None:
    """An export of one version holds every decision with inputs, outputs and augmentations."""
    d = cli_env.decisions
    await cli_env.client.augment(d[5].decision_id, 1.0, actor="x")
    await cli_env.client.augment(
        d[5].decision_id,
        0.0,
        actor="y",
        state=pb.AUGMENTATION_STATE_REJECTED,
    )
    out = tmp_path / f"export.{fmt}"
    result = await cli_env.run(
        "export", "--format", fmt, "--out", str(out), "--model", MODEL, "--version", str(VERSION)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == len(d)
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.schema.field("input_balance").type == pa.float64()
        assert table.schema.field("model_version").type == pa.int64()
        rows = {r["decision_id"]: r for r in table.to_pylist()}
    else:
        rows = {r["decision_id"]: r for r in read_csv(out)}
    assert set(rows) == {x.decision_id for x in d}
    row = rows[d[5].decision_id]
    assert float(row["output"]) == 0.2
    assert int(row["model_version"]) == VERSION
    assert int(row["augmentation_count"]) >= 2
    assert row["augmentation_state"] == "rejected"
    # A review (here a rejection sent with 0) carries the output of the proposal it reviews.
    assert float(row["better_output"]) == 1.0
    assert float(row["input_balance"]) == 1000.0
    assert json.loads(row["inputs_json"])["student"] == "No"
    assert len(json.loads(row["augmentations_json"])) == int(row["augmentation_count"])


async def test_export_is_paced_by_its_rate_limit(cli_env: Env, tmp_path: Path) -> None:
    """6 decisions in pages of 2 at 4 rows/s: the first page is free (the burst), each later
    page waits 0.5 s for its tokens, so the export cannot finish in under 1 s (a lower bound,
    whatever the machine's speed). A negative limit is refused."""
    out = tmp_path / "paced.csv"
    args = ["export", "--format", "csv", "--out", str(out), "--model", MODEL]
    args += ["--version", str(VERSION), "--page-size", "2"]
    started = time.monotonic()
    result = await cli_env.run(*args, "--rate-limit", "4")
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == len(cli_env.decisions)
    assert elapsed >= 1.0
    refused = await cli_env.run(*args, "--rate-limit", "-1")
    assert refused.exit_code == 2 and "--rate-limit" in refused.output
