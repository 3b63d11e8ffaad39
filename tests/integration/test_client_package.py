"""The client package on its own: `pip install ./clients/python` in a fresh venv (no system
site-packages, nothing from this repo's venv) installs the client and its three dependencies
only, typed (py.typed and the .pyi stubs), and that venv's Python calls the running suite's
PredictionService: a real prediction, and a typed error for an unknown model.

pip may use its cache (a reinstall takes seconds); on a machine without it, pip downloads the
client's dependencies from the package index.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import MODEL, Published, Suite

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
#: What a backend that only calls rowcast must not get (the server's and the tooling's).
FORBIDDEN = {
    "lightgbm",
    "pandas",
    "scikit-learn",
    "pyarrow",
    "happybase",
    "kazoo",
    "numpy",
    "thriftpy2",
    "rowcast-server",
    "rowcast-dev",
}
#: One customer of the demo model's signature.
CUSTOMER = {"balance": 1800.0, "income": 30000.0, "student": "No"}

INSPECT = """
import importlib.metadata as md, importlib.util, json, sys
files = [str(f) for f in md.files("rowcast-client") or []]
print(json.dumps({
    "prefix": sys.prefix,
    "distributions": sorted({d.metadata["Name"] for d in md.distributions()}),
    "files": files,
    "server_importable": importlib.util.find_spec("rowcast.apps") is not None,
}))
"""

CALL = """
import asyncio, json, sys
from rowcast_client import AsyncRowcastClient, Credentials, NotFoundError, RowcastClient, Targets

target, model, features = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
# TLS and the token from ROWCAST_CA_FILE / ROWCAST_TOKEN_FILE.
targets = Targets(prediction=target, credentials=Credentials.from_env())
with RowcastClient(targets, timeout_s=10.0) as client:
    answer = client.predict(model, features, subject="fresh-venv")
    try:
        client.predict("no_such_model", features)
        error = None
    except NotFoundError as exc:
        error = {"type": type(exc).__name__, "code": exc.code.name, "reason": exc.reason}


async def async_version() -> int:
    async with AsyncRowcastClient(targets, timeout_s=10.0) as client:
        return (await client.predict(model, features)).model_version


print(json.dumps({
    "output": answer.output,
    "model_version": answer.model_version,
    "decision_id": answer.decision_id,
    "error": error,
    "async_model_version": asyncio.run(async_version()),
}))
"""


@dataclass(frozen=True)
class Venv:
    python: Path
    env: dict[str, str]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with `pip install ./clients/python` and nothing else.

    Blocking on purpose, and outside any test: the servers on the event loop are not serving
    anyone while a fixture sets up."""
    root = tmp_path_factory.mktemp("client-venv") / "venv"
    # Nothing of this process's environment may lead the new venv's Python to this repo's
    # packages: no PYTHONPATH, no user site-packages.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("VIRTUAL_ENV", None)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, env=env, timeout=120)
    python = root / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(CLIENT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Venv(python, env)


def _inspect(venv: Venv) -> dict[str, Any]:
    done = subprocess.run(
        [str(venv.python), "-c", INSPECT],
        capture_output=True,
        text=True,
        env=venv.env,
        cwd=venv.python.parent,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_fresh_venv_has_the_client_and_none_of_the_servers_libraries(venv: Venv) -> None:
    """rowcast-client, grpcio, grpcio-status and protobuf are installed; LightGBM, pandas,
    scikit-learn, pyarrow, happybase, kazoo, numpy and the server package are not."""
    found = _inspect(venv)
    assert Path(found["prefix"]) == venv.python.parent.parent
    installed = {_normalise(n) for n in found["distributions"]}
    assert {"rowcast-client", "grpcio", "grpcio-status", "protobuf"} <= installed
    assert installed & FORBIDDEN == set()
    assert not found["server_importable"]
    pyvenv = (venv.python.parent.parent / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in pyvenv


def test_the_installed_client_is_typed(venv: Venv) -> None:
    """The wheel ships py.typed for rowcast_client and rowcast.v1, and the typed stubs of every
    service (messages and gRPC stubs), installed as files (not an editable link to the repo)."""
    files = set(_inspect(venv)["files"])
    assert {"rowcast_client/py.typed", "rowcast/v1/py.typed", "rowcast_client/aio.py"} <= files
    for service in ("prediction_service", "audit_service", "model_service"):
        assert {f"rowcast/v1/{service}_pb2.pyi", f"rowcast/v1/{service}_pb2_grpc.pyi"} <= files
    assert not any("__editable__" in f for f in files)


async def test_the_fresh_venv_predicts_and_gets_a_typed_error(
    venv: Venv, suite: Suite, published: Published
) -> None:
    """With only the client installed, over TLS with a token from the environment: Predict
    answers from the active version (sync and async clients), and an unknown model raises
    NotFoundError with reason MODEL_NOT_FOUND."""
    # Async on purpose: the servers under test run on this event loop.
    proc = await asyncio.create_subprocess_exec(
        str(venv.python),
        "-c",
        CALL,
        suite.targets.prediction,
        MODEL,
        json.dumps(CUSTOMER),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **venv.env,
            "ROWCAST_CA_FILE": str(suite.security.ca_file),
            "ROWCAST_TOKEN_FILE": str(suite.security.auth_dir / "admin.token"),
        },
        cwd=venv.python.parent,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, out.decode() + err.decode()
    result = json.loads(out)
    version = published.v1.version.version
    assert 0.0 <= result["output"] <= 1.0
    assert result["model_version"] == version
    assert result["async_model_version"] == version
    assert len(result["decision_id"]) == 32
    assert result["error"] == {
        "type": "NotFoundError",
        "code": "NOT_FOUND",
        "reason": "MODEL_NOT_FOUND",
    }
