"""`rowcast models ...` against the real servers and HBase: JSON for scripts, and exit codes
scripts can trust (0 ok, 1 other errors such as ALREADY_EXISTS, 2 bad input, 3 not found,
4 failed precondition); every subcommand has --help and --json."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from google.protobuf.json_format import MessageToJson

from rowcast.config import Settings
from rowcast_cli.models_cmd import models
from rowcast_client import AsyncRowcastClient
from tests.integration.conftest import MODEL, Published, Suite, registered_version


async def rowcast_models(suite: Suite, *args: str) -> Result:
    """Run `rowcast models ARGS` against the suite's servers. The CLI blocks on its calls, so
    it gets a thread: the servers share this event loop and must keep serving."""
    env = {
        "ROWCAST_HOST": "127.0.0.1",
        "ROWCAST_MODEL_PORT": str(suite.model.port),
        "ROWCAST_PREDICTION_PORT": str(suite.prediction.port),
        "ROWCAST_AUDIT_PORT": str(suite.audit.port),
        "ROWCAST_CA_FILE": str(suite.security.ca_file),
        "ROWCAST_TOKEN_FILE": str(suite.security.auth_dir / "admin.token"),
    }
    return await asyncio.to_thread(
        CliRunner().invoke, models, list(args), env=env, catch_exceptions=False
    )


async def test_list_versions_and_get_print_json(suite: Suite, published: Published) -> None:
    """list, versions and get (of a model and of a version) exit 0 with --json output that
    parses and names what was asked for."""
    v1 = published.v1.version.version

    listed = await rowcast_models(suite, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert MODEL in [m["name"] for m in json.loads(listed.stdout)]

    versions = await rowcast_models(suite, "versions", MODEL, "--json")
    assert versions.exit_code == 0, versions.output
    states = {int(v["version"]): v["state"] for v in json.loads(versions.stdout)}
    assert states[v1] == "VERSION_STATE_READY"

    model = await rowcast_models(suite, "get", MODEL, "--json")
    assert model.exit_code == 0, model.output
    assert json.loads(model.stdout)["name"] == MODEL

    version = await rowcast_models(suite, "get", MODEL, str(v1), "--json")
    assert version.exit_code == 0, version.output
    got = json.loads(version.stdout)
    assert (got["model"], int(got["version"]), got["state"]) == (
        MODEL,
        v1,
        "VERSION_STATE_READY",
    )

    readable = await rowcast_models(suite, "get", MODEL, str(v1))
    assert readable.exit_code == 0, readable.output
    assert readable.stdout.startswith(f"{MODEL} v{v1}: READY")


async def test_alias_prints_the_model_as_json(suite: Suite, published: Published) -> None:
    """alias --json prints the Model message with the alias set, then without it after
    --delete."""
    v2 = published.v2.version.version
    set_ = await rowcast_models(suite, "alias", MODEL, "cli_check", str(v2), "--json")
    assert set_.exit_code == 0, set_.output
    assert int(json.loads(set_.stdout)["aliases"]["cli_check"]) == v2
    deleted = await rowcast_models(suite, "alias", MODEL, "cli_check", "--delete", "--json")
    assert deleted.exit_code == 0, deleted.output
    assert "cli_check" not in json.loads(deleted.stdout)["aliases"]


@pytest.mark.parametrize(
    "args",
    [("get", "no_such_model"), ("versions", "no_such_model"), ("get", MODEL, "99999")],
    ids=["get-model", "versions", "get-version"],
)
async def test_an_unknown_model_or_version_exits_3(
    suite: Suite, published: Published, args: tuple[str, ...]
) -> None:
    """NOT_FOUND from the service: exit 3, the reason on stderr, nothing on stdout."""
    result = await rowcast_models(suite, *args, "--json")
    assert result.exit_code == 3, result.output
    assert "NOT_FOUND" in result.stderr and result.stdout == ""


async def test_activating_a_version_that_is_not_ready_exits_4(
    suite: Suite, settings: Settings
) -> None:
    """FAILED_PRECONDITION (a version that is not READY): exit 4, saying why."""
    version = await registered_version(settings)
    result = await rowcast_models(suite, "activate", MODEL, str(version))
    assert result.exit_code == 4, result.output
    assert "READY" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("activate", MODEL, "0"),  # rejected by the service
        ("get", MODEL, "one"),  # rejected by click
        ("alias", MODEL, "canary"),  # neither VERSION nor --delete
        ("materialize", MODEL, "1", "--rate-limit", "-5"),
        ("materialize", MODEL, "1", "--rate-limit", "1e9"),  # above the server's cap
        ("create-version", MODEL, "--train", "default", "--num-leaves", "-5"),
    ],
    ids=[
        "version-zero",
        "not-a-number",
        "alias-without-version",
        "negative-rate",
        "rate-above-cap",
        "negative-leaves",
    ],
)
async def test_bad_input_exits_2(suite: Suite, published: Published, args: tuple[str, ...]) -> None:
    """INVALID_ARGUMENT from the service, or a usage error caught by the CLI: exit 2."""
    result = await rowcast_models(suite, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr


async def test_registering_an_existing_model_exits_1(
    suite: Suite, published: Published, tmp_path: Path
) -> None:
    """ALREADY_EXISTS (no exit code of its own): exit 1, naming the model."""
    async with AsyncRowcastClient(suite.targets, timeout_s=10.0) as client:
        existing = await client.get_model(MODEL)
    spec = tmp_path / "model.json"
    spec.write_text(MessageToJson(existing))
    result = await rowcast_models(suite, "register", str(spec))
    assert result.exit_code == 1, result.output
    assert MODEL in result.stderr


@pytest.mark.parametrize("name", sorted(models.commands))
def test_every_subcommand_has_help_and_json(name: str) -> None:
    """`rowcast models NAME --help` exits 0 with the command's usage, and offers --json."""
    command = models.commands[name]
    result = CliRunner().invoke(models, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: models {name}" in result.stdout
    assert "--json" in result.stdout
    assert any(isinstance(p, click.Option) and "--json" in p.opts for p in command.params)
