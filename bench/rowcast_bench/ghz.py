"""Runs ghz once (pinned to the client core, bounded in time) and parses its JSON report."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from rowcast_bench.measurement import Measurement, quantiles_ms
from rowcast_bench.tools import pinned

#: Extra seconds ghz gets beyond its run duration before it is killed (reflection, drain).
_SLACK_S: Final = 60.0
_NS_PER_MS: Final = 1_000_000.0


class GhzError(Exception):
    """ghz failed, timed out or produced a report we cannot read."""


@dataclass(frozen=True)
class GhzRun:
    """One load run: which call, with which data, how hard and for how long."""

    name: str
    description: str
    call: str
    data_file: Path
    server: str
    concurrency: int
    duration_s: float
    keys_per_call: int = 1
    #: Fixed request rate (ghz --rps); None runs as fast as the server answers.
    rps: float | None = None
    #: For a streaming call: messages per stream (ghz --stream-call-count).
    stream_messages: int | None = None
    #: Connections the load is spread over (ghz --connections): more than one reaches every
    #: process of a server started with --processes (the kernel balances connections).
    connections: int = 1
    #: Run open loop at `rps` (rowcast_bench.openloop: latency from each call's intended
    #: start) instead of ghz.
    open_loop: bool = False


@dataclass(frozen=True)
class Ghz:
    """The ghz binary and where its load runs: one core, one host, a scratch directory."""

    binary: Path
    cpu: int
    scratch: Path
    #: The contract as a protoset; None makes ghz ask the server (reflection).
    protoset: Path | None = None
    #: ghz metadata JSON with the run's `authorization: Bearer <token>`, sent on every call to
    #: a TLS server (a file, so that the token shows in no command line).
    metadata_file: Path | None = None

    def command(
        self, run: GhzRun, target: str, report: Path, ca_file: Path | None = None
    ) -> list[str]:
        """ghz's command line; over TLS checked against `ca_file`, with the token, when the
        server serves TLS (None: plain text)."""
        if ca_file is None:
            security = ["--insecure"]
        else:
            security = ["--cacert", str(ca_file)]
            if self.metadata_file is not None:
                security += ["--metadata-file", str(self.metadata_file)]
        argv = [
            str(self.binary),
            *security,
            "--call", run.call,
            "--data-file", str(run.data_file),
            "--concurrency", str(run.concurrency),
            "--connections", str(run.connections),
            "--duration", f"{run.duration_s:g}s",
            # Calls in flight when time is up finish and count (no canceled tail).
            "--duration-stop", "wait",
            "--timeout", "5s",
            "--connect-timeout", "5s",
            # ghz itself on one core: GOMAXPROCS=1 matches the one core it is pinned to.
            "--cpus", "1",
            "--disable-template-functions",
            "--disable-template-data",
            "--format", "json",
            "--output", str(report),
        ]  # fmt: skip
        if self.protoset is not None:
            argv += ["--protoset", str(self.protoset)]
        if run.rps is not None:
            argv += ["--rps", str(max(1, round(run.rps)))]
        if run.stream_messages is not None:
            argv += ["--stream-call-count", str(run.stream_messages)]
        return [*pinned(self.cpu, argv), target]

    def run(self, run: GhzRun, target: str, ca_file: Path | None = None) -> Measurement:
        """Run ghz against `target` (host:port; TLS when `ca_file` is given) and return its
        measurement."""
        report = self.scratch / f"ghz-{run.name}.json"
        report.unlink(missing_ok=True)
        argv = self.command(run, target, report, ca_file)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=run.duration_s + _SLACK_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GhzError(
                f"ghz {run.name} did not finish in {run.duration_s + _SLACK_S:g}s"
            ) from exc
        # ghz exits non-zero when any call failed; the report still says how many and why.
        if not report.is_file():
            raise GhzError(
                f"ghz {run.name} wrote no report (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
        try:
            raw = json.loads(report.read_text())
        except ValueError as exc:
            raise GhzError(f"ghz {run.name}: unreadable report {report}: {exc}") from exc
        return parse_report(raw, run)


def parse_report(raw: dict[str, Any], run: GhzRun) -> Measurement:
    """A Measurement from ghz's `--format json` report (durations there are nanoseconds)."""
    percentiles = {
        int(p["percentage"]): float(p["latency"]) / _NS_PER_MS
        for p in raw.get("latencyDistribution") or []
    }
    status = raw.get("statusCodeDistribution") or {}
    codes = {str(k): int(v) for k, v in status.items()}
    ok = codes.get("OK", 0)
    errors = sum(v for k, v in codes.items() if k != "OK")
    details = raw.get("details") or []
    latencies_s = np.array([d["latency"] / 1e9 for d in details if not d.get("error")], dtype=float)
    if ok == 0 or not percentiles:
        raise GhzError(f"ghz {run.name}: no successful call (status codes: {codes or 'none'}; "
                       f"errors: {raw.get('errorDistribution')})")  # fmt: skip
    return Measurement(
        name=run.name,
        description=run.description,
        rpc=run.call.rsplit(".", 1)[-1],
        server=run.server,
        concurrency=run.concurrency,
        duration_s=run.duration_s,
        # Successful calls per second of wall time (ghz's own `rps` also counts failures).
        rps=ok / (float(raw["total"]) / 1e9),
        p50_ms=percentiles[50],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        count=ok,
        errors=errors,
        keys_per_call=run.keys_per_call,
        target_rps=run.rps,
        quantiles_ms=quantiles_ms(latencies_s),
        error_detail={str(k): int(v) for k, v in (raw.get("errorDistribution") or {}).items()},
    )
