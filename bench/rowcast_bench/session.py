"""The measurements of one benchmark run, in a fixed order, each against a freshly started,
pinned server; results and failures go into the run's RunResult."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from rowcast.config import Settings
from rowcast_bench import workload as wl
from rowcast_bench.cpu import CpuMeter
from rowcast_bench.fixture import LARGE_PARAMS, BenchModel
from rowcast_bench.ghz import Ghz, GhzError, GhzRun
from rowcast_bench.measurement import Measurement, RunResult
from rowcast_bench.plan import BenchOptions, server_env
from rowcast_bench.processes import ServerSpec, module_main, rowcast_serve, running
from rowcast_bench.quiet import QuietGate
from rowcast_bench.rawstore import RawRowLoop
from rowcast_dev.hbase.ports import free_ports

Progress = Callable[[str], None]


@dataclass(frozen=True)
class _DataFiles:
    """The ghz data files of one run."""

    predict_hot: Path
    predict_cold: Path
    batch_hot: Path
    batch_cold: Path
    stream_hot: Path


class Session:
    """The measurements of one run against one HBase and one published model."""

    def __init__(
        self,
        o: BenchOptions,
        settings: Settings,
        model: BenchModel,
        ghz: Ghz,
        scratch: Path,
        result: RunResult,
        say: Progress,
        under_test: Callable[[], list[int]],
    ) -> None:
        self._o = o
        self._settings = settings
        self._model = model
        self._ghz = ghz
        self._scratch = scratch
        self._result = result
        self._say = say
        #: Pids of long-lived processes under test: HBase, and the audit server once started.
        self.under_test = under_test
        self._extra_pids: list[int] = []
        self._gate = QuietGate(o.max_other_cores, o.attempts, o.quiet_wait_s, say)
        self._hot = wl.customers(o.hot_inputs, seed=1)
        self._cold = wl.customers(o.cold_inputs, seed=2)
        self._data = self._write_data()

    def _write_data(self) -> _DataFiles:
        m, d = self._model.name, self._scratch
        return _DataFiles(
            predict_hot=wl.write_json(d / "predict_hot.json", wl.predict_data(m, self._hot)),
            predict_cold=wl.write_json(d / "predict_cold.json", wl.predict_data(m, self._cold)),
            batch_hot=wl.write_json(d / "batch_hot.json", wl.batch_data(m, self._hot)),
            batch_cold=wl.write_json(d / "batch_cold.json", wl.batch_data(m, self._cold)),
            stream_hot=wl.write_json(
                d / "stream_hot.json", wl.stream_data(m, self._hot, self._o.stream_messages)
            ),
        )

    # ----------------------------------------------------------------------------- plan

    def run_all(self) -> None:
        self._raw_row()
        self._echo()
        self._compute("compute_demo", self._model.model_file, "demo model (200 trees)")
        self._compute(
            "compute_large",
            self._model.large_model_file,
            f"large model ({LARGE_PARAMS.num_trees} trees, {LARGE_PARAMS.num_leaves} leaves)",
        )
        audit_port, *_ = free_ports(1)
        audit = ServerSpec(
            "rowcast-audit", rowcast_serve("audit", audit_port), audit_port,
            server_env(self._settings),
        )  # fmt: skip
        # The AuditService is downstream, like HBase: not pinned, so that its writes do not
        # take the measured server's core (in production it runs elsewhere).
        with running([audit], None, self._scratch) as (audit_proc,):
            self._extra_pids = [audit_proc.pid]
            self._rowcast_cached(audit_port)
            self._metrics_cost(audit_port)
            self._rowcast_audit_off(audit_port)
            self._rowcast_audit_fsync(audit_port)
            self._rowcast_uncached(audit_port)

    def _raw_row(self) -> None:
        self._say("raw happybase row() loop")
        hb = self._settings.hbase
        loop = RawRowLoop(hb.host, hb.thrift_port, self._model.table, hb.timeout_s)
        keys = self._model.keys(self._cold)

        def measure() -> Measurement:
            m = loop.measure(
                keys,
                self._o.duration_s,
                self._o.server_cpu,
                warmup_s=self._o.warmup_s,
                meter=self._meter(None),
            )
            self._say_result(m)
            return m

        try:
            m = self._gate.run("raw_row", self._ours(None), measure)
        except Exception as exc:  # recorded as a failure; the other measurements still run
            self._result.failures["raw_row"] = f"{type(exc).__name__}: {exc}"
            return
        self._record(m)

    def _echo(self) -> None:
        (port,) = free_ports(1)
        spec = ServerSpec("echo", module_main("rowcast_bench.echo", "--port", str(port)), port)
        self._with_server(
            spec,
            self._data.predict_hot,
            [
                self._unary("echo", "bare grpc.aio server, fixed PredictResponse", "echo"),
                self._unary("echo_c1", "bare grpc.aio server, one call at a time", "echo", c=1),
            ],
        )

    def _compute(self, name: str, model_file: Path, what: str) -> None:
        (port,) = free_ports(1)
        signature = self._model.write_signature(self._scratch / "signature.json")
        argv = module_main(
            "rowcast_bench.compute", "--port", str(port), "--model-file", str(model_file),
            "--signature-file", str(signature), "--version", str(self._model.version),
        )  # fmt: skip
        spec = ServerSpec(name.replace("_", "-"), argv, port)
        run = replace(
            self._unary(name, f"LightGBM computes on request: {what}", spec.name),
            data_file=self._data.predict_cold,
        )
        self._with_server(spec, self._data.predict_cold, [run])

    def _rowcast(
        self,
        name: str,
        audit_port: int,
        *,
        cache_size: int | None,
        audit: bool,
        durability: str | None = None,
        metrics: bool | None = None,
    ) -> ServerSpec:
        (port,) = free_ports(1)
        env = server_env(
            self._settings,
            audit_port=audit_port,
            cache_size=cache_size,
            audit=audit,
            durability=durability,
            metrics=metrics,
        )
        return ServerSpec(name, rowcast_serve("prediction", port), port, env)

    def _rowcast_cached(self, audit_port: int) -> None:
        spec = self._rowcast("rowcast", audit_port, cache_size=None, audit=True)
        hot = self._data.predict_hot
        batch = self._batch("predict_batch32_c1", "32 cached inputs per call", spec.name, c=1)
        self._with_server(
            spec,
            hot,
            [
                self._unary("predict_hit", "Predict, warm cache, audit and metrics on", spec.name),
                self._unary("predict_hit_c1", "Predict, warm cache, one at a time", spec.name, c=1),
                # Runs at a fixed rate: 70% of what predict_hit reached (filled in below).
                self._unary("predict_hit_70pct", "Predict at 70% of max rps", spec.name),
                batch,
                replace(batch, name="predict_batch32", concurrency=self._o.concurrency,
                        description="32 cached inputs per call, concurrent"),
                GhzRun(
                    name="stream_predict",
                    description=f"StreamPredict, {self._o.stream_messages} cached inputs a call",
                    call=wl.STREAM_PREDICT,
                    data_file=self._data.stream_hot,
                    server=spec.name,
                    concurrency=self._o.concurrency,
                    duration_s=self._o.duration_s,
                    keys_per_call=self._o.stream_messages,
                    stream_messages=self._o.stream_messages,
                ),
            ],
        )  # fmt: skip

    def _metrics_cost(self, audit_port: int) -> None:
        """Cached Predict on two servers side by side, metrics on (the default) and
        ROWCAST_METRICS=off: each at full speed once (rps), then in turns at one fixed rate,
        70 % of the slower one's rps (turn i: on then off, or off then on; recorded as
        `..._70pct_<i>`, and ratios.py compares the two runs of each turn).

        What metrics cost is a few percent of server CPU per call: less than a shared machine
        drifts between two runs minutes apart, and less than CPU per call moves with the load
        (a busier event loop spends less per call), hence the same rate and the turns. The
        idle server of the pair shares the server core but does next to nothing meanwhile.
        """
        on = self._rowcast("rowcast-metrics-on", audit_port, cache_size=None, audit=True)
        off = self._rowcast(
            "rowcast-metrics-off", audit_port, cache_size=None, audit=True, metrics=False
        )
        peak = {
            on.name: self._unary("predict_hit_metrics_on", "Predict, warm cache, metrics on "
                                 "(beside metrics off)", on.name),
            off.name: self._unary("predict_hit_metrics_off", "Predict, warm cache, metrics off "
                                  "(beside metrics on)", off.name),
        }  # fmt: skip
        self._say(f"servers {on.name} and {off.name}: starting, measured side by side")
        extra = self._extra_pids
        try:
            with running([on, off], self._o.server_cpu, self._scratch) as procs:
                pids = {spec.name: proc.pid for spec, proc in zip((on, off), procs, strict=True)}
                # Both are under test: the idle one's CPU is not someone else's load.
                self._extra_pids = [*extra, *pids.values()]
                self._warm_up(on, self._data.predict_hot)
                self._warm_up(off, self._data.predict_hot)
                rates = []
                for spec in (on, off):
                    m = self._measured(spec, peak[spec.name], pids[spec.name])
                    self._record(m)
                    rates.append(m.rps)
                fixed = {
                    name: replace(run, name=run.name + "_70pct", rps=0.7 * min(rates),
                                  description=f"Predict, warm cache, metrics {state}, at 70% of "
                                  "the pair's lower rps, in turns")
                    for (name, run), state in zip(peak.items(), ("on", "off"), strict=True)
                }  # fmt: skip
                for turn in range(1, self._o.metrics_turns + 1):
                    for spec in (on, off) if turn % 2 else (off, on):
                        run = replace(fixed[spec.name], name=f"{fixed[spec.name].name}_{turn}")
                        self._record(self._measured(spec, run, pids[spec.name]))
        except Exception as exc:  # a server or a run failed: its measurements are failures
            for name in (*(run.name for run in peak.values()), "predict_hit_metrics_70pct"):
                if name not in self._result.measurements:
                    self._result.failures.setdefault(name, f"{type(exc).__name__}: {exc}")
        finally:
            self._extra_pids = extra

    def _measured(self, spec: ServerSpec, run: GhzRun, server_pid: int) -> Measurement:
        """One run through the quiet gate (repeated if others' load spoiled it)."""
        rate = f" rps={run.rps:.0f}" if run.rps else ""
        self._say(f"  {run.name}: Predict c={run.concurrency}{rate} for {run.duration_s:g}s")
        return self._gate.run(
            run.name, self._ours(server_pid), partial(self._once, spec, run, server_pid)
        )

    def _rowcast_audit_off(self, audit_port: int) -> None:
        spec = self._rowcast("rowcast-audit-off", audit_port, cache_size=None, audit=False)
        self._with_server(
            spec,
            self._data.predict_hot,
            [self._unary("predict_hit_audit_off", "Predict, warm cache, audit off", spec.name)],
        )

    def _rowcast_audit_fsync(self, audit_port: int) -> None:
        spec = self._rowcast(
            "rowcast-audit-fsync", audit_port, cache_size=None, audit=True, durability="fsync"
        )
        self._with_server(
            spec,
            self._data.predict_hot,
            [self._unary("predict_hit_audit_fsync", "Predict, warm cache, audit fsync", spec.name)],
        )

    def _rowcast_uncached(self, audit_port: int) -> None:
        spec = self._rowcast("rowcast-no-cache", audit_port, cache_size=0, audit=True)
        cold = self._data.predict_cold
        self._with_server(
            spec,
            cold,
            [
                replace(self._unary("predict_miss", "Predict, cache off: every call reads HBase",
                                    spec.name), data_file=cold),
                replace(self._unary("predict_miss_c1", "Predict, cache off, one at a time",
                                    spec.name, c=1), data_file=cold),
                replace(self._batch("predict_batch32_miss_c1", "32 uncached inputs per call",
                                    spec.name, c=1), data_file=self._data.batch_cold),
            ],
        )  # fmt: skip

    # ----------------------------------------------------------------------------- helpers

    def _unary(self, name: str, description: str, server: str, c: int | None = None) -> GhzRun:
        return GhzRun(
            name=name,
            description=description,
            call=wl.PREDICT,
            data_file=self._data.predict_hot,
            server=server,
            concurrency=c or self._o.concurrency,
            duration_s=self._o.duration_s,
        )

    def _batch(self, name: str, description: str, server: str, c: int) -> GhzRun:
        return GhzRun(
            name=name,
            description=description,
            call=wl.PREDICT_BATCH,
            data_file=self._data.batch_hot,
            server=server,
            concurrency=c,
            duration_s=self._o.duration_s,
            keys_per_call=wl.BATCH_SIZE,
        )

    def _with_server(self, spec: ServerSpec, warmup_data: Path, runs: Sequence[GhzRun]) -> None:
        self._say(f"server {spec.name}: starting on 127.0.0.1:{spec.port}")
        try:
            with running([spec], self._o.server_cpu, self._scratch) as (proc,):
                self._warm_up(spec, warmup_data)
                for run in runs:
                    self._measure(spec, run, proc.pid)
        except Exception as exc:  # the server failed: its measurements are failures
            for run in runs:
                self._result.failures.setdefault(run.name, f"{type(exc).__name__}: {exc}")

    def _warm_up(self, spec: ServerSpec, data: Path) -> None:
        if self._o.warmup_s <= 0:
            return
        warm = self._unary("warmup-" + spec.name, "discarded", spec.name)
        warm = replace(warm, data_file=data, duration_s=self._o.warmup_s)
        try:
            self._ghz.run(warm, spec.target)
        except GhzError as exc:
            self._say(f"  warm-up of {spec.name} failed: {exc}")

    def _ours(self, server_pid: int | None) -> Callable[[], list[int]]:
        """Pids of every process under test right now (for telling others' load apart)."""
        server = [] if server_pid is None else [server_pid]
        return lambda: [*server, *self._extra_pids, *self.under_test()]

    def _meter(self, server_pid: int | None) -> CpuMeter:
        return CpuMeter(lambda: [*self._extra_pids, *self.under_test()], server_pid)

    def _measure(self, spec: ServerSpec, run: GhzRun, server_pid: int) -> None:
        if run.name == "predict_hit_70pct":
            peak = self._result.measurements.get("predict_hit")
            if peak is None:
                self._result.failures[run.name] = "no predict_hit measurement to take 70% of"
                return
            run = replace(run, rps=0.7 * peak.rps)
        rate = f" rps={run.rps:.0f}" if run.rps else ""
        rpc = run.call.rsplit(".", 1)[-1]
        self._say(f"  {run.name}: {rpc} c={run.concurrency}{rate} for {run.duration_s:g}s")
        try:
            m = self._gate.run(
                run.name, self._ours(server_pid), lambda: self._once(spec, run, server_pid)
            )
        except GhzError as exc:
            self._result.failures[run.name] = str(exc)
            self._say(f"    failed: {str(exc)[:300]}")
            return
        self._record(m)

    def _once(self, spec: ServerSpec, run: GhzRun, server_pid: int) -> Measurement:
        meter = self._meter(server_pid)
        meter.start()
        m = self._ghz.run(run, spec.target)
        use = meter.stop()
        calls = m.count + m.errors
        per_call = (
            use.server_cpu_s / calls * 1e6 if use.server_cpu_s is not None and calls else None
        )
        m = replace(
            m,
            busy_cores=use.busy_cores,
            other_cores=use.other_cores,
            server_cpu_us_per_call=per_call,
        )
        self._say_result(m)
        return m

    def _record(self, m: Measurement) -> None:
        self._result.measurements[m.name] = m

    def _say_result(self, m: Measurement) -> None:
        errors = f", {m.errors} errors" if m.errors else ""
        other = f", others used {m.other_cores:.2f} cores" if m.other_cores is not None else ""
        cost = m.server_cpu_us_per_call
        cpu = f", server CPU {cost:.0f} us/call" if cost is not None else ""
        self._say(f"    {m.rps:,.0f} calls/s  p50 {m.p50_ms:.3f}  p90 {m.p90_ms:.3f}  "
                  f"p99 {m.p99_ms:.3f} ms{errors}{cpu}{other}")  # fmt: skip
