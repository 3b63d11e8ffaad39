"""Close the learning loop (`rowcast models retrain`): train a new version on the original data
plus the approved augmentations of served decisions, materialise and verify it, and compare it
with the active version on the same held-out rows (AUC for a probability model, RMSE for a
regression). The data set is a shipped or a stored one (`rowcast datasets add`); by default
the one the active version was trained or evaluated on. The new version is left READY, not
active: activating it is the admin's decision.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

import lightgbm as lgb

from rowcast.config import Settings
from rowcast.core.query import DecisionQuery
from rowcast.core.records import ModelInfo, OutputKind, VersionInfo
from rowcast.errors import FailedPrecondition, InvalidArgument
from rowcast.jobs import dataset as datasets
from rowcast.jobs.augmented import WEIGHT, AugmentedRows, combine, input_rows
from rowcast.jobs.create import dataset_problem, store_version
from rowcast.jobs.materialize import MaterializeResult, Progress
from rowcast.jobs.publish import flatten
from rowcast.jobs.train import TrainParams, fidelity, train
from rowcast.jobs.verify import HeldOut, table_fidelity
from rowcast.store.artifacts import ArtifactStore
from rowcast.store.audit import AuditStore
from rowcast.store.client import HBaseClient
from rowcast.store.predictions import PredictionStore
from rowcast.store.registry import Registry

#: Decisions read per audit page while collecting augmentations.
PAGE: Final = 1_000
#: Timeout of one audit page read, seconds.
PAGE_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True)
class RetrainSpec:
    """What to retrain."""

    model: str
    #: None: the active version's evaluation data set (what it was trained or measured on).
    dataset: str | None = None
    params: TrainParams = field(default_factory=TrainParams)
    creator: str = "rowcast"


@dataclass(frozen=True)
class Side:
    """One version's figures on the held-out rows."""

    version: int
    #: Metric of the raw model and of the version's table looked up in HBase.
    raw: float
    table: float


@dataclass(frozen=True)
class RetrainResult:
    version: VersionInfo
    materialized: MaterializeResult
    metric: str
    active: Side
    candidate: Side
    heldout_rows: int
    original_rows: int
    #: Decisions read from the audit, those whose approved answer became training rows, and
    #: those left out with the reason.
    decisions_scanned: int
    augmentations_used: int
    skipped: dict[str, int]


def dataset_for(model: ModelInfo, name: str, load: datasets.Loader) -> datasets.Dataset:
    """The data set to retrain on (shipped or stored), once it fits the model: each of the
    model's features is a column of it of the same kind and range, its target of the model's
    output kind.

    An unknown data set is InvalidArgument (`dataset`). A model that does not fit (e.g. one
    registered for an uploaded model file with other feature names) is FailedPrecondition
    naming the missing columns, those of another kind or range: retraining it on this data
    set is impossible, however it is asked for.
    """
    try:
        ds = load(name)
    except ValueError as exc:
        raise InvalidArgument.field("dataset", str(exc)) from exc
    problem = dataset_problem(model, ds)
    if problem:
        raise FailedPrecondition(
            f"model {model.name!r} cannot be retrained on data set {ds.name!r} (columns "
            f"{list(ds.features)}, target {ds.target!r}): {problem}"
        )
    return ds


async def collect(
    audit: AuditStore, registry: Registry, model: ModelInfo, rows: AugmentedRows
) -> None:
    """Read every decision of every version of the model into `rows`, a page at a time."""
    for version in await registry.versions.list_versions(model.name, timeout_s=PAGE_TIMEOUT_S):
        query = DecisionQuery(model=model.name, version=version.version)
        token = ""
        while True:
            page, token = await audit.list_decisions(query, PAGE, token, timeout_s=PAGE_TIMEOUT_S)
            rows.add(page)
            if not token:
                break


async def retrain(
    settings: Settings, spec: RetrainSpec, progress: Progress | None = None
) -> RetrainResult:
    """Train, store, materialise and verify a new version; compare it with the active one."""
    client = HBaseClient(settings.hbase)
    try:
        registry = Registry.over(client)
        predictions = PredictionStore(client)
        artifacts = ArtifactStore(client)
        call_s = settings.hbase.timeout_s
        model = await registry.models.get_model(spec.model, timeout_s=call_s)
        if not model.current_version:
            raise FailedPrecondition(
                f"model {spec.model!r} has no active version to compare a retrained one with"
            )
        active = await registry.versions.get_version(
            spec.model, model.current_version, timeout_s=call_s
        )
        name = spec.dataset or active.evaluation_dataset
        if not name:
            raise FailedPrecondition(
                f"active version {active.version} of {spec.model!r} names no data set (it was "
                "uploaded without --evaluation-dataset): give --dataset"
            )
        load = datasets.Catalog(registry.datasets).load
        ds = await asyncio.to_thread(dataset_for, model, name, load)
        train_frame, test_frame = ds.heldout_split()
        rows = AugmentedRows(
            model.signature,
            ds.target,
            input_rows(model.signature, test_frame),
            kind=model.output_kind,
        )
        await collect(AuditStore(client), registry, model, rows)
        columns = [*model.signature.names, ds.target]
        frame = combine(train_frame, rows.frame(), columns)
        heldout = HeldOut(test_frame, ds.target, ds.kind)

        booster = await asyncio.to_thread(
            train, ds, model.signature, frame, spec.params, frame[WEIGHT].to_numpy()
        )
        metrics = {
            **fidelity(booster, model.signature, test_frame, ds.target, ds.kind),
            "retrained_from": float(active.version),
            "original_rows": float(len(train_frame)),
            "augmentations": float(rows.approved),
        }
        version = await store_version(
            registry, artifacts, model, booster, metrics, spec.creator, ds.name, timeout_s=call_s
        )
        materialized, _ = await flatten(
            settings, client, model, version, booster, heldout, progress
        )
        version = await registry.versions.get_version(spec.model, version.version, timeout_s=call_s)
        baseline = await _baseline(predictions, artifacts, model, active, heldout, timeout_s=call_s)
        metric = metric_name(ds.kind)
        return RetrainResult(
            version=version,
            materialized=materialized,
            metric=metric,
            active=baseline,
            candidate=Side(
                version.version,
                version.metrics[f"{metric}_raw"],
                version.metrics[f"{metric}_table"],
            ),
            heldout_rows=len(test_frame),
            original_rows=len(train_frame),
            decisions_scanned=rows.scanned,
            augmentations_used=rows.approved,
            skipped=dict(rows.skipped),
        )
    finally:
        client.close()


async def _baseline(
    predictions: PredictionStore,
    artifacts: ArtifactStore,
    model: ModelInfo,
    active: VersionInfo,
    heldout: HeldOut,
    *,
    timeout_s: float,
) -> Side:
    """The active version measured now on the same held-out rows: its stored model file (read
    within `timeout_s`), and lookups in its table."""
    content = await artifacts.get(model.name, active.version, timeout_s=timeout_s)
    booster = await asyncio.to_thread(lambda: lgb.Booster(model_str=content.decode()))
    metrics, problems = await table_fidelity(
        predictions,
        active.table,
        active.version,
        model.signature,
        model.salt_buckets,
        booster,
        heldout,
    )
    if problems:
        raise FailedPrecondition(
            f"active version {active.version} of {model.name!r} cannot be measured: "
            + "; ".join(problems)
        )
    metric = metric_name(heldout.kind)
    return Side(active.version, metrics[f"{metric}_raw"], metrics[f"{metric}_table"])


def metric_name(kind: OutputKind) -> str:
    """The held-out metric of a model kind: AUC (higher is better) or RMSE (lower is)."""
    return "auc" if kind is OutputKind.PROBABILITY else "rmse"
