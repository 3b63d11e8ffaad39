"""`rowcast models | audit | predict`: calls to the running services through the Python client.

Exit codes scripts can trust: 0 success, 2 bad usage, 3 not found, 4 failed precondition,
5 unavailable, 6 unauthenticated, 7 permission denied, 1 anything else. `--json` prints the
response as JSON.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from rowcast.errors import RowcastError
from rowcast.grpc_errors import status_code_for
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast_cli.connect import targets_from_env
from rowcast_client import RowcastClient, RowcastClientError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: 2,
    grpc.StatusCode.NOT_FOUND: 3,
    grpc.StatusCode.FAILED_PRECONDITION: 4,
    grpc.StatusCode.UNAVAILABLE: 5,
    grpc.StatusCode.DEADLINE_EXCEEDED: 5,
    grpc.StatusCode.UNAUTHENTICATED: 6,
    grpc.StatusCode.PERMISSION_DENIED: 7,
}


def client() -> RowcastClient:
    return RowcastClient(
        targets_from_env(),
        timeout_s=10.0,
    )


def reports_errors(fn: F) -> F:
    """Turn a client error (or a domain error of a job run in this process) into a one-line
    message and a meaningful exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RowcastClientError as exc:
            _print_error(str(exc), [(v.field, v.description) for v in exc.violations])
            raise SystemExit(EXIT_BY_CODE.get(exc.code, 1)) from exc
        except RowcastError as exc:
            code = status_code_for(exc)
            violations = [(v.field, v.description) for v in getattr(exc, "violations", ())]
            _print_error(f"{code.name}: {exc.message}", violations)
            raise SystemExit(EXIT_BY_CODE.get(code, 1)) from exc

    return wrapper  # type: ignore[return-value]


def _print_error(message: str, violations: list[tuple[str, str]]) -> None:
    """`error: CODE: message` once, then each field violation the message does not already
    say (a one-field error's message is that field's violation)."""
    click.echo(f"error: {message}", err=True)
    for field, description in violations:
        if f"{field}: {description}" not in message:
            click.echo(f"  {field}: {description}", err=True)


def fidelity_text(metrics: Mapping[str, float]) -> str:
    """The held-out metric of a version for people: raw model, then flattened (from table
    lookups when measured so), e.g. "AUC raw 0.9336, table 0.9327"; "-" when none."""
    for name in ("auc", "rmse"):
        if f"{name}_raw" in metrics:
            flat = "table" if f"{name}_table" in metrics else "flattened"
            return (
                f"{name.upper()} raw {metrics[f'{name}_raw']:.4f}, "
                f"{flat} {metrics.get(f'{name}_{flat}', float('nan')):.4f}"
            )
    return "-"


def propagation_text(servers: int, complete: bool, lagging: list[str], waited_s: float) -> str:
    """How far a switch had reached the prediction servers, for people."""
    if servers == 0:
        return "no prediction server registered in ZooKeeper: servers follow by polling"
    if complete:
        return f"served by all {servers} registered prediction server(s) after {waited_s:.3f} s"
    return (
        f"not yet served by {len(lagging)} of {servers} prediction server(s) after "
        f"{waited_s:.3f} s: {', '.join(lagging)}"
    )


def as_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


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
        if r.clamped_features:
            click.echo(
                "clamped (outside the training range, answered from the edge bin): "
                + ", ".join(r.clamped_features)
            )
        if r.fallback_rules:
            rules = [
                pred_pb.FallbackRule.Name(x).removeprefix("FALLBACK_RULE_")
                for x in r.fallback_rules
            ]
            click.echo("fallback: " + ", ".join(rules).lower())
