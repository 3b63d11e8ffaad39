"""A real Prometheus (Debian's `prometheus` package, which scripts/setup installs) scrapes the
suite's servers with the shipped scrape config and alert rules, and counts exactly the Predict
calls that were made, per status code."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from rowcast_client import AsyncRowcastClient, InvalidArgumentError, NotFoundError
from rowcast_dev.hbase.ports import free_ports
from tests.integration.conftest import MODEL, Suite

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "docs" / "observability"
#: The default metrics port of each job in the shipped prometheus.yml.
DEFAULT_PORTS = {"prediction": 9464, "audit": 9465, "model": 9466}
PREDICT = {"job": "rowcast-prediction", "grpc_service": "rowcast.v1.PredictionService",
           "grpc_method": "Predict"}  # fmt: skip


def scrape_config(shipped: str, ports: dict[str, int]) -> str:
    """The shipped config with this test's metrics ports, scraped and evaluated every second."""
    text = shipped
    for service, default in DEFAULT_PORTS.items():
        old = f'"127.0.0.1:{default}"'
        assert text.count(old) == 1, f"the shipped prometheus.yml no longer scrapes {old}"
        text = text.replace(old, f'"127.0.0.1:{ports[service]}"')
    for setting in ("scrape_interval", "evaluation_interval"):
        assert text.count(f"{setting}: 15s") == 1, setting
        text = text.replace(f"{setting}: 15s", f"{setting}: 1s")
    return text


class Prometheus:
    """A prometheus process of this test's own: temp dir, free port, stopped at the end."""

    def __init__(self, workdir: Path, port: int) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not on PATH: scripts/setup installs Debian's package"
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                [binary, f"--config.file={workdir / 'prometheus.yml'}",
                 f"--web.listen-address=127.0.0.1:{port}",
                 f"--storage.tsdb.path={workdir / 'data'}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.url + path + query, timeout=5) as reply:
            return json.loads(reply.read())

    async def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>: its `data`, off the event loop the servers run on."""
        answer = await asyncio.to_thread(self._get, "/api/v1/" + path, **params)
        assert answer["status"] == "success", answer
        return answer["data"]

    async def query(self, promql: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self._proc.poll() is None, self.log.read_text()
            try:
                await asyncio.to_thread(urllib.request.urlopen, self.url + "/-/ready", None, 1)
                return
            except OSError:
                assert time.monotonic() < deadline, self.log.read_text()
                await asyncio.sleep(0.2)

    async def wait_scrapes_after(self, t: float, scrapes: int = 2, timeout_s: float = 20.0) -> None:
        """Wait until every target has been scraped `scrapes` times since wall time `t` (its
        `up` sample's timestamp is when the scrape started) and answered."""
        deadline = time.monotonic() + timeout_s
        seen: dict[str, float] = {}
        counts: dict[str, int] = {}
        while True:
            for sample in await self.query('timestamp(up{job=~"rowcast-.*"}) and up == 1'):
                job, stamp = sample["metric"]["job"], float(sample["value"][1])
                if stamp > t and stamp != seen.get(job):
                    seen[job] = stamp
                    counts[job] = counts.get(job, 0) + 1
            if len(counts) == len(DEFAULT_PORTS) and min(counts.values()) >= scrapes:
                return
            assert time.monotonic() < deadline, (counts, self.log.read_text()[-3000:])
            await asyncio.sleep(0.25)

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def prometheus(
    suite: Suite, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Prometheus]:
    """Prometheus scraping the suite's three metrics endpoints, with the shipped rules."""
    tmp_path = tmp_path_factory.mktemp("prometheus")
    ports = {
        "prediction": suite.prediction.metrics_port,
        "audit": suite.audit.metrics_port,
        "model": suite.model.metrics_port,
    }
    assert all(ports.values()), f"a server has no metrics endpoint: {ports}"
    bound = {service: port for service, port in ports.items() if port is not None}
    shipped = (SHIPPED / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(scrape_config(shipped, bound))
    shutil.copyfile(SHIPPED / "alerts.yml", tmp_path / "alerts.yml")
    (port,) = free_ports(1)
    server = Prometheus(tmp_path, port)
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


async def handled_by_code(
    prom: Prometheus, family: str = "grpc_server_handled_total"
) -> dict[str, float]:
    selector = ",".join(f'{k}="{v}"' for k, v in PREDICT.items())
    result = await prom.query(f"sum by (grpc_code) ({family}{{{selector}}})")
    return {s["metric"].get("grpc_code", ""): float(s["value"][1]) for s in result}


async def test_prometheus_counts_every_predict_by_status_code(
    prometheus: Prometheus, client: AsyncRowcastClient
) -> None:
    """20 good Predicts, 3 for an unknown model and 2 with an ill-typed feature: through
    Prometheus's HTTP API, grpc_server_handled_total rose by exactly 20 OK, 3 NOT_FOUND and
    2 INVALID_ARGUMENT, grpc_server_started_total by 25, and the handling-time histogram
    counted 25 calls."""
    await prometheus.wait_scrapes_after(time.time())
    before = await handled_by_code(prometheus)
    started_before = await prometheus.query(
        'sum(grpc_server_started_total{job="rowcast-prediction",grpc_method="Predict"})'
    )
    histogram_before = await prometheus.query(
        'sum(grpc_server_handling_seconds_count{job="rowcast-prediction",grpc_method="Predict"})'
    )

    for i in range(20):
        await client.predict(MODEL, {"balance": 100.0 * i, "income": 35_000.0, "student": "No"})
    for _ in range(3):
        with pytest.raises(NotFoundError):
            await client.predict("no_such_model", {"balance": 1.0})
    for _ in range(2):
        with pytest.raises(InvalidArgumentError):
            await client.predict(MODEL, {"balance": "lots", "income": 1.0, "student": "No"})

    await prometheus.wait_scrapes_after(time.time())
    after = await handled_by_code(prometheus)
    increase = {code: after[code] - before.get(code, 0.0) for code in after}
    assert {c: n for c, n in increase.items() if n} == {
        "OK": 20.0,
        "NOT_FOUND": 3.0,
        "INVALID_ARGUMENT": 2.0,
    }

    def total(result: list[dict[str, Any]]) -> float:
        return float(result[0]["value"][1]) if result else 0.0

    started_after = await prometheus.query(
        'sum(grpc_server_started_total{job="rowcast-prediction",grpc_method="Predict"})'
    )
    histogram_after = await prometheus.query(
        'sum(grpc_server_handling_seconds_count{job="rowcast-prediction",grpc_method="Predict"})'
    )
    assert total(started_after) - total(started_before) == 25.0
    assert total(histogram_after) - total(histogram_before) == 25.0


async def test_prometheus_evaluates_the_shipped_alert_rules_on_the_suite(
    prometheus: Prometheus,
) -> None:
    """The shipped alerts.yml loads into a real Prometheus and every rule evaluates without
    error on the suite's series; the prediction server's routes generation is scraped and
    the lagging-server expression finds no server behind the registry."""
    await prometheus.wait_scrapes_after(time.time(), scrapes=1)
    deadline = time.monotonic() + 10.0
    while True:
        data = await prometheus.api("rules")
        rules = [r for g in data["groups"] for r in g["rules"]]
        if all(r["health"] == "ok" for r in rules) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    groups = {g["name"] for g in data["groups"]}
    assert groups == {"rowcast-grpc", "rowcast-audit", "rowcast-versions", "rowcast-hbase"}
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    assert await prometheus.query('rowcast_routes_generation{job="rowcast-prediction"}')
    lagging = next(r for r in rules if r["name"] == "RowcastPredictionServerLagging")
    assert await prometheus.query(lagging["query"]) == []
