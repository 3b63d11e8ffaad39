"""The environment `rowcast bench` gives its server subprocesses means what the bench says."""

from __future__ import annotations

import pytest

from rowcast.config import Settings
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
