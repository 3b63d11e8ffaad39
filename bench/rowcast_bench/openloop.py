"""An open-loop load generator for Predict: calls start at fixed intended times whatever the
server does, and each call's latency is measured from its intended start.

ghz at a fixed `--rps` is a closed loop underneath (a worker whose call is slow does not start
the next one on time), so a server stall delays the calls that would have arrived meanwhile
instead of queueing them, and their waiting is never measured: coordinated omission. Here call
i is due at t0 + i / rps; if the generator or the server falls behind, the calls that are due
still start (concurrently) and count from when they were due. The generator's own lateness
(how far behind its schedule a call was actually sent) is reported beside the latencies, so a
late generator is not mistaken for a slow server.

    python -m rowcast_bench.openloop --target 127.0.0.1:50051 --data-file predict.json \\
        --rps 700 --duration 10 --output report.json [--ca-file ca.pem --metadata-file md.json]

The data file is ghz's: a JSON list of PredictRequest objects (proto3 JSON), used in turn.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import grpc
import numpy as np
from google.protobuf import json_format

from rowcast.aio import within
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast_bench.ghz import GhzError, GhzRun
from rowcast_bench.measurement import Measurement
from rowcast_bench.tools import pinned

#: Largest number of calls in flight; beyond it a due call is counted as an error (the server
#: is not keeping up at all) rather than piling up without bound.
MAX_IN_FLIGHT = 2_000


@dataclass(frozen=True)
class OpenLoopReport:
    """What one open-loop run measured (latencies in ms, from each call's intended start)."""

    target_rps: float
    duration_s: float
    count: int
    errors: int
    #: Successful calls per second of the run's wall time.
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    #: Latency from the actual send instead (what a closed-loop tool would report).
    service_p99_ms: float
    #: How late the generator sent calls (ms behind their intended start): its p99 and max.
    send_lag_p99_ms: float
    send_lag_max_ms: float
    #: Latency at 0%, 1%, ..., 100% (ms), from the intended start.
    quantiles_ms: list[float]
    error_detail: dict[str, int]


def load_requests(data_file: Path) -> list[pred_pb.PredictRequest]:
    raw = json.loads(data_file.read_text())
    items = raw if isinstance(raw, list) else [raw]
    return [json_format.ParseDict(item, pred_pb.PredictRequest()) for item in items]


def _channel(target: str, ca_file: Path | None) -> grpc.aio.Channel:
    if ca_file is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca_file.read_bytes()))


async def run(
    target: str,
    requests: list[pred_pb.PredictRequest],
    rps: float,
    duration_s: float,
    *,
    connections: int = 1,
    ca_file: Path | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
    timeout_s: float = 5.0,
) -> OpenLoopReport:
    """Send Predict at `rps` for `duration_s` seconds over `connections` channels."""
    # Distinct channel arguments keep gRPC from sharing one subchannel (one connection).
    channels = [
        _channel(target, ca_file) if i == 0 else _with_index(target, ca_file, i)
        for i in range(connections)
    ]
    stubs = [pred_grpc.PredictionServiceStub(c) for c in channels]
    for c in channels:
        await within(c.channel_ready(), timeout_s)
    total = max(1, int(rps * duration_s))
    latency = np.full(total, np.nan)
    service = np.full(total, np.nan)
    lag = np.zeros(total)
    errors: dict[str, int] = {}
    in_flight: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def call(i: int, due: float) -> None:
        sent = loop.time()
        lag[i] = sent - due
        try:
            await stubs[i % len(stubs)].Predict(
                requests[i % len(requests)], timeout=timeout_s, metadata=metadata or None
            )
        except grpc.aio.AioRpcError as exc:
            errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
            return
        done = loop.time()
        latency[i] = done - due
        service[i] = done - sent

    start = loop.time() + 0.05
    for i in range(total):
        due = start + i / rps
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        if len(in_flight) >= MAX_IN_FLIGHT:
            errors["GENERATOR_LIMIT"] = errors.get("GENERATOR_LIMIT", 0) + 1
            continue
        task = asyncio.create_task(call(i, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=timeout_s + 1.0)
    wall = loop.time() - start
    for c in channels:
        await c.close()
    ok = latency[~np.isnan(latency)] * 1000.0
    svc = service[~np.isnan(service)] * 1000.0
    lag_ms = lag * 1000.0

    def pct(values: np.ndarray, p: float) -> float:
        return float(np.percentile(values, p)) if values.size else float("nan")

    return OpenLoopReport(
        target_rps=rps,
        duration_s=duration_s,
        count=int(ok.size),
        errors=sum(errors.values()),
        rps=ok.size / wall if wall > 0 else 0.0,
        p50_ms=pct(ok, 50),
        p90_ms=pct(ok, 90),
        p99_ms=pct(ok, 99),
        max_ms=float(ok.max()) if ok.size else float("nan"),
        service_p99_ms=pct(svc, 99),
        send_lag_p99_ms=pct(lag_ms, 99),
        send_lag_max_ms=float(lag_ms.max()),
        quantiles_ms=[round(pct(ok, q), 4) for q in range(101)] if ok.size else [],
        error_detail=errors,
    )


def _with_index(target: str, ca_file: Path | None, index: int) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = [("rowcast.bench.channel", index)]
    if ca_file is None:
        return grpc.aio.insecure_channel(target, options=options)
    creds = grpc.ssl_channel_credentials(ca_file.read_bytes())
    return grpc.aio.secure_channel(target, creds, options=options)


def read_metadata(path: Path | None) -> tuple[tuple[str, str], ...]:
    """ghz's metadata file (a JSON object) as gRPC metadata pairs."""
    if path is None:
        return ()
    return tuple((str(k).lower(), str(v)) for k, v in json.loads(path.read_text()).items())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--target", required=True, help="host:port of the PredictionService.")
@click.option("--data-file", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--rps", type=float, required=True, help="Calls started per second.")
@click.option("--duration", "duration_s", type=float, default=10.0, show_default=True)
@click.option("--connections", type=int, default=1, show_default=True)
@click.option("--ca-file", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--metadata-file", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--output", type=click.Path(path_type=Path), required=True)
def main(
    target: str,
    data_file: Path,
    rps: float,
    duration_s: float,
    connections: int,
    ca_file: Path | None,
    metadata_file: Path | None,
    output: Path,
) -> None:
    """Run Predict open loop and write the report as JSON."""
    started = time.monotonic()
    report = asyncio.run(
        run(
            target,
            load_requests(data_file),
            rps,
            duration_s,
            connections=connections,
            ca_file=ca_file,
            metadata=read_metadata(metadata_file),
        )
    )
    output.write_text(json.dumps(asdict(report)))
    click.echo(
        f"{report.rps:,.0f} calls/s of {rps:,.0f} due, p50 {report.p50_ms:.3f} ms, "
        f"p99 {report.p99_ms:.3f} ms (service p99 {report.service_p99_ms:.3f}), "
        f"{report.errors} errors, send lag p99 {report.send_lag_p99_ms:.3f} ms, "
        f"{time.monotonic() - started:.1f} s"
    )


def measurement(raw: dict[str, Any], run: GhzRun) -> Measurement:
    """A Measurement from this tool's JSON report (latencies from the intended starts)."""
    if not raw.get("count"):
        raise GhzError(f"open loop {run.name}: no successful call ({raw.get('error_detail')})")
    return Measurement(
        name=run.name,
        description=run.description,
        rpc=run.call.rsplit(".", 1)[-1],
        server=run.server,
        concurrency=run.connections,
        duration_s=run.duration_s,
        rps=float(raw["rps"]),
        p50_ms=float(raw["p50_ms"]),
        p90_ms=float(raw["p90_ms"]),
        p99_ms=float(raw["p99_ms"]),
        count=int(raw["count"]),
        errors=int(raw["errors"]),
        target_rps=run.rps,
        quantiles_ms=tuple(raw.get("quantiles_ms") or ()),
        error_detail={str(k): int(v) for k, v in (raw.get("error_detail") or {}).items()},
    )


def command(
    run: GhzRun,
    target: str,
    output: Path,
    cpu: int,
    ca_file: Path | None,
    metadata_file: Path | None,
) -> list[str]:
    """The command line of one open-loop run, pinned to the client core."""
    if run.rps is None:
        raise ValueError(f"open loop {run.name} needs a rate")
    argv = [
        sys.executable, "-m", "rowcast_bench.openloop", "--target", target,
        "--data-file", str(run.data_file), "--rps", f"{run.rps:.1f}",
        "--duration", f"{run.duration_s:g}", "--connections", str(run.connections),
        "--output", str(output),
    ]  # fmt: skip
    if ca_file is not None:
        argv += ["--ca-file", str(ca_file)]
        if metadata_file is not None:
            argv += ["--metadata-file", str(metadata_file)]
    return pinned(cpu, argv)


def run_measured(
    run: GhzRun,
    target: str,
    scratch: Path,
    cpu: int,
    ca_file: Path | None = None,
    metadata_file: Path | None = None,
) -> Measurement:
    """Run the generator as a subprocess (on the client core, like ghz) and read its report."""
    output = scratch / f"openloop-{run.name}.json"
    output.unlink(missing_ok=True)
    argv = command(run, target, output, cpu, ca_file, metadata_file)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=run.duration_s + 60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GhzError(f"open loop {run.name} did not finish") from exc
    if done.returncode != 0 or not output.is_file():
        raise GhzError(f"open loop {run.name} failed: {(done.stderr or done.stdout)[-2000:]}")
    return measurement(json.loads(output.read_text()), run)


if __name__ == "__main__":
    main()
