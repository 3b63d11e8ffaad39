"""`rowcast top` against the real servers of the integration suite: it reads their /metrics
endpoints and shows the calls made between two scrapes."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from rowcast_cli.top_cmd import Scraper, Target, top
from rowcast_client import AsyncRowcastClient, NotFoundError
from tests.integration.conftest import MODEL, Suite

pytestmark = pytest.mark.asyncio(loop_scope="session")

CUSTOMER: dict[str, float | str] = {"balance": 1_500.0, "income": 35_000.0, "student": "No"}


async def test_top_counts_the_predicts_made_between_two_scrapes(
    suite: Suite, client: AsyncRowcastClient
) -> None:
    """12 good Predicts and 3 for an unknown model between two scrapes: the frame's
    PredictionService row counts 15 calls, 20 % of them failed, with latencies; the model's
    alias shows the version served and the cache hit ratio; the spool has a row."""
    target = Target("prediction", f"http://127.0.0.1:{suite.prediction.metrics_port}/metrics")
    scraper = Scraper([target], timeout_s=5.0)
    try:
        await asyncio.to_thread(scraper.step)
        for _ in range(12):
            await client.predict(MODEL, CUSTOMER)
        for _ in range(3):
            with pytest.raises(NotFoundError):
                await client.predict("no_such_model", {"balance": 1.0})
        f = await asyncio.to_thread(scraper.step)
    finally:
        scraper.close()
    (row,) = [s for s in f.services if s.service == "rowcast.v1.PredictionService"]
    assert row.rps is not None and row.rps * f.seconds == pytest.approx(15.0)
    assert row.error_ratio == pytest.approx(0.2)
    assert row.p50_s is not None and row.p99_s is not None and 0 < row.p50_s <= row.p99_s
    (model,) = [m for m in f.models if m.model == MODEL and m.alias == "current"]
    assert list(model.versions) and all(v >= 1 for v in model.versions)
    assert model.cache_hit_ratio is not None and model.cache_hit_ratio >= 11 / 12
    assert [s.target for s in f.spools] == ["prediction"]


async def test_top_once_draws_the_suite(suite: Suite) -> None:
    """`rowcast top --once` over the three real endpoints prints every target as up and the
    PredictionService row."""
    args = ["--once", "--interval", "0.5"]
    for name, server in (("prediction", suite.prediction), ("audit", suite.audit),
                         ("model", suite.model)):  # fmt: skip
        args += ["--metrics", f"{name}=127.0.0.1:{server.metrics_port}"]
    # In a thread: top sleeps between its scrapes, and the servers run on this event loop.
    result = await asyncio.to_thread(CliRunner().invoke, top, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "down" not in result.output
    assert result.output.count(" up ") == 3
    assert "rowcast.v1.PredictionService" in result.output
