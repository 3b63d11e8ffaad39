"""The environment `rowcast bench` gives its server subprocesses means what the bench says."""

from __future__ import annotations

from rowcast.config import Settings
from rowcast_bench.plan import server_env


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
