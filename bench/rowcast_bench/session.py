"""The measurements of one benchmark run, in a fixed order, each against a freshly started,
pinned server; results and failures go into the run's RunResult."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

from rowcast.config import Settings
from rowcast_bench import openloop
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

#: Connections of the multi-process runs (and of every warm-up, so that each process of a
#: multi-process server is warmed): a few per process, since the kernel places each one.
PROCESS_CONNECTIONS = 4

#: Runs at a fixed rate, and the full-speed measurement whose rps they take 70% of (each
#: runs after it, on the same server).
AT_70PCT_OF: dict[str, str] = {
    "echo_70pct": "echo",
    "echo_70pct_open": "echo",
    "predict_hit_70pct": "predict_hit",
    "predict_hit_70pct_open": "predict_hit",
}


@dataclass(frozen=True)
class _DataFiles:
    """The ghz data files of one run."""

    predict_hot: Path
    predict_cold: Path
    batch_hot: Path
    batch_cold: Path
    stream_hot: Path


@dataclass(frozen=True)
class _Pair:
    """Two servers measured side by side: a feature on and off (session: _side_by_side)."""

    on: ServerSpec
    off: ServerSpec
    #: Measurement names: `<name>` at full speed, `<name>_70pct_<turn>` at the fixed rate.
    on_name: str
    off_name: str
    #: How the descriptions name each side ("metrics on").
    on_what: str
    off_what: str
    turns: int


def _per_call_us(cpu_s: float | None, calls: int) -> float | None:
    return cpu_s / calls * 1e6 if cpu_s is not None and calls else None


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
        #: Pids of the AuditServices (downstream of every prediction server, like HBase).
        self._audit_pids: list[int] = []
        #: The CA of the run's TLS servers (made by the runner: rowcast_bench.secure.prepare).
        self._ca = settings.security.ca_file
        #: The AuditService ports by whether they serve TLS + auth (set in run_all).
        self._audit_ports: dict[bool, int] = {}
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
        # The AuditService is downstream, like HBase: not pinned with the measured server (in
        # production it runs elsewhere); on --downstream-cpu with HBase when given. Two of them: a
        # prediction server reaches its AuditService the way it is itself served (TLS and its
        # recorder token, or plain text), and the TLS + auth pair needs both.
        secure_port, plain_port = free_ports(2)
        audits = [
            ServerSpec("rowcast-audit", rowcast_serve("audit", secure_port), secure_port,
                       server_env(self._settings), ca_file=self._ca),
            ServerSpec("rowcast-audit-insecure", rowcast_serve("audit", plain_port), plain_port,
                       server_env(self._settings, secure=False)),
        ]  # fmt: skip
        self._audit_ports = {True: secure_port, False: plain_port}
        with running(audits, self._o.downstream_cpu, self._scratch) as procs:
            self._extra_pids = [proc.pid for proc in procs]
            self._audit_pids = list(self._extra_pids)
            self._warm_downstream()
            self._rowcast_cached()
            self._rowcast_processes()
            self._metrics_cost()
            self._security_cost()
            self._rowcast_audit_off()
            self._rowcast_audit_fsync()
            self._rowcast_uncached()

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

    def _floor_tls(self) -> tuple[list[str], Path | None]:
        """The floors serve TLS when the measured servers do (same transport under both)."""
        if not self._o.secure:
            return [], None
        return ["--tls-dir", str(self._settings.security.tls_dir)], self._ca

    def _echo(self) -> None:
        (port,) = free_ports(1)
        tls, ca = self._floor_tls()
        argv = module_main("rowcast_bench.echo", "--port", str(port), *tls)
        spec = ServerSpec("echo", argv, port, ca_file=ca)
        self._with_server(
            spec,
            self._data.predict_hot,
            [
                self._unary("echo", "bare grpc.aio server, fixed PredictResponse", "echo"),
                self._unary("echo_c1", "bare grpc.aio server, one call at a time", "echo", c=1),
                # The floor's own tail at 70% of its peak, closed and open loop: what the
                # p99 goal at 70% load is to be read against (filled in by _measure).
                self._unary("echo_70pct", "bare grpc.aio server at 70% of its max rps", "echo"),
                replace(self._unary("echo_70pct_open", "bare grpc.aio server at 70% of its "
                                    "max rps, open loop (from intended starts)", "echo"),
                        open_loop=True),
            ],
        )  # fmt: skip

    def _compute(self, name: str, model_file: Path, what: str) -> None:
        (port,) = free_ports(1)
        signature = self._model.write_signature(self._scratch / "signature.json")
        tls, ca = self._floor_tls()
        argv = module_main(
            "rowcast_bench.compute", "--port", str(port), "--model-file", str(model_file),
            "--signature-file", str(signature), "--version", str(self._model.version), *tls,
        )  # fmt: skip
        spec = ServerSpec(name.replace("_", "-"), argv, port, ca_file=ca)
        run = replace(
            self._unary(name, f"LightGBM computes on request: {what}", spec.name),
            data_file=self._data.predict_cold,
        )
        self._with_server(spec, self._data.predict_cold, [run])

    def _rowcast(
        self,
        name: str,
        *,
        cache_size: int | None,
        audit: bool,
        durability: str | None = None,
        metrics: bool | None = None,
        secure: bool | None = None,
    ) -> ServerSpec:
        """A prediction server; TLS + auth as the run says (`secure` None) or as given."""
        (port,) = free_ports(1)
        tls = self._o.secure if secure is None else secure
        env = server_env(
            self._settings,
            audit_port=self._audit_ports[tls],
            cache_size=cache_size,
            audit=audit,
            durability=durability,
            metrics=metrics,
            secure=tls,
        )
        ca = self._ca if tls else None
        return ServerSpec(name, rowcast_serve("prediction", port), port, env, ca_file=ca)

    def _warm_downstream(self) -> None:
        """Discarded audit-on load before the first rowcast measurement, so that it does not
        pay for the downstream JVM's first minutes (JIT, the audit table's first flushes):
        measured once, the first audit-heavy run cost HBase and the AuditService ~1.1 cores
        and halved predict_hit's rps against the same configuration measured later."""
        if self._o.downstream_warmup_s <= 0:
            return
        spec = self._rowcast("rowcast-downstream-warmup", cache_size=None, audit=True)
        self._say(f"downstream warm-up: {self._o.downstream_warmup_s:g}s of audited Predict "
                  "(discarded)")  # fmt: skip
        warm = replace(
            self._unary("downstream-warmup", "discarded", spec.name),
            duration_s=self._o.downstream_warmup_s,
            connections=PROCESS_CONNECTIONS,
        )
        try:
            with running([spec], self._o.server_cpu, self._scratch):
                self._ghz.run(warm, spec.target, spec.ca_file)
        except Exception as exc:  # a warm-up is best effort: the measurements still run
            self._say(f"  downstream warm-up failed: {type(exc).__name__}: {exc}")

    def _rowcast_cached(self) -> None:
        spec = self._rowcast("rowcast", cache_size=None, audit=True)
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
                # The same rate open loop: latency from each call's intended start.
                replace(self._unary("predict_hit_70pct_open", "Predict at 70% of max rps, "
                                    "open loop (from intended starts)", spec.name),
                        open_loop=True),
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

    def _rowcast_processes(self) -> None:
        """Cached Predict served by 1 and by 2 processes sharing the port (`rowcast serve
        prediction --processes N`, SO_REUSEPORT), neither pinned (2 processes need both cores,
        so ghz shares core 0 with one of them), over enough connections for the kernel to
        spread them across the processes. Server CPU counts every process of the server."""
        for count in (1, 2):
            name = f"predict_hit_{count}proc"
            base = self._rowcast(f"rowcast-{count}proc", cache_size=None, audit=True)
            spec = replace(base, argv=[*base.argv, "--processes", str(count)])
            run = replace(
                self._unary(name, f"Predict, warm cache, {count} server process(es), "
                            f"{PROCESS_CONNECTIONS} connections, unpinned", spec.name),
                connections=PROCESS_CONNECTIONS,
            )  # fmt: skip
            self._with_server(spec, self._data.predict_hot, [run], cpu=None)

    def _metrics_cost(self) -> None:
        """Cached Predict with metrics on (the default) and ROWCAST_METRICS=off, side by side.

        What metrics cost is a few percent of server CPU per call: less than a shared machine
        drifts between two runs minutes apart, and less than CPU per call moves with the load
        (a busier event loop spends less per call), hence the same rate and the turns.
        """
        self._side_by_side(
            _Pair(
                on=self._rowcast("rowcast-metrics-on", cache_size=None, audit=True),
                off=self._rowcast(
                    "rowcast-metrics-off", cache_size=None, audit=True, metrics=False
                ),
                on_name="predict_hit_metrics_on",
                off_name="predict_hit_metrics_off",
                on_what="metrics on",
                off_what="metrics off",
                turns=self._o.metrics_turns,
            )
        )

    def _security_cost(self) -> None:
        """Cached Predict with TLS + token authentication on (the default: TLS on the call and
        on the audit stream, the token checked and the role looked up on every call) and off
        (ROWCAST_INSECURE=on, plain text everywhere), side by side, whatever --insecure says
        about the rest of the run."""
        self._side_by_side(
            _Pair(
                on=self._rowcast("rowcast-secure", cache_size=None, audit=True, secure=True),
                off=self._rowcast("rowcast-insecure", cache_size=None, audit=True, secure=False),
                on_name="predict_hit_secure",
                off_name="predict_hit_insecure",
                on_what="TLS + auth on",
                off_what="TLS + auth off",
                turns=self._o.security_turns,
            )
        )

    def _side_by_side(self, pair: _Pair) -> None:
        """Two servers side by side, each at full speed once (rps), then in turns at one fixed
        rate, 70 % of the slower one's rps (turn i: on then off, or off then on; recorded as
        `<name>_70pct_<i>`, and ratios.py compares the two runs of each turn). The idle server
        of the pair shares the server core but does next to nothing meanwhile."""
        on, off = pair.on, pair.off
        peak = {
            on.name: self._unary(pair.on_name, f"Predict, warm cache, {pair.on_what} "
                                 f"(beside {pair.off_what})", on.name),
            off.name: self._unary(pair.off_name, f"Predict, warm cache, {pair.off_what} "
                                  f"(beside {pair.on_what})", off.name),
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
                                  description=f"Predict, warm cache, {what}, at 70% of "
                                  "the pair's lower rps, in turns")
                    for (name, run), what in zip(peak.items(), (pair.on_what, pair.off_what),
                                                 strict=True)
                }  # fmt: skip
                for turn in range(1, pair.turns + 1):
                    for spec in (on, off) if turn % 2 else (off, on):
                        run = replace(fixed[spec.name], name=f"{fixed[spec.name].name}_{turn}")
                        self._record(self._measured(spec, run, pids[spec.name]))
        except Exception as exc:  # a server or a run failed: its measurements are failures
            for name in (pair.on_name, pair.off_name, f"{pair.on_name}_70pct"):
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

    def _rowcast_audit_off(self) -> None:
        spec = self._rowcast("rowcast-audit-off", cache_size=None, audit=False)
        self._with_server(
            spec,
            self._data.predict_hot,
            [self._unary("predict_hit_audit_off", "Predict, warm cache, audit off", spec.name)],
        )

    def _rowcast_audit_fsync(self) -> None:
        spec = self._rowcast("rowcast-audit-fsync", cache_size=None, audit=True, durability="fsync")
        self._with_server(
            spec,
            self._data.predict_hot,
            [self._unary("predict_hit_audit_fsync", "Predict, warm cache, audit fsync", spec.name)],
        )

    def _rowcast_uncached(self) -> None:
        spec = self._rowcast("rowcast-no-cache", cache_size=0, audit=True)
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

    def _with_server(
        self,
        spec: ServerSpec,
        warmup_data: Path,
        runs: Sequence[GhzRun],
        cpu: int | Literal["server"] | None = "server",
    ) -> None:
        """Start spec (on the server core unless `cpu` says otherwise; None: unpinned), warm
        it up, run each measurement, stop it."""
        self._say(f"server {spec.name}: starting on 127.0.0.1:{spec.port}")
        pin = self._o.server_cpu if cpu == "server" else cpu
        try:
            with running([spec], pin, self._scratch) as (proc,):
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
        warm = replace(
            warm, data_file=data, duration_s=self._o.warmup_s, connections=PROCESS_CONNECTIONS
        )
        try:
            self._ghz.run(warm, spec.target, spec.ca_file)
        except GhzError as exc:
            self._say(f"  warm-up of {spec.name} failed: {exc}")

    def _ours(self, server_pid: int | None) -> Callable[[], list[int]]:
        """Pids of every process under test right now (for telling others' load apart)."""
        server = [] if server_pid is None else [server_pid]
        return lambda: [*server, *self._extra_pids, *self.under_test()]

    def _meter(self, server_pid: int | None) -> CpuMeter:
        return CpuMeter(
            lambda: [*self._extra_pids, *self.under_test()],
            server_pid,
            downstream=lambda: [*self._audit_pids, *self.under_test()],
        )

    def _measure(self, spec: ServerSpec, run: GhzRun, server_pid: int) -> None:
        peak_name = AT_70PCT_OF.get(run.name)
        if peak_name is not None:
            peak = self._result.measurements.get(peak_name)
            if peak is None:
                self._result.failures[run.name] = f"no {peak_name} measurement to take 70% of"
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
        if run.open_loop:
            m = openloop.run_measured(
                run, spec.target, self._scratch, self._o.client_cpu, spec.ca_file,
                self._ghz.metadata_file,
            )  # fmt: skip
        else:
            m = self._ghz.run(run, spec.target, spec.ca_file)
        use = meter.stop()
        calls = m.count + m.errors
        m = replace(
            m,
            busy_cores=use.busy_cores,
            other_cores=use.other_cores,
            server_cpu_us_per_call=_per_call_us(use.server_cpu_s, calls),
            downstream_cpu_us_per_call=_per_call_us(use.downstream_cpu_s, calls),
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
        down = m.downstream_cpu_us_per_call
        cpu += f", downstream {down:.0f} us/call" if down is not None else ""
        self._say(f"    {m.rps:,.0f} calls/s  p50 {m.p50_ms:.3f}  p90 {m.p90_ms:.3f}  "
                  f"p99 {m.p99_ms:.3f} ms{errors}{cpu}{other}")  # fmt: skip
