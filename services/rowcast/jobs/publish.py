"""Train a new version of a model on a data set (shipped, or stored by `rowcast datasets add`),
flatten it into HBase, optionally activate it: the data scientist's end-to-end job
(`rowcast publish`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb

from rowcast.config import Settings
from rowcast.core.records import ModelInfo, OutputKind, Propagation, VersionInfo
from rowcast.errors import InvalidArgument, ModelNotFound
from rowcast.jobs import dataset as datasets
from rowcast.jobs.create import Training, create_version
from rowcast.jobs.materialize import MaterializeResult, Progress, check_grid, materialize
from rowcast.jobs.train import TrainParams, derive_signature, save
from rowcast.jobs.verify import HeldOut
from rowcast.propagation import Propagator
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.artifacts import ArtifactStore
from rowcast.store.client import HBaseClient
from rowcast.store.notify import close_notifier, open_notifier
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry
from rowcast.store.schema import ensure_schema


@dataclass(frozen=True)
class PublishSpec:
    """What to train and publish."""

    model: str
    dataset: str = "default"
    params: TrainParams = field(default_factory=TrainParams)
    #: Bins per numeric feature, used only when the model is registered by this run.
    bins: dict[str, int] = field(default_factory=lambda: {"balance": 100, "income": 50})
    description: str = "Probability that a credit-card customer defaults (ISLR Default)."
    creator: str = "rowcast"
    activate: bool = True


@dataclass(frozen=True)
class PublishResult:
    model: ModelInfo
    version: VersionInfo
    materialized: MaterializeResult
    metrics: dict[str, float]
    model_file: Path
    activated: bool
    #: How far the activation had reached the running prediction servers (None: not activated).
    propagation: Propagation | None = None


async def publish(
    settings: Settings, spec: PublishSpec, progress: Progress | None = None
) -> PublishResult:
    client = HBaseClient(settings.hbase)
    # Announces the activation, so that watching prediction servers switch at once.
    notifier = await open_notifier(settings.hbase, settings.server.registry_watch)
    try:
        admin = TableAdmin(settings.hbase)
        ensure_schema(admin, timeout_s=DDL_TIMEOUT_S)
        registry = Registry.over(client)
        call_s = settings.hbase.timeout_s
        try:
            ds = await asyncio.to_thread(datasets.Catalog(registry.datasets).load, spec.dataset)
        except ValueError as exc:
            raise InvalidArgument.field("dataset", str(exc)) from exc
        train_frame, test_frame = ds.heldout_split()
        try:
            model = await registry.models.get_model(spec.model, timeout_s=call_s)
        except ModelNotFound:
            signature = (
                derive_signature(train_frame, ds, spec.bins)
                if ds.name in datasets.NAMES
                # A data set of its owner: bins by core.signature's rules, every column.
                else datasets.derive_signature(ds, ds.features)
            )
            check_grid(signature, settings.max_grid_rows)
            model = await registry.models.register_model(
                spec.model,
                signature,
                ds.kind,
                f"probability that {ds.target} is true"
                if ds.kind is OutputKind.PROBABILITY
                else f"expected {ds.target}",
                spec.description,
                settings.salt_buckets,
                timeout_s=call_s,
                exist_ok=True,
            )
        version, booster = await create_version(
            registry,
            ArtifactStore(client),
            model,
            Training(spec.dataset, spec.params),
            spec.creator,
            timeout_s=call_s,
        )
        metrics = version.metrics
        result, model_file = await flatten(
            settings,
            client,
            model,
            version,
            booster,
            HeldOut(test_frame, ds.target, ds.kind),
            progress,
        )
        propagation = None
        if spec.activate:
            changed = await registry.aliases.activate(
                spec.model,
                version.version,
                spec.creator,
                "published by rowcast publish",
                timeout_s=call_s,
            )
            model = changed.model
            wait_s = settings.server.propagation_timeout_s
            propagator = Propagator(
                registry.models, notifier, wait_s=wait_s, store_timeout_s=call_s
            )
            propagation = await propagator.propagate(budget_s=wait_s)
        version = await registry.versions.get_version(spec.model, version.version, timeout_s=call_s)
        return PublishResult(
            model, version, result, metrics, model_file, spec.activate, propagation
        )
    finally:
        await close_notifier(notifier)
        client.close()


async def flatten(
    settings: Settings,
    client: HBaseClient,
    model: ModelInfo,
    version: VersionInfo,
    booster: lgb.Booster,
    heldout: HeldOut,
    progress: Progress | None,
) -> tuple[MaterializeResult, Path]:
    """Save a trained version's model file under ROWCAST_HOME/models and materialise the
    version with the settings' limits (grid size, rate); its held-out fidelity is recorded."""
    model_file = save(
        booster, settings.hbase.home / "models" / model.name / f"v{version.version}.txt"
    )
    result = await materialize(
        registry=Registry.over(client),
        predictions=PredictionStore(client),
        admin=TableAdmin(settings.hbase),
        version=version,
        signature=model.signature,
        model_file=model_file,
        hbase=settings.hbase,
        metrics=version.metrics,
        salt_buckets=model.salt_buckets,
        max_grid_rows=settings.max_grid_rows,
        progress=progress,
        rows_per_second=settings.materialize_rows_per_second,
        # The gate's limit on the fidelity drop is the settings' (ROWCAST_MAX_FIDELITY_DROP).
        heldout=HeldOut(heldout.frame, heldout.target, heldout.kind, settings.max_fidelity_drop),
        timeout_s=settings.hbase.timeout_s,
    )
    return result, model_file
