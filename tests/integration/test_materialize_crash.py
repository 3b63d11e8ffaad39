"""A ModelService killed with SIGKILL in the middle of a materialisation: the version stays
MATERIALIZING (never READY), the active version keeps serving, the dead runner's operation ends
ABORTED for every replica (GetOperation, WatchOperation, the CLI's --watch), and a new
ModelService resumes the write from the checkpoint to exactly the grid's rows, verified."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
from click.testing import CliRunner
from google.rpc import code_pb2

from rowcast.config import Settings
from rowcast.convert import signature_to_pb
from rowcast.jobs import dataset as datasets
from rowcast.jobs.train import derive_signature
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.models_cmd import models
from rowcast_client import AsyncRowcastClient
from rowcast_dev.hbase.ports import free_port
from rowcast_dev.suite import health_serving
from tests.integration.conftest import MODEL, Published, Suite, service_env

NAME = "crash_resume"


@asynccontextmanager
async def model_service(settings: Settings) -> AsyncIterator[tuple[Process, str]]:
    """`rowcast serve model` in its own process (its own session, so the kill reaches its
    worker processes too); stopped at the end if still running."""
    port = free_port()
    hb = settings.hbase
    env = {
        **os.environ,
        "ROWCAST_HOME": str(hb.home),
        "ROWCAST_HBASE_THRIFT_PORT": str(hb.thrift_port),
        "ROWCAST_HBASE_THRIFT2_PORT": str(hb.thrift2_port),
        "ROWCAST_HBASE_ZK_PORT": str(hb.zookeeper_port),
        "ROWCAST_HBASE_MASTER_PORT": str(hb.master_port),
        "ROWCAST_HBASE_RS_PORT": str(hb.regionserver_port),
        "ROWCAST_MODEL_METRICS_PORT": "0",  # a free one, beside any suite on this machine
    }
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "rowcast_cli.main", "serve", "model", "--port", str(port)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not health_serving("127.0.0.1", port, security=settings.security):
            assert proc.returncode is None, "serve model exited early"
            assert time.monotonic() < deadline, "ModelService did not come up"
            await asyncio.sleep(0.3)
        yield proc, f"127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@pytest.mark.timeout(600)
async def test_a_crash_mid_write_never_makes_a_version_ready_and_resumes(
    settings: Settings, suite: Suite, published: Published
) -> None:
    ds = datasets.load("default")
    train, _ = ds.split(0.2, 42)
    model = pb.Model(
        name=NAME,
        signature=signature_to_pb(derive_signature(train, ds, {"balance": 100, "income": 50})),
        output=pb.OutputSpec(kind=pb.OUTPUT_KIND_PROBABILITY, description="P(default)"),
    )
    customer: dict[str, float | str] = {"balance": 1_500.0, "income": 30_000.0, "student": "No"}
    async with AsyncRowcastClient(suite.targets, timeout_s=30.0) as serving:
        served_before = await serving.predict(MODEL, customer)

        async with model_service(settings) as (proc, target):
            async with AsyncRowcastClient(
                replace(suite.targets, model=target), timeout_s=30.0
            ) as client:
                grid = (await client.register_model(model)).grid_size
                version = await client.create_version(
                    NAME,
                    creator="",
                    training=model_pb.TrainingSpec(dataset="default", num_leaves=7, num_trees=30),
                )
                op = await client.materialize_version(
                    NAME, version.version, rows_per_second_limit=1_000
                )
                async for state in client.watch_operation(op.name, timeout=120):
                    if state.progress.rows_written >= 1_000:
                        break
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

        crashed = await serving.get_version(NAME, version.version)
        assert crashed.state == pb.VERSION_STATE_MATERIALIZING
        assert 0 < crashed.rows_written < grid
        # The active version of the served model was never touched.
        assert (await serving.get_model(MODEL)).current_version == published.v1.version.version
        served = await serving.predict(MODEL, customer)
        assert (served.model_version, served.output) == (
            served_before.model_version,
            served_before.output,
        )

        # Another replica (the suite's ModelService) reports the dead runner's operation as
        # running until it has been silent for 15 s, then as ended: done, ABORTED, with when
        # it stopped and how to go on.
        deadline = time.monotonic() + 60
        while not (dead := await serving.get_operation(op.name)).done:
            assert time.monotonic() < deadline, "the dead runner's operation never ended"
            await asyncio.sleep(0.5)
        assert dead.error.code == code_pb2.ABORTED, dead.error
        assert "stopped reporting at" in dead.error.message
        assert "MaterializeVersion resumes from the watermark" in dead.error.message
        assert dead.version.state == pb.VERSION_STATE_MATERIALIZING
        # WatchOperation ends at once with that state, and so does the CLI's --watch (exit 5:
        # resumable) instead of hanging.
        watched = [s async for s in serving.watch_operation(op.name, timeout=30)]
        assert [(s.done, s.error.code) for s in watched] == [(True, code_pb2.ABORTED)]
        cli = await asyncio.to_thread(
            CliRunner().invoke,
            models,
            ["operation", op.name, "--watch", "--json"],
            env={**service_env(settings), "ROWCAST_MODEL_PORT": str(suite.model.port)},
            catch_exceptions=False,
        )
        assert cli.exit_code == 5, cli.output
        assert "stopped reporting" in cli.stderr

        async with (
            model_service(settings) as (_, target),
            AsyncRowcastClient(replace(suite.targets, model=target), timeout_s=30.0) as client,
        ):
            # The ended operation no longer holds the version: a resume starts at once.
            resumed = await client.materialize_version(NAME, version.version)
            states = [s async for s in client.watch_operation(resumed.name, timeout=180)]
        assert states[0].progress.rows_written >= crashed.rows_written
        done = states[-1]
        assert done.version.state == pb.VERSION_STATE_READY, done.error.message
        assert done.version.row_count == grid
        assert done.version.metrics["verified_sample"] > 0
        # The aborted operation stays ended as it was, whatever happened since.
        after = await serving.get_operation(op.name)
        assert (after.done, after.error, after.progress.rows_written) == (
            True,
            dead.error,
            dead.progress.rows_written,
        )
