"""`rowcast audit`: read, count, augment (one or a file of them), export and verify decisions.

Exit codes as for every admin command (see admin_cmd); a bulk augmentation exits 1 when any
row was rejected, and `verify` exits 1 when it finds a problem, so scripts notice.
"""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from rowcast.config import Settings
from rowcast.core.chain import Finding, Problem, Report, verify
from rowcast.core.records import Decision
from rowcast.security.chain_key import ChainKeyError, load_chain_key
from rowcast.store.audit import AuditStore
from rowcast.store.client import HBaseClient
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.admin_cmd import as_dict, client, echo_json, json_option, reports_errors
from rowcast_cli.bulk_augment import BulkReport, apply_rows, file_request_prefix, read_rows
from rowcast_cli.connect import targets_from_env
from rowcast_cli.export import ExportFormat, Selection, export
from rowcast_client import AsyncRowcastClient


def async_client(timeout_s: float = 10.0) -> AsyncRowcastClient:
    return AsyncRowcastClient(
        targets_from_env(),
        timeout_s=timeout_s,
    )


def parse_time(value: str | None) -> datetime | None:
    """ISO 8601; a time without a zone is UTC."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def selection_options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option("--model", default="", help="Only this model's decisions."),
            click.option("--version", "model_version", type=int, default=0, help="Of --model."),
            click.option("--start", default=None, help="At or after this time (ISO 8601, UTC)."),
            click.option("--end", default=None, help="Before this time (ISO 8601, UTC)."),
        ]
    ):
        fn = option(fn)
    return fn


@click.group()
def audit() -> None:
    """Read, count, augment and export decisions (AuditService)."""


@audit.command("get")
@click.argument("decision_id")
@reports_errors
def get_decision(decision_id: str) -> None:
    """Show one decision with its augmentations, as JSON."""
    with client() as c:
        echo_json(as_dict(c.get_decision(decision_id)))


@audit.command("list")
@click.argument("subject", required=False, default="")
@selection_options
@click.option("--key", default="", help="Only decisions about this input key (hex) of --model.")
@click.option("--page-size", default=20, show_default=True, type=int)
@click.option("--page-token", default="", help="next_page_token of the previous page.")
@reports_errors
def list_decisions(
    subject: str,
    model: str,
    model_version: int,
    start: str | None,
    end: str | None,
    key: str,
    page_size: int,
    page_token: str,
) -> None:
    """List decisions newest first, as JSON: SUBJECT's, a model version's (--model --version),
    an input key's (--model --key) or all, optionally between --start and --end."""
    with client() as c:
        page = c.list_decisions(
            subject,
            model=model,
            model_version=model_version,
            key=key,
            start_time=parse_time(start),
            end_time=parse_time(end),
            page_size=page_size,
            page_token=page_token,
        )
    echo_json(as_dict(page))


@audit.command("count")
@click.argument("model")
@json_option
@reports_errors
def count(model: str, as_json: bool) -> None:
    """Count MODEL's decisions per version and per latest augmentation state."""
    with client() as c:
        counts = c.count_decisions(model, timeout=120.0)
    if as_json:
        echo_json([as_dict(x) for x in counts])
        return
    table = Table("version", "decisions", "unaugmented", "proposed", "approved", "rejected")
    for x in counts:
        table.add_row(
            str(x.model_version),
            f"{x.decision_count:,}",
            f"{x.unaugmented_count:,}",
            f"{x.proposed_count:,}",
            f"{x.approved_count:,}",
            f"{x.rejected_count:,}",
        )
    Console().print(table)


@audit.command("augment")
@click.argument("decision_id", required=False)
@click.option("--better", type=float, help="The better output (single form).")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV or Parquet with columns decision_id, better_output, and optionally actor, "
    "source, reason, state: augment every row.",
)
@click.option(
    "--actor",
    default="",
    help="Who supplies it (default for --file rows). Optional: the server records your token's "
    "name (an actor given must equal it); required with --insecure.",
)
@click.option(
    "--source", type=click.Choice(["person", "program"]), default="person", show_default=True
)
@click.option("--reason", default="")
@click.option(
    "--state",
    type=click.Choice(["proposed", "approved", "rejected"]),
    default="proposed",
    show_default=True,
    help="Review state (single form; --file rows carry their own, default proposed).",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --file: write the rejected rows (line, decision_id, reason) to this CSV.",
)
@click.option(
    "--request-id",
    default="",
    help="Idempotency key (single form): a retry with the same key records the augmentation "
    "once. --file rows get one from the file's digest and line, so re-running a file is safe.",
)
@click.option("--concurrency", default=16, show_default=True, type=int)
@json_option
@reports_errors
def augment(
    decision_id: str | None,
    better: float | None,
    file: Path | None,
    actor: str,
    source: str,
    reason: str,
    state: str,
    rejects: Path | None,
    request_id: str,
    concurrency: int,
    as_json: bool,
) -> None:
    """Attach a better answer to DECISION_ID (history is kept), or to every row of --file."""
    if file is not None:
        if decision_id or better is not None:
            raise click.UsageError("give either DECISION_ID --better ... or --file, not both")
        report = asyncio.run(_bulk(file, actor, source, concurrency))
        _print_report(report, rejects, as_json)
        if report.rejected:
            raise SystemExit(1)
        return
    if not decision_id or better is None:
        raise click.UsageError("the single form needs DECISION_ID and --better")
    src = pb.AUGMENTATION_SOURCE_PERSON if source == "person" else pb.AUGMENTATION_SOURCE_PROGRAM
    st = {
        "proposed": pb.AUGMENTATION_STATE_PROPOSED,
        "approved": pb.AUGMENTATION_STATE_APPROVED,
        "rejected": pb.AUGMENTATION_STATE_REJECTED,
    }[state]
    with client() as c:
        d = c.augment(
            decision_id,
            better,
            actor=actor,
            source=src,
            reason=reason,
            state=st,
            request_id=request_id,
        ).decision
    if as_json:
        echo_json(as_dict(d))
    else:
        click.echo(f"{d.decision_id}: {len(d.augmentations)} augmentation(s)")


async def _bulk(file: Path, actor: str, source: str, concurrency: int) -> BulkReport:
    async with async_client() as c:
        try:
            rows = read_rows(file)
            return await apply_rows(
                c,
                rows,
                default_actor=actor,
                default_source=source,
                concurrency=concurrency,
                request_prefix=file_request_prefix(file),
            )
        except (ValueError, OSError, ImportError) as exc:
            raise click.UsageError(f"cannot read {file}: {exc}") from exc


def _print_report(report: BulkReport, rejects: Path | None, as_json: bool) -> None:
    if rejects is not None:
        with open(rejects, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["line", "decision_id", "reason"])
            w.writerows((r.line, r.decision_id, r.reason) for r in report.rejected)
    if as_json:
        echo_json(
            {
                "accepted": report.accepted,
                "already_applied": report.already_applied,
                "rejected": len(report.rejected),
                "rejections": [r.__dict__ for r in report.rejected],
            }
        )
        return
    click.echo(
        f"accepted {report.accepted}, already applied by an earlier run "
        f"{report.already_applied}, rejected {len(report.rejected)}"
    )
    for r in report.rejected[:50]:
        click.echo(f"  line {r.line} {r.decision_id or '-'}: {r.reason}")
    if len(report.rejected) > 50:
        click.echo(
            f"  ... {len(report.rejected) - 50} more" + (" (see --rejects)" if rejects else "")
        )


#: With --since, decisions this much older are read too, as the predecessors of the first
#: records in the window (a chain's records are made in order, within moments of each other).
PREDECESSOR_MARGIN_MS = 60_000
#: The whole walk is one store call per salt bucket: allow it time.
VERIFY_TIMEOUT_S = 3600.0


async def verify_audit(
    client: HBaseClient, key: bytes, *, model: str = "", since: datetime | None = None
) -> Report:
    """Walk the audit table and check every record against its chain (core/chain.py).

    `model`: only the chains holding a decision of it (a chain holds every model its server
    served), and its unlinked records. `since`: only decisions made at or after it; the
    first record of each chain in the window is checked against a predecessor read from just
    before the window, or counted as unanchored."""
    start_ms = int(since.timestamp() * 1000) if since is not None else None
    read_from = None if start_ms is None else max(start_ms - PREDECESSOR_MARGIN_MS, 0)
    decisions, unreadable = await AuditStore(client).scan(
        start_ms=read_from, timeout_s=VERIFY_TIMEOUT_S
    )
    chains = {d.chain.chain_id for d in decisions if d.chain is not None and d.model == model}

    def checked(d: Decision) -> bool:
        if start_ms is not None and d.decide_time_ms < start_ms:
            return False
        if not model:
            return True
        return d.model == model if d.chain is None else d.chain.chain_id in chains

    report = verify(key, decisions, checked=checked, from_start=start_ms is None)
    report.records += len(unreadable)
    report.findings += [
        Finding(i, Problem.CHANGED, "the row cannot be read as a decision") for i in unreadable
    ]
    return report


@audit.command("verify")
@click.option("--model", default="", help="Only the chains holding a decision of this model.")
@click.option("--since", default=None, help="Only decisions made at or after (ISO 8601, UTC).")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The audit chain key (default: ROWCAST_HOME/auth/audit-chain.key, the prediction "
    "servers' own).",
)
@json_option
def verify_cmd(model: str, since: str | None, key_file: Path | None, as_json: bool) -> None:
    """Check every stored decision against its prediction server's audit chain: report each
    record changed, removed or inserted behind rowcast's back (directly in HBase); exit 1 when
    any is found. Reads HBase directly, as the prediction servers' key is needed."""
    settings = Settings.from_env()
    try:
        key = load_chain_key(key_file or settings.security.chain_key_file, create=False)
    except ChainKeyError as exc:
        raise click.UsageError(str(exc)) from exc
    client = HBaseClient(settings.hbase)
    try:
        report = asyncio.run(verify_audit(client, key, model=model, since=parse_time(since)))
    finally:
        client.close()
    if as_json:
        echo_json(
            {
                "records": report.records,
                "chains": report.chains,
                "unanchored": report.unanchored,
                "problems": [
                    {"decision_id": f.decision_id, "problem": f.problem.value, "detail": f.detail}
                    for f in report.findings
                ],
            }
        )
    else:
        click.echo(
            f"records {report.records:,}, chains {report.chains:,}, "
            f"problems {len(report.findings):,}"
            + (
                f", unanchored {report.unanchored:,} (their predecessor is before --since)"
                if report.unanchored
                else ""
            )
        )
        for f in report.findings:
            click.echo(f"  {f.decision_id}: {f.problem.value}: {f.detail}")
    if report.findings:
        raise SystemExit(1)


@audit.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["parquet", "csv"]), required=True, help="File format."
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@selection_options
@click.option("--page-size", default=1000, show_default=True, type=int)
@click.option(
    "--rate-limit",
    type=float,
    default=None,
    help="Decisions read per second at most; 0 for no limit. Default: "
    "ROWCAST_EXPORT_ROWS_PER_SECOND (5000), so an export never starves serving.",
)
@reports_errors
def export_cmd(
    fmt: ExportFormat,
    out: Path,
    model: str,
    model_version: int,
    start: str | None,
    end: str | None,
    page_size: int,
    rate_limit: float | None,
) -> None:
    """Write decisions with their augmentations (inputs, served and better outputs, versions,
    times) to a Parquet or CSV file: all of them, or --model's (one --version or every
    version), optionally between --start and --end."""
    selection = Selection(model, model_version, parse_time(start), parse_time(end))
    if rate_limit is not None and rate_limit < 0:
        raise click.BadParameter("must be 0 (no limit) or positive", param_hint="--rate-limit")
    rate = Settings.from_env().export_rows_per_second if rate_limit is None else rate_limit or None

    async def run() -> int:
        async with async_client(timeout_s=60.0) as c:
            return await export(c, out, fmt, selection, page_size=page_size, rows_per_second=rate)

    try:
        written = asyncio.run(run())
    except ImportError as exc:
        raise click.UsageError(f"--format parquet needs pyarrow: {exc}") from exc
    click.echo(json.dumps({"rows": written, "out": str(out), "format": fmt}))
