"""The Node example caller (clients/node/predict.js) works against the real, secure suite: it
loads protos/ with @grpc/proto-loader, calls Predict over TLS (the suite's CA) with a bearer
token and prints the answer as JSON, and on an error decodes `grpc-status-details-bin` with
the vendored protos/google/rpc into the ErrorInfo reason and the BadRequest field violations.

Its packages install themselves (`npm ci`, from the committed package-lock.json) when
clients/node/node_modules is missing, so these tests run wherever `node` and `npm` do.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rowcast.config import SecuritySettings
from tests.integration.conftest import MODEL, Published, Suite

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = ROOT / "clients" / "node"
PREDICT_JS = NODE_CLIENT / "predict.js"
#: One customer of the demo model's signature (balance, income, student).
FEATURES = ("balance=1800", "income=30000", "student=No")


def _which(tool: str) -> str:
    path = shutil.which(tool)
    assert path is not None, f"`{tool}` must be on PATH (the Node caller is run in CI)"
    return path


@pytest.fixture(scope="module")
def node() -> str:
    """`node`, with clients/node's pinned packages installed (`npm ci`) if they are missing."""
    node = _which("node")
    if not (NODE_CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        done = subprocess.run(
            [_which("npm"), "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=NODE_CLIENT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return node


def _secured(security: SecuritySettings, token_file: str | None = "admin.token") -> list[str]:
    """The options that point the caller at the suite's CA and one of its tokens (None: none)."""
    options = ["--cacert", str(security.ca_file)]
    if token_file is not None:
        options += ["--token-file", str(security.auth_dir / token_file)]
    return options


async def _run(node: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    # Async on purpose: the servers under test run on this event loop (see test_go_client).
    # No ROWCAST_* but those given, and a working directory without a .rowcast home.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROWCAST_")}
    proc = await asyncio.create_subprocess_exec(
        node, str(PREDICT_JS), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**clean, **(env or {})}, cwd=NODE_CLIENT,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _json_line(text: str) -> dict[str, Any]:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


async def test_node_caller_predicts(node: str, suite: Suite, published: Published) -> None:
    """The Node caller gets the active version's answer, printed as JSON with the proto's field
    names, int64 as a decimal string and enums by name."""
    code, out, err = await _run(
        node, suite.targets.prediction, MODEL, *FEATURES, "--subject", "node-cust-1",
        "--timeout-ms", "5000", *_secured(suite.security),
    )  # fmt: skip
    assert code == 0, out + err
    answer = _json_line(out)
    assert 0.0 <= answer["output"] <= 1.0
    assert answer["model_version"] == str(published.v1.version.version)
    assert len(answer["decision_id"]) == 32
    int(answer["decision_id"], 16)
    assert answer["source"] in {"PREDICTION_SOURCE_HBASE", "PREDICTION_SOURCE_CACHE"}
    assert answer["fallback_rules"] == []


async def test_node_caller_decodes_the_field_violation_of_a_bad_request(
    node: str, suite: Suite, published: Published
) -> None:
    """A string for a numeric feature is INVALID_ARGUMENT; the Node caller exits 1 and prints
    the ErrorInfo reason and the BadRequest field violation it decoded from the trailers."""
    code, out, err = await _run(
        node, suite.targets.prediction, MODEL, "balance=1800", "income=lots", "student=No",
        *_secured(suite.security),
    )  # fmt: skip
    assert code == 1, out + err
    failure = _json_line(err)
    assert "features.income" in failure.pop("message")
    assert failure == {
        "code": "INVALID_ARGUMENT",
        "reason": "INVALID_ARGUMENT",
        "domain": "rowcast.dev",
        "field_violations": [
            {"field": "features.income", "description": "must be a number, got str"}
        ],
    }


async def test_node_caller_reports_the_reason_of_an_unknown_model(node: str, suite: Suite) -> None:
    """An unknown model is NOT_FOUND with the MODEL_NOT_FOUND reason, and no field violations."""
    code, out, err = await _run(
        node, suite.targets.prediction, "no_such_model", *FEATURES, *_secured(suite.security)
    )
    assert code == 1, out + err
    failure = _json_line(err)
    assert failure["code"] == "NOT_FOUND"
    assert failure["reason"] == "MODEL_NOT_FOUND"
    assert failure["domain"] == "rowcast.dev"
    assert "field_violations" not in failure


async def test_node_caller_finds_the_ca_and_token_under_rowcast_home(
    node: str, suite: Suite, published: Published
) -> None:
    """With only ROWCAST_HOME set, the Node caller uses its tls/ca.pem and auth/admin.token
    (as the Python client does) and gets an answer."""
    home = suite.security.tls_dir.parent
    code, out, err = await _run(
        node, suite.targets.prediction, MODEL, *FEATURES, env={"ROWCAST_HOME": str(home)}
    )
    assert code == 0, out + err
    assert _json_line(out)["model_version"] == str(published.v1.version.version)


async def test_node_caller_without_a_token_is_unauthenticated(node: str, suite: Suite) -> None:
    """Over TLS but with no token, the secure suite answers UNAUTHENTICATED with its reason."""
    code, out, err = await _run(
        node, suite.targets.prediction, MODEL, *FEATURES, *_secured(suite.security, None)
    )
    assert code == 1, out + err
    failure = _json_line(err)
    assert failure["code"] == "UNAUTHENTICATED"
    assert failure["reason"] == "UNAUTHENTICATED"


async def test_node_caller_with_a_token_lacking_the_role_is_permission_denied(
    node: str, suite: Suite
) -> None:
    """The approver's token has no predictor role: PERMISSION_DENIED naming the role needed."""
    code, out, err = await _run(
        node, suite.targets.prediction, MODEL, *FEATURES,
        *_secured(suite.security, "approver.token"),
    )  # fmt: skip
    assert code == 1, out + err
    failure = _json_line(err)
    assert failure["code"] == "PERMISSION_DENIED"
    assert failure["reason"] == "PERMISSION_DENIED"
    assert "predictor" in failure["message"]


async def test_node_caller_without_a_ca_exits_2(node: str, suite: Suite) -> None:
    """No CA (no option, no ROWCAST_* environment) and no --insecure: the Node caller does
    not fall back to plain text; it exits 2 asking for --cacert."""
    code, out, err = await _run(node, suite.targets.prediction, MODEL, *FEATURES)
    assert code == 2, out + err
    assert "no CA: give --cacert" in err
