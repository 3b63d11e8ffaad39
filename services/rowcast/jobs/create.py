"""Create a model version: from an uploaded LightGBM model, or by training on a shipped data
set. The model file is stored in HBase with the version; its table is written later
(materialisation)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import lightgbm as lgb

from rowcast.config import FidelityDrop
from rowcast.core.records import ModelInfo, VersionInfo, VersionState
from rowcast.deadlines import Budget
from rowcast.errors import FieldViolation, InvalidArgument
from rowcast.jobs import dataset as datasets
from rowcast.jobs.dataset import Dataset
from rowcast.jobs.modelfile import MODEL_FIELD, check_model_file
from rowcast.jobs.train import TrainParams, fidelity, invalid, train
from rowcast.jobs.verify import HeldOut
from rowcast.store.artifacts import ArtifactStore
from rowcast.store.registry import Registry

#: The default held-out split (each data set keeps its own: Dataset.heldout_split).
HELDOUT_FRACTION = datasets.HELDOUT_FRACTION
SPLIT_SEED = datasets.SPLIT_SEED
#: Largest uploaded model file.
MAX_MODEL_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Training:
    """Train on a shipped data set with these parameters."""

    dataset: str
    params: TrainParams


def load_booster(content: bytes, model: ModelInfo) -> lgb.Booster:
    """Parse an uploaded model and check it against the model it is for
    (`rowcast.jobs.modelfile.check_model_file`): its features are the signature's, in order,
    each numeric or categorical alike; its category lists are the signature's vocabularies
    (in any order: the file's order is what the table is scored with); its objective gives
    the model's output kind. Each failure is InvalidArgument naming `lightgbm_model`."""
    field = MODEL_FIELD
    if not content:
        raise InvalidArgument.field(field, "is empty")
    if len(content) > MAX_MODEL_BYTES:
        raise InvalidArgument.field(field, f"at most {MAX_MODEL_BYTES} bytes")
    try:
        text = content.decode()
        booster = lgb.Booster(model_str=text)
    except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument.field(field, f"is not a LightGBM text model: {exc}") from exc
    check_model_file(text, booster, model.signature, model.output_kind)
    return booster


def dataset_problem(model: ModelInfo, ds: Dataset) -> str | None:
    """Why a data set cannot train or evaluate a model (None when it can): every feature of
    the signature must be a column of it of the same kind, and its target of the model's."""
    problems = ds.misfits(model.signature)
    if ds.kind is not model.output_kind:
        problems.append(
            f"it has a {ds.kind.value} target, the model outputs a {model.output_kind.value}"
        )
    if not problems:
        return None
    return f"data set {ds.name!r} does not fit model {model.name!r}: " + "; ".join(problems)


def check_training(model: ModelInfo, training: Training, load: datasets.Loader) -> Dataset:
    """The training data set, once the request is known good: every bad field of it (data set
    unknown or unfit for the model, parameters out of range) is reported at once as
    InvalidArgument naming `training.<field>`."""
    violations = training.params.violations("training.")
    ds: Dataset | None = None
    try:
        ds = load(training.dataset)
    except ValueError as exc:
        violations.insert(0, FieldViolation("training.dataset", str(exc)))
    problem = dataset_problem(model, ds) if ds is not None else None
    if problem:
        violations.insert(0, FieldViolation("training.dataset", problem))
    if violations or ds is None:
        raise invalid(violations)
    return ds


def check_evaluation_dataset(
    model: ModelInfo, name: str, field: str, load: datasets.Loader
) -> Dataset:
    """A shipped data set that can measure a model's fidelity (InvalidArgument naming `field`
    otherwise)."""
    try:
        ds = load(name)
    except ValueError as exc:
        raise InvalidArgument.field(field, str(exc)) from exc
    problem = dataset_problem(model, ds)
    if problem:
        raise InvalidArgument.field(field, problem)
    return ds


def heldout_for(
    model: ModelInfo,
    version: VersionInfo,
    load: datasets.Loader,
    max_drop: FidelityDrop | None = None,
) -> HeldOut | None:
    """The held-out split of the version's evaluation data set (None when it has none): the
    rows its training never saw, for the fidelity measured at materialisation, which may be at
    most `max_drop` worse in the table than in the raw model (the default limits when None)."""
    if not version.evaluation_dataset:
        return None
    ds = load(version.evaluation_dataset)
    _, test_frame = ds.heldout_split()
    return HeldOut(test_frame, ds.target, model.output_kind, max_drop or FidelityDrop())


def train_for(
    model: ModelInfo, training: Training, load: datasets.Loader
) -> tuple[lgb.Booster, dict[str, float]]:
    """Train on the data set's training split; metrics on its held-out split (blocking)."""
    ds = check_training(model, training, load)
    train_frame, test_frame = ds.heldout_split()
    booster = train(ds, model.signature, train_frame, training.params)
    return booster, fidelity(booster, model.signature, test_frame, ds.target, ds.kind)


async def create_version(
    registry: Registry,
    artifacts: ArtifactStore,
    model: ModelInfo,
    source: bytes | Training,
    creator: str,
    evaluation_dataset: str = "",
    *,
    timeout_s: float,
) -> tuple[VersionInfo, lgb.Booster]:
    """Validate or train the model first, then allocate the version number and store the file:
    bad input (an unparsable model, an unknown data set, training parameters out of range) is
    InvalidArgument and never consumes a version number. A trained version is evaluated on
    its training data set's held-out split; an uploaded one on `evaluation_dataset`'s.
    `timeout_s` is for storing it, once trained."""
    # Data sets by name: shipped, or stored beside the registry (rowcast datasets add).
    load = datasets.Catalog(registry.datasets).load
    if isinstance(source, Training):
        if evaluation_dataset and evaluation_dataset != source.dataset:
            raise InvalidArgument.field(
                "evaluation_dataset", "a trained version is evaluated on its training data set"
            )
        booster, metrics = await asyncio.to_thread(train_for, model, source, load)
        evaluation_dataset = source.dataset
    else:
        if evaluation_dataset:
            await asyncio.to_thread(
                check_evaluation_dataset, model, evaluation_dataset, "evaluation_dataset", load
            )
        booster = await asyncio.to_thread(load_booster, source, model)
        metrics = {}
    version = await store_version(
        registry,
        artifacts,
        model,
        booster,
        metrics,
        creator,
        evaluation_dataset,
        timeout_s=timeout_s,
    )
    return version, booster


async def store_version(
    registry: Registry,
    artifacts: ArtifactStore,
    model: ModelInfo,
    booster: lgb.Booster,
    metrics: dict[str, float],
    creator: str,
    evaluation_dataset: str = "",
    *,
    timeout_s: float,
) -> VersionInfo:
    """Allocate the next version number, store the model file with it, mark it REGISTERED
    (all within `timeout_s`)."""
    budget = Budget.of(timeout_s)
    version = await registry.versions.new_version(model.name, creator, timeout_s=budget.left_s())
    content = booster.model_to_string().encode()
    await artifacts.put(model.name, version.version, content, timeout_s=budget.left_s())
    return await registry.versions.update_version(
        model.name,
        version.version,
        state=VersionState.REGISTERED,
        metrics=metrics,
        evaluation_dataset=evaluation_dataset,
        timeout_s=budget.left_s(),
    )
