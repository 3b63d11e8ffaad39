"""`rowcast top`: /metrics text -> Snapshot -> Window -> Frame, on canned scrapes, and the
command itself against a local HTTP server that serves them."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from rowcast.config import Settings
from rowcast_cli.top_cmd import (
    Snapshot,
    Target,
    Window,
    default_targets,
    frame,
    histogram_quantile,
    materialization_rows,
    model_rows,
    parse,
    service_rows,
    spool_row,
    target_from_option,
    top,
)

BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
           0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)  # fmt: skip
PREDICT = 'grpc_type="unary",grpc_service="rowcast.v1.PredictionService",grpc_method="Predict"'


def grpc_page(ok: int, not_found: int, latencies: dict[float, int], health: int = 0) -> str:
    """A prediction server's gRPC metrics as prometheus_client writes them: `latencies` maps
    an observed handling time (seconds) to how many calls took it."""
    lines = [
        "# HELP grpc_server_handled_total Total number of RPCs completed on the server.",
        "# TYPE grpc_server_handled_total counter",
        f'grpc_server_handled_total{{{PREDICT},grpc_code="OK"}} {ok:.1f}',
        f'grpc_server_handled_created{{{PREDICT},grpc_code="OK"}} 1.7e+09',
        f'grpc_server_handled_total{{{PREDICT},grpc_code="NOT_FOUND"}} {not_found:.1f}',
        'grpc_server_handled_total{grpc_type="unary",grpc_service="grpc.health.v1.Health",'
        f'grpc_method="Check",grpc_code="OK"}} {health:.1f}',
        "# HELP grpc_server_handling_seconds Handling time of RPCs on the server, in seconds.",
        "# TYPE grpc_server_handling_seconds histogram",
    ]
    for le in (*BUCKETS, math.inf):
        count = sum(n for t, n in latencies.items() if t <= le)
        bound = "+Inf" if le == math.inf else repr(float(le))
        lines.append(f'grpc_server_handling_seconds_bucket{{{PREDICT},le="{bound}"}} {count:.1f}')
    total = sum(latencies.values())
    lines.append(f"grpc_server_handling_seconds_count{{{PREDICT}}} {total:.1f}")
    lines.append(
        f"grpc_server_handling_seconds_sum{{{PREDICT}}} {sum(t * n for t, n in latencies.items())}"
    )
    return "\n".join(lines) + "\n"


def domain_page(
    *, hits: int, misses: int, version: int, generation: int, spool: int, delivered: int
) -> str:
    return f"""\
# HELP rowcast_cache_hits_total Predictions answered from the cache.
# TYPE rowcast_cache_hits_total counter
rowcast_cache_hits_total{{model="credit_default"}} {hits:.1f}
# HELP rowcast_cache_misses_total Predictions read from HBase.
# TYPE rowcast_cache_misses_total counter
rowcast_cache_misses_total{{model="credit_default"}} {misses:.1f}
# TYPE rowcast_served_version gauge
rowcast_served_version{{model="credit_default",alias="current"}} {version:.1f}
# TYPE rowcast_routes_generation gauge
rowcast_routes_generation {generation:.1f}
# TYPE rowcast_in_flight_calls gauge
rowcast_in_flight_calls{{service="prediction"}} 3.0
# TYPE rowcast_spool_records gauge
rowcast_spool_records {spool:.1f}
# TYPE rowcast_spool_bytes gauge
rowcast_spool_bytes {spool * 1024:.1f}
# TYPE rowcast_spool_oldest_undelivered_seconds gauge
rowcast_spool_oldest_undelivered_seconds 2.5
# TYPE rowcast_decisions_delivered_total counter
rowcast_decisions_delivered_total {delivered:.1f}
"""


MODEL_PAGE = """\
# TYPE rowcast_registry_generation gauge
rowcast_registry_generation 8.0
# TYPE rowcast_materializations_running gauge
rowcast_materializations_running 1.0
# TYPE rowcast_materialize_rows_written gauge
rowcast_materialize_rows_written{model="credit_default",version="4"} 2500.0
rowcast_materialize_rows_written{model="credit_default",version="3"} 9000.0
# TYPE rowcast_materialize_rows_total gauge
rowcast_materialize_rows_total{model="credit_default",version="4"} 10000.0
rowcast_materialize_rows_total{model="credit_default",version="3"} 9000.0
# TYPE rowcast_materialize_rows_per_second gauge
rowcast_materialize_rows_per_second{model="credit_default",version="4"} 1250.0
"""

PRED = Target("prediction", "http://127.0.0.1:9464/metrics")


def window(before: str | None, after: str, seconds: float = 2.0, target: Target = PRED) -> Window:
    prev = None if before is None else Snapshot(target, 100.0, parse(before))
    return Window(prev, Snapshot(target, 100.0 + seconds, parse(after)))


def test_parse_keys_samples_by_name_and_labels() -> None:
    """Every sample is kept under its own name (_total, _bucket, _created) and label set."""
    values = parse(grpc_page(ok=5, not_found=1, latencies={0.0004: 6}))
    ok = dict(grpc_type="unary", grpc_service="rowcast.v1.PredictionService",
              grpc_method="Predict", grpc_code="OK")  # fmt: skip
    assert values[("grpc_server_handled_total", tuple(sorted(ok.items())))] == 5.0
    assert ("grpc_server_handled_created", tuple(sorted(ok.items()))) in values
    inf = dict(ok, le="+Inf")
    del inf["grpc_code"]
    assert values[("grpc_server_handling_seconds_bucket", tuple(sorted(inf.items())))] == 6.0


def test_parse_rejects_text_that_is_not_the_exposition_format() -> None:
    """A page that is not Prometheus text (an HTML error page, say) raises ValueError."""
    with pytest.raises(ValueError):
        parse('grpc_server_handled_total{grpc_code="OK" 1\n')


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    """50 calls <= 0.1 s and 50 more <= 0.2 s: p50 is 0.1, p99 is 0.1 + 0.1 * 49/50."""
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.198)


def test_histogram_quantile_in_the_inf_bucket_answers_the_highest_finite_bound() -> None:
    """Calls slower than every bucket give the largest finite bound, not infinity."""
    assert histogram_quantile(0.99, [(10.0, 1.0), (math.inf, 100.0)]) == 10.0


def test_histogram_quantile_without_observations_is_none() -> None:
    """No calls in the window: no percentile (not 0)."""
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, []) is None


def test_service_rows_are_rates_and_percentiles_of_the_window_not_since_start() -> None:
    """Before: 100 slow calls (0.2 s). Then 2 s with 180 OK + 20 NOT_FOUND calls, all
    0.4 ms: 100 rps, 10% errors, p50 and p99 inside the 0.25-0.5 ms bucket."""
    before = grpc_page(ok=100, not_found=0, latencies={0.2: 100})
    after = grpc_page(ok=280, not_found=20, latencies={0.2: 100, 0.0004: 200})
    (row,) = service_rows(window(before, after, seconds=2.0))
    assert row.service == "rowcast.v1.PredictionService"
    assert row.rps == pytest.approx(100.0)
    assert row.error_ratio == pytest.approx(0.10)
    assert row.p50_s is not None and 0.00025 < row.p50_s <= 0.0005
    assert row.p99_s is not None and 0.00025 < row.p99_s <= 0.0005


def test_health_and_reflection_calls_are_not_a_service_row() -> None:
    """grpc.health.v1.Health checks do not show up as traffic."""
    before = grpc_page(ok=0, not_found=0, latencies={}, health=0)
    after = grpc_page(ok=0, not_found=0, latencies={}, health=50)
    rows = service_rows(window(before, after))
    assert [r.service for r in rows] == ["rowcast.v1.PredictionService"]
    assert rows[0].rps == 0.0
    assert rows[0].error_ratio is None


def test_a_counter_that_went_down_was_reset() -> None:
    """After a restart the counter restarts from 0: its whole current value is the increase."""
    before = grpc_page(ok=1000, not_found=0, latencies={0.001: 1000})
    after = grpc_page(ok=30, not_found=0, latencies={0.001: 30})
    (row,) = service_rows(window(before, after, seconds=1.0))
    assert row.rps == pytest.approx(30.0)


def test_first_scrape_has_no_rates() -> None:
    """With one scrape there is no window: rates and percentiles are unknown, not zero."""
    (row,) = service_rows(window(None, grpc_page(ok=5, not_found=0, latencies={0.001: 5})))
    assert (row.rps, row.error_ratio, row.p50_s, row.p99_s) == (None, None, None, None)


def test_model_rows_show_a_switch_in_flight_and_the_cache_hit_ratio() -> None:
    """One server still on v3, one on v4; 90 hits and 10 misses over the window: 90%."""
    a = Target("prediction-0", "http://a/metrics")
    b = Target("prediction-1", "http://b/metrics")
    old = dict(hits=0, misses=0, generation=7, spool=0, delivered=0)
    wa = window(domain_page(version=3, **old),
                domain_page(version=3, hits=50, misses=5, generation=7, spool=0, delivered=0),
                target=a)  # fmt: skip
    wb = window(domain_page(version=4, **old),
                domain_page(version=4, hits=40, misses=5, generation=8, spool=0, delivered=0),
                target=b)  # fmt: skip
    (row,) = model_rows([wa, wb])
    assert (row.model, row.alias) == ("credit_default", "current")
    assert row.versions == {3: 1, 4: 1}
    assert row.cache_hit_ratio == pytest.approx(0.9)


def test_spool_row_reports_lag_and_delivery_rate() -> None:
    """Undelivered records and bytes, the oldest's age, and decisions delivered per second."""
    page = dict(hits=0, misses=0, version=3, generation=7)
    w = window(domain_page(spool=10, delivered=100, **page),
               domain_page(spool=12, delivered=300, **page), seconds=4.0)  # fmt: skip
    row = spool_row(w)
    assert row is not None
    assert (row.records, row.bytes, row.oldest_s) == (12.0, 12 * 1024.0, 2.5)
    assert row.delivered_per_s == pytest.approx(50.0)


def test_a_target_without_a_spool_has_no_spool_row() -> None:
    """The ModelService has no spool: no row for it."""
    assert spool_row(window(MODEL_PAGE, MODEL_PAGE)) is None


def test_materialization_rows_list_only_runs_with_rows_left() -> None:
    """v4 has written 2,500 of 10,000 rows (25%); v3 is complete and not listed."""
    (row,) = materialization_rows(window(None, MODEL_PAGE))
    assert (row.model, row.version, row.written, row.total) == ("credit_default", "4", 2500, 10000)
    assert row.fraction == pytest.approx(0.25)
    assert row.rows_per_s == 1250.0


def test_frame_compares_each_servers_routes_with_the_registry_generation() -> None:
    """The frame carries the newest registry generation (ModelService) beside each
    prediction server's routes generation, so a lagging server shows."""
    model = Target("model", "http://m/metrics")
    page = dict(hits=0, misses=0, version=3, spool=0, delivered=0)
    f = frame(
        [window(None, domain_page(generation=7, **page)), window(None, MODEL_PAGE, target=model)]
    )
    assert f.registry_generation == 8.0
    assert [t.routes_generation for t in f.targets] == [7.0, None]
    assert f.targets[0].in_flight == 3.0


@pytest.mark.parametrize(
    ("option", "name", "url"),
    [
        ("127.0.0.1:9464", "127.0.0.1:9464", "http://127.0.0.1:9464/metrics"),
        ("pred=127.0.0.1:9464", "pred", "http://127.0.0.1:9464/metrics"),
        ("http://h:1/metrics", "h:1", "http://h:1/metrics"),
        ("edge=https://h:1/m?x=1", "edge", "https://h:1/m?x=1"),
    ],
)
def test_metrics_option_accepts_name_url_and_bare_host_port(
    option: str, name: str, url: str
) -> None:
    """`--metrics [NAME=]URL`: bare host:port means http://host:port/metrics."""
    assert target_from_option(option) == Target(name, url)


class _Pages:
    """What the canned server answers: the next page of a list (the last one repeats)."""

    def __init__(self, pages: list[str]) -> None:
        self.pages = pages
        self.served = 0

    def next(self) -> str:
        page = self.pages[min(self.served, len(self.pages) - 1)]
        self.served += 1
        return page


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, _Pages]]:
    pages = _Pages(
        [
            grpc_page(ok=0, not_found=0, latencies={})
            + domain_page(hits=0, misses=0, version=3, generation=7, spool=4, delivered=0),
            grpc_page(ok=97, not_found=3, latencies={0.0004: 100})
            + domain_page(hits=75, misses=25, version=3, generation=7, spool=4, delivered=100),
        ]
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.next().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()


def test_top_once_prints_one_frame_from_two_scrapes(metrics_server: tuple[str, _Pages]) -> None:
    """`rowcast top --once` scrapes twice and prints the window's rates: 3% errors, a 75%
    cache hit ratio, v3 served, 4 undelivered decisions; a dead target shows as down."""
    address, pages = metrics_server
    result = CliRunner().invoke(
        top,
        ["--once", "--interval", "0.2", "--metrics", f"pred={address}",
         "--metrics", "gone=127.0.0.1:1", "--timeout", "0.5"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pages.served == 2
    out = result.output
    assert "rowcast.v1.PredictionService" in out
    assert "3.0%" in out
    assert "75.0%" in out
    assert "v3" in out
    assert "gone" in out and "down" in out
    spool_line = next(
        line for line in out.splitlines() if line.strip("│ ").startswith("pred") and "KiB" in line
    )
    assert " 4 " in spool_line


def test_default_targets_are_the_three_services_on_the_settings_ports() -> None:
    """Without --metrics, top reads the ports and host the suite's own settings give."""
    settings = Settings.from_env(
        {"ROWCAST_AUDIT_METRICS_PORT": "19465", "ROWCAST_METRICS_HOST": "127.0.0.2"}
    )
    assert default_targets(settings) == [
        Target("prediction", "http://127.0.0.2:9464/metrics"),
        Target("audit", "http://127.0.0.2:19465/metrics"),
        Target("model", "http://127.0.0.2:9466/metrics"),
    ]
