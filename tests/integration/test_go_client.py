"""The Go stubs (gen/go) are up to date, and the Go example caller (clients/go) works against
the real, secure suite: it builds with `go build`, calls Predict and PredictBatch over TLS with
the suite's CA and a bearer token, prints what it got, and on a bad request prints the
ErrorInfo reason and BadRequest field violations it decoded.

The protoc plugins the stubs need install themselves (scripts/install-go-tools), so these tests
run wherever `go` does: a missing plugin is installed, never a reason to skip.
"""

from __future__ import annotations

import asyncio
import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rowcast.config import SecuritySettings
from tests.integration.conftest import MODEL, Published, Suite

ROOT = Path(__file__).resolve().parents[2]
GO_MODULE = ROOT / "clients" / "go"
#: The generated stubs: a Go module of their own; clients/go uses it through a replace.
GENERATED = ROOT / "gen" / "go"
TOOLS_BIN = ROOT / ".tools" / "bin"
#: The example caller's PredictBatch sends this many inputs (demoCustomers in main.go).
DEMO_BATCH_SIZE = 4

_PREDICT = re.compile(r"^predict output=(\S+) version=(\d+) decision_id=([0-9a-f]{32}) ", re.M)
_BATCH_SIZE = re.compile(r"^batch size=(\d+)$", re.M)
_BATCH_ITEM = re.compile(
    r"^batch\[(\d+)\] output=(\S+) version=(\d+) decision_id=([0-9a-f]{32}) ", re.M
)


def _go() -> str:
    go = shutil.which("go")
    assert go is not None, "`go` must be on PATH (the Go stubs are built and checked in CI)"
    return go


def _go_env() -> dict[str, str]:
    # No VCS stamping: the binary is built from a work tree that may have uncommitted files.
    return {**os.environ, "GOFLAGS": "-buildvcs=false", "PATH": f"{TOOLS_BIN}:{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def go_plugins() -> Path:
    """protoc-gen-go and protoc-gen-go-grpc at their pinned versions, installed if missing."""
    _go()
    done = subprocess.run(
        [str(ROOT / "scripts" / "install-go-tools"), "plugins"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return TOOLS_BIN


@pytest.fixture(scope="module")
def predict_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example caller, built from clients/go with `go build`."""
    out = tmp_path_factory.mktemp("go-bin") / "predict"
    done = subprocess.run(
        [_go(), "build", "-o", str(out), "./cmd/predict"],
        cwd=GO_MODULE,
        env=_go_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _generated_files(root: Path) -> list[str]:
    # go.mod and go.sum beside the stubs are hand-kept; everything else there is generated.
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.go") if p.is_file())


def test_generated_go_is_not_stale(go_plugins: Path, tmp_path: Path) -> None:
    """`buf generate` from protos/ reproduces gen/go byte for byte (rowcast/v1 only)."""
    buf = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    done = subprocess.run(
        [buf, "generate", "--output", str(tmp_path)],
        cwd=ROOT,
        env=_go_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fresh = tmp_path / "gen" / "go"
    fresh_files = _generated_files(fresh)
    committed = _generated_files(GENERATED)
    assert fresh_files == committed, "run `buf generate` (PATH=.tools/bin:$PATH)"
    _, mismatch, errors = filecmp.cmpfiles(fresh, GENERATED, fresh_files, shallow=False)
    assert not mismatch and not errors, (
        f"stale Go stubs: {mismatch + errors}; run `PATH=$PWD/.tools/bin:$PATH buf generate`"
    )


def _secured(security: SecuritySettings, token_file: str | None = "admin.token") -> list[str]:
    """The flags that point the caller at the suite's CA and one of its tokens (None: none)."""
    flags = ["-cacert", str(security.ca_file)]
    if token_file is not None:
        flags += ["-token-file", str(security.auth_dir / token_file)]
    return flags


async def _run(binary: Path, *args: str) -> tuple[int, str, str]:
    # Async on purpose: the servers under test run on this event loop, so a blocking
    # subprocess.run would stall them until the caller's deadline.
    # No ROWCAST_* from the environment, and a working directory without a .rowcast home:
    # every credential comes from the flags.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROWCAST_")}
    proc = await asyncio.create_subprocess_exec(
        str(binary), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, cwd=binary.parent,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_go_caller_predicts_one_and_a_batch(
    predict_binary: Path, suite: Suite, published: Published
) -> None:
    """Over TLS with a bearer token, the Go caller gets one answer and a batch of answers, all
    from the active version."""
    code, out, err = await _run(
        predict_binary, "-addr", suite.targets.prediction, "-model", MODEL, "-timeout", "5s",
        *_secured(suite.security),
    )  # fmt: skip
    assert code == 0, out + err
    version = published.v1.version.version
    single = _PREDICT.search(out)
    assert single is not None, out
    assert 0.0 <= float(single.group(1)) <= 1.0
    assert int(single.group(2)) == version
    size = _BATCH_SIZE.search(out)
    assert size is not None, out
    assert int(size.group(1)) == DEMO_BATCH_SIZE
    items = _BATCH_ITEM.findall(out)
    assert [int(i) for i, *_ in items] == list(range(DEMO_BATCH_SIZE))
    assert {int(v) for _, _, v, _ in items} == {version}
    assert len({d for *_, d in items} | {single.group(3)}) == DEMO_BATCH_SIZE + 1


async def test_go_caller_exits_non_zero_on_an_error(predict_binary: Path, suite: Suite) -> None:
    """An unknown model ends the Go caller with exit code 1 and the code (Go's name) on stderr."""
    code, out, err = await _run(
        predict_binary, "-addr", suite.targets.prediction, "-model", "no_such_model",
        "-timeout", "5s", *_secured(suite.security),
    )  # fmt: skip
    assert code == 1, out + err
    assert "NotFound" in err


async def test_go_caller_decodes_the_details_of_a_bad_request(
    predict_binary: Path, suite: Suite, published: Published
) -> None:
    """A string for a numeric feature is INVALID_ARGUMENT; the Go caller decodes the status
    details and prints the ErrorInfo reason and the BadRequest field violation."""
    code, out, err = await _run(
        predict_binary, "-addr", suite.targets.prediction, "-model", MODEL, "-timeout", "5s",
        "-feature", "income=lots", *_secured(suite.security),
    )  # fmt: skip
    assert code == 1, out + err
    assert "InvalidArgument" in err
    assert "reason=INVALID_ARGUMENT domain=rowcast.dev" in err
    assert 'field_violation field=features.income description="must be a number, got str"' in err


async def test_go_caller_without_a_token_is_unauthenticated(
    predict_binary: Path, suite: Suite
) -> None:
    """Over TLS but with no token, the secure suite answers Unauthenticated, which the Go
    caller prints with its reason."""
    code, out, err = await _run(
        predict_binary, "-addr", suite.targets.prediction, "-model", MODEL, "-timeout", "5s",
        *_secured(suite.security, None),
    )  # fmt: skip
    assert code == 1, out + err
    assert "Predict: Unauthenticated:" in err
    assert "reason=UNAUTHENTICATED domain=rowcast.dev" in err


async def test_go_caller_with_a_token_lacking_the_role_is_permission_denied(
    predict_binary: Path, suite: Suite
) -> None:
    """A token whose roles do not include predictor (the approver's) is PermissionDenied,
    and the message names the role Predict needs."""
    code, out, err = await _run(
        predict_binary, "-addr", suite.targets.prediction, "-model", MODEL, "-timeout", "5s",
        *_secured(suite.security, "approver.token"),
    )  # fmt: skip
    assert code == 1, out + err
    assert "Predict: PermissionDenied:" in err
    assert "predictor" in err


async def test_go_caller_refuses_to_run_without_a_ca(predict_binary: Path, suite: Suite) -> None:
    """With no CA (no flag, no ROWCAST_* environment) and no -insecure, the Go caller does
    not fall back to plain text: it exits 1 saying it needs -cacert."""
    code, out, err = await _run(
        predict_binary, "-addr", suite.targets.prediction, "-model", MODEL, "-timeout", "5s"
    )
    assert code == 1, out + err
    assert "no CA: give -cacert" in err


async def test_go_caller_in_plain_text_is_refused_by_the_tls_suite(
    predict_binary: Path, suite: Suite
) -> None:
    """-insecure (plain text) against the TLS suite never gets an answer: Unavailable."""
    code, out, err = await _run(
        predict_binary, "-addr", suite.targets.prediction, "-model", MODEL, "-timeout", "5s",
        "-insecure",
    )  # fmt: skip
    assert code == 1, out + err
    assert "Predict: Unavailable:" in err
