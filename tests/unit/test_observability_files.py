"""The shipped Prometheus and Grafana files (docs/observability/) are valid and say what they
mean: promtool accepts the scrape config and the alert rules, the alerts fire on the series
they are about (promtool's rule unit tests), and every dashboard query is valid PromQL.

promtool comes with Debian's `prometheus` package, which scripts/setup installs. Its rule and
unit-test files are YAML; JSON is YAML, so the files written here are JSON.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "docs" / "observability"
ALERTS = FILES / "alerts.yml"
DASHBOARD = FILES / "grafana-dashboard.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not on PATH: scripts/setup installs Debian's prometheus package"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def test_alert_rules_pass_promtool_check_rules() -> None:
    """`promtool check rules docs/observability/alerts.yml` accepts every rule."""
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_scrape_config_passes_promtool_check_config() -> None:
    """The shipped prometheus.yml is a valid config and finds alerts.yml beside it."""
    result = promtool("check", "config", str(FILES / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_scrape_config_scrapes_the_default_metrics_ports() -> None:
    """One job per service, on 127.0.0.1 at the default ROWCAST_*_METRICS_PORT."""
    text = (FILES / "prometheus.yml").read_text()
    jobs = re.findall(r'job_name: (\S+)\n\s+static_configs:\n\s+- targets: \["([^"]+)"\]', text)
    assert jobs == [
        ("rowcast-prediction", "127.0.0.1:9464"),
        ("rowcast-audit", "127.0.0.1:9465"),
        ("rowcast-model", "127.0.0.1:9466"),
    ]


def test_a_broken_rule_file_fails_the_check(tmp_path: Path) -> None:
    """The check can fail: a rule with an unbalanced expression is refused."""
    broken = tmp_path / "broken.yml"
    rule = {"alert": "Broken", "expr": "rate(grpc_server_handled_total[5m] > 0"}
    broken.write_text(json.dumps({"groups": [{"name": "broken", "rules": [rule]}]}))
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def run_rule_tests(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    spec = {"rule_files": [str(ALERTS)], "evaluation_interval": "15s", "tests": tests}
    path = tmp_path / "alerts-test.yml"
    path.write_text(json.dumps(spec))
    return promtool("test", "rules", str(path))


def test_lagging_prediction_server_alert_fires_after_a_minute_behind(tmp_path: Path) -> None:
    """A server whose routes generation stays below the registry's for over a minute fires
    RowcastPredictionServerLagging; one in step with the registry does not."""
    lagging = {"severity": "page", "job": "rowcast-prediction", "instance": "a:9464"}
    test = {
        "interval": "15s",
        "input_series": [
            {"series": 'rowcast_routes_generation{job="rowcast-prediction",instance="a:9464"}',
             "values": "7x12"},
            {"series": 'rowcast_routes_generation{job="rowcast-prediction",instance="b:9464"}',
             "values": "8x12"},
            {"series": 'rowcast_registry_generation{job="rowcast-model",instance="m:9466"}',
             "values": "8x12"},
        ],
        "alert_rule_test": [
            {"eval_time": "30s", "alertname": "RowcastPredictionServerLagging", "exp_alerts": []},
            {"eval_time": "2m", "alertname": "RowcastPredictionServerLagging",
             "exp_alerts": [{"exp_labels": lagging, "exp_annotations": {
                 "summary": "a:9464 routes generation 7 is behind the registry's"}}]},
        ],
    }  # fmt: skip
    result = run_rule_tests(tmp_path, [test])
    assert result.returncode == 0, result.stdout + result.stderr


def test_error_rate_alert_counts_server_faults_not_callers_mistakes(tmp_path: Path) -> None:
    """5 INTERNAL per 100 OK calls for 10 minutes fires RowcastGrpcErrorRate; the same share
    of NOT_FOUND (the caller's mistake) does not."""
    predict = 'job="rowcast-prediction",instance="a:9464",grpc_type="unary",' \
        'grpc_service="rowcast.v1.PredictionService",grpc_method="Predict"'  # fmt: skip

    def series(code: str, step: int) -> dict[str, str]:
        return {"series": f'grpc_server_handled_total{{{predict},grpc_code="{code}"}}',
                "values": f"0+{step}x60"}  # fmt: skip

    labels = {"severity": "page", "job": "rowcast-prediction", "instance": "a:9464",
              "grpc_service": "rowcast.v1.PredictionService", "grpc_method": "Predict"}  # fmt: skip
    faults = {
        "interval": "15s",
        "input_series": [series("OK", 100), series("INTERNAL", 5)],
        "alert_rule_test": [{"eval_time": "12m", "alertname": "RowcastGrpcErrorRate",
                             "exp_alerts": [{"exp_labels": labels, "exp_annotations": {
                                 "summary": "Predict on a:9464: 4.762% of calls fail on the "
                                            "server's side"}}]}],
    }  # fmt: skip
    callers = {
        "interval": "15s",
        "input_series": [series("OK", 100), series("NOT_FOUND", 5)],
        "alert_rule_test": [
            {"eval_time": "12m", "alertname": "RowcastGrpcErrorRate", "exp_alerts": []}
        ],
    }
    result = run_rule_tests(tmp_path, [faults, callers])
    assert result.returncode == 0, result.stdout + result.stderr


def test_spool_alert_fires_when_undelivered_decisions_keep_growing(tmp_path: Path) -> None:
    """A spool that grows by 100 records every 15 s for 25 minutes fires
    RowcastAuditSpoolGrowing; a large spool that drains does not."""
    growing = {
        "interval": "15s",
        "input_series": [{"series": 'rowcast_spool_records{job="rowcast-prediction",instance="a"}',
                          "values": "1000+100x100"}],
        "alert_rule_test": [{"eval_time": "25m", "alertname": "RowcastAuditSpoolGrowing",
                             "exp_alerts": [{"exp_labels": {
                                 "severity": "warning", "job": "rowcast-prediction",
                                 "instance": "a"}, "exp_annotations": {
                                 "summary": "audit spool of a keeps growing: 11k "
                                            "undelivered decisions"}}]}],
    }  # fmt: skip
    draining = {
        "interval": "15s",
        "input_series": [{"series": 'rowcast_spool_records{job="rowcast-prediction",instance="a"}',
                          "values": "20000-100x100"}],
        "alert_rule_test": [
            {"eval_time": "25m", "alertname": "RowcastAuditSpoolGrowing", "exp_alerts": []}
        ],
    }  # fmt: skip
    result = run_rule_tests(tmp_path, [growing, draining])
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in the dashboard, Grafana's variables replaced
    by values Prometheus would receive."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
                .replace("$instance", ".*")
            )
            queries.append((panel["title"], expr))
    return queries


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel's query, as a recording rule, passes `promtool check rules`."""
    queries = dashboard_queries()
    assert len(queries) >= 20
    rules = [{"record": f"dashboard:query_{i}", "expr": q} for i, (_, q) in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_importable_and_covers_each_area() -> None:
    """A Grafana dashboard JSON with a Prometheus datasource variable, unique panel ids, and
    panels for calls, latency, cache, HBase, the spool, versions and materialisation."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    text = " ".join(q for _, q in dashboard_queries())
    for metric in (
        "grpc_server_handled_total", "grpc_server_handling_seconds_bucket",
        "rowcast_cache_hits_total", "rowcast_hbase_call_seconds_bucket", "rowcast_spool_records",
        "rowcast_served_version", "rowcast_routes_generation", "rowcast_materialize_rows_written",
    ):  # fmt: skip
        assert metric in text, metric


def defined_sample_names() -> set[str]:
    """The sample names rowcast's metrics produce: the gRPC families (telemetry/metrics.py),
    the domain metrics (telemetry/domain.py), and Prometheus's own `up`."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics import MetricWrapperBase

    from rowcast.telemetry import domain
    from rowcast.telemetry.metrics import GrpcServerMetrics

    grpc = GrpcServerMetrics(registry=CollectorRegistry())
    metrics = [m for m in vars(grpc).values() if isinstance(m, MetricWrapperBase)]
    metrics += [m for m in vars(domain).values() if isinstance(m, MetricWrapperBase)]
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    names = {"up"}
    for metric in metrics:
        for family in metric.describe():
            names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def test_every_metric_the_shipped_files_and_top_read_is_one_rowcast_defines() -> None:
    """A renamed or misspelt metric in alerts.yml, the dashboard or `rowcast top` fails here
    rather than silently matching nothing."""
    from rowcast_cli import top_cmd

    readers = [ALERTS.read_text(), Path(top_cmd.__file__).read_text()]
    readers += [q for _, q in dashboard_queries()]
    pattern = r"\b(?:grpc_server_[a-z_]+|grpc_client_[a-z_]+|rowcast_[a-z_]+)\b"
    used = {name for text in readers for name in re.findall(pattern, text)}
    assert len(used) >= 25
    defined = defined_sample_names()
    assert "rowcast_spool_records" in defined and "grpc_server_handled_total" in defined
    assert sorted(used - defined) == []
