"""The Node example caller (clients/node/predict.js) works against the real suite: it loads
protos/ with @grpc/proto-loader, calls Predict and prints the answer as JSON, and on an error
decodes `grpc-status-details-bin` with the vendored protos/google/rpc into the ErrorInfo reason
and the BadRequest field violations.

Its packages install themselves (`npm ci`, from the committed package-lock.json) when
clients/node/node_modules is missing, so these tests run wherever `node` and `npm` do.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

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


async def _run(node: str, *args: str) -> tuple[int, str, str]:
    # Async on purpose: the servers under test run on this event loop (see test_go_client).
    proc = await asyncio.create_subprocess_exec(
        node, str(PREDICT_JS), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
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
        "--timeout-ms", "5000",
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
        node, suite.targets.prediction, MODEL, "balance=1800", "income=lots", "student=No"
    )
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
    code, out, err = await _run(node, suite.targets.prediction, "no_such_model", *FEATURES)
    assert code == 1, out + err
    failure = _json_line(err)
    assert failure["code"] == "NOT_FOUND"
    assert failure["reason"] == "MODEL_NOT_FOUND"
    assert failure["domain"] == "rowcast.dev"
    assert "field_violations" not in failure
