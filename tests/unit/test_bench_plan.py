"""The environment `rowcast bench` gives its server subprocesses, and the ghz command lines it
runs, mean what the bench says."""

from __future__ import annotations

from pathlib import Path

import pytest

from rowcast.config import Settings
from rowcast_bench.ghz import Ghz, GhzRun
from rowcast_bench.measurement import Measurement
from rowcast_bench.plan import server_env
from rowcast_bench.ratios import evaluate


def test_metrics_off_server_env_turns_metrics_off() -> None:
    """The metrics-off run's server reads ROWCAST_METRICS=off: no endpoint, no interceptor."""
    settings = Settings.from_env(server_env(Settings(), metrics=False))
    assert settings.metrics.enabled is False
    assert settings.metrics.address("prediction") is None


def test_bench_servers_keep_metrics_on_by_default_on_free_ports() -> None:
    """Every other run keeps metrics on (the default), on free ports, so that a suite running
    beside the bench keeps its default metrics ports."""
    settings = Settings.from_env(server_env(Settings()))
    assert settings.metrics.enabled is True
    for service in ("prediction", "audit", "model"):
        address = settings.metrics.address(service)
        assert address is not None and address.port == 0


def test_metrics_cost_is_the_median_of_the_ratios_within_each_turn() -> None:
    """metrics_server_cpu_vs_off compares the on and off runs of the same turn, and takes the
    median over turns: one disturbed turn does not decide, and drift between turns cancels."""

    def turn(name: str, cpu: float) -> Measurement:
        return Measurement(name, "", "Predict", "s", 16, 1.0, 1000.0, 1.0, 2.0, 3.0, 1000, 0,
                           server_cpu_us_per_call=cpu)  # fmt: skip

    on, off = "predict_hit_metrics_on_70pct", "predict_hit_metrics_off_70pct"
    cpu = [(700.0, 700.0), (800.0, 780.0), (720.0, 600.0)]  # drift between turns; one outlier
    ms = {m.name: m for i, (a, b) in enumerate(cpu, 1)
          for m in (turn(f"{on}_{i}", a), turn(f"{off}_{i}", b))}  # fmt: skip
    (verdict,) = [v for v in evaluate(ms) if v.goal.name == "metrics_server_cpu_vs_off"]
    assert verdict.value == pytest.approx(800.0 / 780.0)
    assert verdict.passed is True


def test_interceptor_cost_reports_the_added_cpu_per_call() -> None:
    """`python -m rowcast_bench.interceptor_cost` times calls bare and through the metrics
    interceptor and prints what the interceptor adds (a positive number of microseconds)."""
    from click.testing import CliRunner

    from rowcast_bench.interceptor_cost import main

    result = CliRunner().invoke(main, ["--calls", "2000", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    added = float(result.output.rsplit("added: ", 1)[1].split(" us")[0])
    assert 0 < added < 1000


def test_bench_servers_are_secure_by_default_with_the_runs_files() -> None:
    """A bench server serves TLS and checks tokens unless told otherwise, with the TLS and
    auth directories of the run's settings, even when the caller's environment says
    ROWCAST_INSECURE=on (the measurement decides, not the shell)."""
    run = Settings.from_env({"ROWCAST_HOME": "/tmp/bench-home"})
    env = {"ROWCAST_INSECURE": "on", **server_env(run)}
    sec = Settings.from_env(env).security
    assert (sec.tls, sec.auth) == (True, True)
    assert sec.tls_dir == run.security.tls_dir
    assert sec.auth_dir == run.security.auth_dir
    assert sec.client_certs == "none"


def test_insecure_server_env_turns_tls_and_auth_off() -> None:
    """secure=False (the TLS + auth off side, or `rowcast bench --insecure`): plain text."""
    sec = Settings.from_env(server_env(Settings(), secure=False)).security
    assert (sec.tls, sec.auth) == (False, False)


def test_ghz_calls_a_tls_server_with_the_ca_and_the_token_file(tmp_path: Path) -> None:
    """Against a TLS server ghz checks the certificate against the CA and sends the token
    from a metadata file (never on the command line); against a plain one, --insecure."""
    metadata = tmp_path / "md.json"
    ghz = Ghz(Path("ghz"), 0, tmp_path, None, metadata)
    run = GhzRun("r", "", "rowcast.v1.PredictionService.Predict", tmp_path / "d.json", "s", 1, 1.0)
    secure = ghz.command(run, "127.0.0.1:1", tmp_path / "r.json", tmp_path / "ca.pem")
    assert "--insecure" not in secure
    assert secure[secure.index("--cacert") + 1] == str(tmp_path / "ca.pem")
    assert secure[secure.index("--metadata-file") + 1] == str(metadata)
    plain = ghz.command(run, "127.0.0.1:1", tmp_path / "r.json")
    assert "--insecure" in plain
    assert "--cacert" not in plain and "--metadata-file" not in plain


def test_tls_auth_cost_is_the_median_of_the_ratios_within_each_turn() -> None:
    """tls_auth_server_cpu_vs_off pairs the secure and insecure runs of each turn, like the
    metrics ratio; tls_auth_rps_vs_off divides the two full-speed runs."""

    def m(name: str, rps: float, cpu: float) -> Measurement:
        return Measurement(name, "", "Predict", "s", 16, 1.0, rps, 1.0, 2.0, 3.0, 1000, 0,
                           server_cpu_us_per_call=cpu)  # fmt: skip

    on, off = "predict_hit_secure_70pct", "predict_hit_insecure_70pct"
    turns = [(900.0, 600.0), (880.0, 640.0), (1200.0, 600.0)]
    ms = {x.name: x for i, (a, b) in enumerate(turns, 1)
          for x in (m(f"{on}_{i}", 1.0, a), m(f"{off}_{i}", 1.0, b))}  # fmt: skip
    ms["predict_hit_secure"] = m("predict_hit_secure", 800.0, 1.0)
    ms["predict_hit_insecure"] = m("predict_hit_insecure", 1000.0, 1.0)
    verdicts = {v.goal.name: v for v in evaluate(ms)}
    assert verdicts["tls_auth_server_cpu_vs_off"].value == pytest.approx(1.5)
    assert verdicts["tls_auth_rps_vs_off"].value == pytest.approx(0.8)


def test_interceptor_cost_times_the_auth_interceptor_with_a_real_token() -> None:
    """`--interceptor auth` times calls through AuthInterceptor, each carrying a valid token
    (a refused call would raise out of the timing loop), and prints what it adds."""
    from click.testing import CliRunner

    from rowcast_bench.interceptor_cost import main

    args = ["--interceptor", "auth", "--calls", "2000", "--repeats", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "with the auth interceptor" in result.output
    added = float(result.output.rsplit("added: ", 1)[1].split(" us")[0])
    assert 0 < added < 1000
