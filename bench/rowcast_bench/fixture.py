"""What a benchmark run stands on: a ready HBase, the demo model published into it, and the
large model the compute-on-request baseline also serves.

An HBase already running for this home is used as it is; otherwise one is started on free
loopback ports (a real HBase on the default ports may belong to someone else) and stopped
again when the run ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Final

from rowcast.config import HBaseSettings, Settings
from rowcast.core.keys import prediction_key
from rowcast.core.records import VersionState
from rowcast.core.signature import Signature
from rowcast.errors import ModelNotFound
from rowcast.jobs import dataset as datasets
from rowcast.jobs.publish import PublishSpec, publish
from rowcast.jobs.train import TrainParams, save, train
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.registry import Registry
from rowcast.store.schema import ensure_schema
from rowcast_bench.workload import Customer
from rowcast_dev.hbase.ports import on_free_ports
from rowcast_dev.hbase.runtime import StandaloneHBase

#: The large model of the compute-on-request baseline (the lead's brief: 1,000 trees).
LARGE_PARAMS: Final = TrainParams(num_trees=1000, num_leaves=63)


class HBaseLease:
    """Uses the HBase running for this home, or starts one on free ports and stops it after.

    `settings` (after enter) are the ones to reach the HBase in use; `started` says whether
    this lease started it (and so will stop it).
    """

    def __init__(self, requested: HBaseSettings, start_timeout_s: float = 240.0) -> None:
        self._requested = requested
        self._start_timeout_s = start_timeout_s
        self._hbase = StandaloneHBase(requested)
        self.started = False
        self.settings = requested

    def __enter__(self) -> HBaseLease:
        if self._hbase.is_running():
            # Started by someone else (e.g. `rowcast suite up`): use it, leave it running.
            self.settings = self._hbase.effective_settings()
            if not self._hbase.ready():
                raise RuntimeError(
                    f"the HBase of {self._requested.home} runs but does not answer; "
                    "see `rowcast hbase status`"
                )
            return self
        own = on_free_ports(self._requested)
        self._hbase = StandaloneHBase(own)
        self.started = True
        self.settings = own
        try:
            self._hbase.start(timeout_s=self._start_timeout_s)
        except BaseException:
            self._hbase.stop()
            raise
        return self

    def pids(self) -> list[int]:
        """The HBase JVMs' pids (the store is part of the system under test)."""
        return list(self._hbase.pids().values())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.started:
            self._hbase.stop()


@dataclass(frozen=True)
class BenchModel:
    """The published version the run measures, and the model files behind it."""

    name: str
    version: int
    table: str
    salt_buckets: int
    signature: Signature
    model_file: Path
    large_model_file: Path
    #: True if this run published the version (False: an active one was reused).
    published: bool

    def keys(self, people: Sequence[Customer]) -> list[bytes]:
        """The row keys of these customers' inputs in the version table."""
        return [
            prediction_key(self.signature.bin(c.features).bins, self.salt_buckets) for c in people
        ]

    def write_signature(self, path: Path) -> Path:
        path.write_text(json.dumps(self.signature.to_dict()))
        return path


def model_file(settings: Settings, model: str, version: int) -> Path:
    """Where `rowcast publish` saves a version's LightGBM model."""
    return settings.hbase.home / "models" / model / f"v{version}.txt"


async def _active_version(settings: Settings, model: str) -> BenchModel | None:
    """The model's active READY version if its model file is at hand, else None."""
    client = HBaseClient(settings.hbase)
    try:
        registry = Registry.over(client)
        try:
            info = await registry.models.get_model(model, timeout_s=settings.hbase.timeout_s)
        except ModelNotFound:
            return None
        if info.current_version <= 0:
            return None
        version = await registry.versions.get_version(
            model, info.current_version, timeout_s=settings.hbase.timeout_s
        )
    finally:
        client.close()
    path = model_file(settings, model, version.version)
    if version.state is not VersionState.READY or not path.is_file():
        return None
    return BenchModel(
        name=model,
        version=version.version,
        table=version.table,
        salt_buckets=info.salt_buckets,
        signature=info.signature,
        model_file=path,
        large_model_file=path,  # set by ensure_model
        published=False,
    )


def ensure_model(settings: Settings, model: str, republish: bool) -> BenchModel:
    """The active version of `model`, publishing (and activating) one if there is none, plus
    the large model trained on the same data and signature."""
    # A fresh HBase has no rowcast tables yet; the registry look-up below needs them.
    ensure_schema(TableAdmin(settings.hbase), timeout_s=DDL_TIMEOUT_S)
    found = None if republish else asyncio.run(_active_version(settings, model))
    if found is None:
        result = asyncio.run(publish(settings, PublishSpec(model=model, activate=True)))
        found = BenchModel(
            name=model,
            version=result.version.version,
            table=result.version.table,
            salt_buckets=result.model.salt_buckets,
            signature=result.model.signature,
            model_file=result.model_file,
            large_model_file=result.model_file,
            published=True,
        )
    large = found.model_file.with_name(
        f"v{found.version}-large-t{LARGE_PARAMS.num_trees}-l{LARGE_PARAMS.num_leaves}.txt"
    )
    if not large.is_file():
        # Its accuracy is beside the point (it is only timed): train on all of the data.
        ds = datasets.load("default")
        save(train(ds, found.signature, ds.frame, LARGE_PARAMS), large)
    return replace(found, large_model_file=large)
