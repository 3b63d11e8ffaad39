"""`rowcast bench`: measure the prediction hot path against its floors, write the results."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rowcast.config import Settings
from rowcast_bench.plan import BenchOptions
from rowcast_bench.report import verdict_word, write
from rowcast_bench.runner import BenchRun

_DEFAULTS = BenchOptions()


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=0.5),
    default=_DEFAULTS.duration_s,
    show_default=True,
    help="Seconds of load per measurement.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=_DEFAULTS.concurrency,
    show_default=True,
    help="ghz workers of the throughput runs (the latency-ratio runs always use 1).",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.warmup_s,
    show_default=True,
    help="Seconds of discarded load before each server's first measurement.",
)
@click.option(
    "--downstream-warmup",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.downstream_warmup_s,
    show_default=True,
    help="Seconds of discarded audited load before the first rowcast measurement "
    "(warms HBase and the AuditService; 0: none).",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Short runs (1 s each) for a smoke test; the numbers are not worth quoting.",
)
@click.option(
    "--model",
    default=_DEFAULTS.model,
    show_default=True,
    help="Model to measure; published (demo data) if it has no active version.",
)
@click.option(
    "--republish",
    is_flag=True,
    help="Publish and activate a new version even if the model has an active one.",
)
@click.option(
    "--stream-messages",
    type=click.IntRange(min=1, max=10_000),
    default=_DEFAULTS.stream_messages,
    show_default=True,
    help="Messages per StreamPredict call.",
)
@click.option(
    "--max-other-cores",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.max_other_cores,
    show_default=True,
    help="CPU (cores) other processes may use before a measurement counts as disturbed.",
)
@click.option(
    "--attempts",
    type=click.IntRange(min=1, max=10),
    default=_DEFAULTS.attempts,
    show_default=True,
    help="Runs at most per measurement while disturbed; the quietest is kept.",
)
@click.option(
    "--quiet-wait",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.quiet_wait_s,
    show_default=True,
    help="Seconds to wait for other processes to go quiet before each run (0: do not wait).",
)
@click.option(
    "--client-cpu",
    type=click.IntRange(min=0),
    default=_DEFAULTS.client_cpu,
    show_default=True,
    help="Core ghz is pinned to (taskset).",
)
@click.option(
    "--server-cpu",
    type=click.IntRange(min=0),
    default=_DEFAULTS.server_cpu,
    show_default=True,
    help="Core every measured server is pinned to (taskset).",
)
@click.option(
    "--downstream-cpu",
    type=click.IntRange(min=0),
    default=None,
    help="Core to move HBase's processes and the AuditServices to for the run, off the "
    "servers' core, as production runs them on other machines (default: not pinned). An "
    "HBase found running gets its threads' affinity back at the end.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_DEFAULTS.out_dir,
    show_default=True,
    help="Directory for <timestamp>.json/.md, latest.json/.md and the PNG plots.",
)
@click.option(
    "--tools-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_DEFAULTS.tools_dir,
    show_default=True,
    help="Where ghz is installed (go install) if it is not there yet.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Serve the measured servers (and the floors) in plain text, without authentication "
    "(local experiments only); the TLS + auth on/off pair still runs.",
)
@click.option(
    "--check/--no-check",
    default=False,
    show_default=True,
    help="Exit with status 3 if any ratio misses its goal (status 1: a measurement failed).",
)
def bench(
    duration: float,
    concurrency: int,
    warmup: float,
    downstream_warmup: float,
    quick: bool,
    model: str,
    republish: bool,
    stream_messages: int,
    max_other_cores: float,
    attempts: int,
    quiet_wait: float,
    client_cpu: int,
    server_cpu: int,
    downstream_cpu: int | None,
    out_dir: Path,
    tools_dir: Path,
    insecure: bool,
    check: bool,
) -> None:
    """Benchmark Predict, PredictBatch and StreamPredict against their floors.

    \b
    In one run, with ghz pinned to one core and the servers to another, it measures:
      echo           a bare grpc.aio server (the Python gRPC floor)
      raw_row        a happybase row() loop on the version table (the store floor)
      compute_*      LightGBM computing on request (demo model, and 1,000 trees)
      predict_*      rowcast Predict: warm cache, cache off, audit off / fsync, 70% load,
                     metrics on / off and TLS + auth on / off side by side
      *_batch32_*    PredictBatch of 32;  stream_predict: StreamPredict
    Servers run secure, as `rowcast suite up` runs them: TLS with ROWCAST_HOME's
    certificates (made if missing) and a predictor token of the run's own on every call.
    Uses the HBase of ROWCAST_HOME if it runs, else starts one on free ports (and stops
    it). Writes bench/results/<timestamp>.json/.md and latest.json/.md, prints the ratios.
    """
    options = BenchOptions(
        duration_s=duration,
        warmup_s=warmup,
        downstream_warmup_s=downstream_warmup,
        concurrency=concurrency,
        stream_messages=stream_messages,
        model=model,
        republish=republish,
        max_other_cores=max_other_cores,
        attempts=attempts,
        quiet_wait_s=quiet_wait,
        client_cpu=client_cpu,
        server_cpu=server_cpu,
        downstream_cpu=downstream_cpu,
        tools_dir=tools_dir,
        out_dir=out_dir,
        secure=not insecure,
    )
    if insecure:
        click.echo(
            "warning: --insecure: the measured servers serve plain text and check no "
            "credentials (local experiments only)",
            err=True,
        )
    if quick:
        options = options.quickened()
    try:
        result = BenchRun(options, Settings.from_env(), click.echo).run()
    except Exception as exc:  # setup failed (tools, HBase, publish): say why, exit non-zero
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    written = write(result, out_dir)
    click.echo("")
    for v in written.verdicts:
        value = "-" if v.value is None else f"{v.value:8.3f}"
        word = verdict_word(v.passed, v.value)
        click.echo(f"{v.goal.name:32} {value:>8}  {v.goal.goal_text:10} {word}")
    click.echo(f"\nwrote {written.json} and {written.markdown} (and latest.*)")
    if result.failures:
        click.echo(f"{len(result.failures)} measurement(s) failed: {', '.join(result.failures)}")
        sys.exit(1)
    if check and any(v.passed is False for v in written.verdicts):
        sys.exit(3)


if __name__ == "__main__":
    bench()
