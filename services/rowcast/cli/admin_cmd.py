"""`rowcast models | audit | predict`: calls to the running services through the Python client.

Exit codes scripts can trust: 0 success, 2 bad usage, 3 not found, 4 failed precondition,
5 unavailable, 1 anything else. `--json` prints the response as JSON.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from rowcast.config import Settings
from rowcast.v1 import resources_pb2 as pb
from rowcast_client import RowcastClient, RowcastClientError, Targets

F = TypeVar("F", bound=Callable[..., Any])

EXIT_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: 2,
    grpc.StatusCode.NOT_FOUND: 3,
    grpc.StatusCode.FAILED_PRECONDITION: 4,
    grpc.StatusCode.UNAVAILABLE: 5,
    grpc.StatusCode.DEADLINE_EXCEEDED: 5,
}


def client() -> RowcastClient:
    s = Settings.from_env().server
    return RowcastClient(
        Targets(
            prediction=f"{s.host}:{s.prediction_port}",
            audit=f"{s.host}:{s.audit_port}",
            model=f"{s.host}:{s.model_port}",
        ),
        timeout_s=10.0,
    )


def reports_errors(fn: F) -> F:
    """Turn a client error into a one-line message and a meaningful exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RowcastClientError as exc:
            click.echo(f"error: {exc}", err=True)
            for v in exc.violations:
                click.echo(f"  {v.field}: {v.description}", err=True)
            raise SystemExit(EXIT_BY_CODE.get(exc.code, 1)) from exc

    return wrapper  # type: ignore[return-value]


def as_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def models() -> None:
    """Inspect models and versions; activate a version (ModelService)."""


@models.command("list")
@json_option
@reports_errors
def list_models(as_json: bool) -> None:
    """List registered models and their active versions."""
    with client() as c:
        found = c.list_models()
    if as_json:
        echo_json([as_dict(m) for m in found])
        return
    table = Table("model", "current", "previous", "features", "description")
    for m in found:
        table.add_row(
            m.name,
            str(m.current_version or "-"),
            str(m.previous_version or "-"),
            ", ".join(f.name for f in m.signature.features),
            m.description,
        )
    Console().print(table)


@models.command("versions")
@click.argument("model")
@json_option
@reports_errors
def list_versions(model: str, as_json: bool) -> None:
    """List the versions of MODEL, newest first."""
    with client() as c:
        versions = c.list_versions(model)
        current = c.get_model(model).current_version
    if as_json:
        echo_json([as_dict(v) for v in versions])
        return
    table = Table("version", "state", "rows", "auc raw", "auc flat", "creator", "active")
    for v in versions:
        table.add_row(
            str(v.version),
            str(pb.VersionState.Name(v.state)).removeprefix("VERSION_STATE_"),
            f"{v.row_count:,}",
            f"{v.metrics.get('auc_raw', float('nan')):.4f}",
            f"{v.metrics.get('auc_flattened', float('nan')):.4f}",
            v.creator,
            "*" if v.version == current else "",
        )
    Console().print(table)


@models.command("get")
@click.argument("model")
@click.argument("version", type=int, required=False)
@reports_errors
def get(model: str, version: int | None) -> None:
    """Show MODEL (or one VERSION of it) as JSON."""
    with client() as c:
        echo_json(as_dict(c.get_version(model, version) if version else c.get_model(model)))


@models.command("activate")
@click.argument("model")
@click.argument("version", type=int)
@click.option("--actor", required=True, help="Who asks for the switch (recorded).")
@click.option("--reason", default="", help="Why (recorded).")
@json_option
@reports_errors
def activate(model: str, version: int, actor: str, reason: str, as_json: bool) -> None:
    """Make VERSION of MODEL the one served; running servers switch without a restart."""
    with client() as c:
        m = c.activate_version(model, version, actor=actor, reason=reason)
    if as_json:
        echo_json(as_dict(m))
    else:
        click.echo(f"{m.name}: current v{m.current_version}, previous v{m.previous_version or '-'}")


def parse_features(pairs: tuple[str, ...]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not name=value", param_hint="--feature")
        try:
            out[name] = float(value)
        except ValueError:
            out[name] = value
    return out


@click.command()
@click.argument("model")
@click.option("-f", "--feature", "features", multiple=True, help="name=value (repeat per feature).")
@click.option("--subject", default="", help="Whom the decision is about (indexed in the audit).")
@json_option
@reports_errors
def predict(model: str, features: tuple[str, ...], subject: str, as_json: bool) -> None:
    """Ask the PredictionService for MODEL's output for one input."""
    with client() as c:
        r = c.predict(model, parse_features(features), subject=subject)
    if as_json:
        echo_json(as_dict(r))
    else:
        click.echo(f"output {r.output:.6f}  version {r.model_version}  decision {r.decision_id}")


@click.group()
def audit() -> None:
    """Read decisions and attach better answers (AuditService)."""


@audit.command("get")
@click.argument("decision_id")
@reports_errors
def get_decision(decision_id: str) -> None:
    """Show one decision with its augmentations, as JSON."""
    with client() as c:
        echo_json(as_dict(c.get_decision(decision_id)))


@audit.command("list")
@click.argument("subject")
@click.option("--page-size", default=20, show_default=True, type=int)
@click.option("--page-token", default="", help="next_page_token of the previous page.")
@reports_errors
def list_decisions(subject: str, page_size: int, page_token: str) -> None:
    """List SUBJECT's decisions, newest first, as JSON."""
    with client() as c:
        echo_json(as_dict(c.list_decisions(subject, page_size=page_size, page_token=page_token)))


@audit.command("augment")
@click.argument("decision_id")
@click.option("--better", type=float, required=True, help="The better output.")
@click.option("--actor", required=True, help="Who supplies it.")
@click.option(
    "--source", type=click.Choice(["person", "program"]), default="person", show_default=True
)
@click.option("--reason", default="")
@reports_errors
def augment(decision_id: str, better: float, actor: str, source: str, reason: str) -> None:
    """Attach a better answer to DECISION_ID (history is kept)."""
    src = pb.AUGMENTATION_SOURCE_PERSON if source == "person" else pb.AUGMENTATION_SOURCE_PROGRAM
    with client() as c:
        d = c.augment(decision_id, better, actor=actor, source=src, reason=reason)
    click.echo(f"{d.decision_id}: {len(d.augmentations)} augmentation(s)")
