"""Conversions between protobuf messages and the plain records: the edge where protos stop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from rowcast.core import records as r
from rowcast.core.signature import CategoricalFeature, NumericFeature, RawValue, Signature
from rowcast.errors import FieldViolation, InvalidArgument, listing
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb

SOURCE_TO_PB = {
    r.Source.HBASE: pb.PREDICTION_SOURCE_HBASE,
    r.Source.CACHE: pb.PREDICTION_SOURCE_CACHE,
    r.Source.FALLBACK: pb.PREDICTION_SOURCE_FALLBACK,
}
STATE_TO_PB = {
    r.VersionState.REGISTERED: pb.VERSION_STATE_REGISTERED,
    r.VersionState.MATERIALIZING: pb.VERSION_STATE_MATERIALIZING,
    r.VersionState.READY: pb.VERSION_STATE_READY,
    r.VersionState.FAILED: pb.VERSION_STATE_FAILED,
    r.VersionState.RETIRED: pb.VERSION_STATE_RETIRED,
}
AUG_SOURCE_TO_PB = {
    r.AugmentationSource.PERSON: pb.AUGMENTATION_SOURCE_PERSON,
    r.AugmentationSource.PROGRAM: pb.AUGMENTATION_SOURCE_PROGRAM,
}
AUG_STATE_TO_PB = {
    r.AugmentationState.PROPOSED: pb.AUGMENTATION_STATE_PROPOSED,
    r.AugmentationState.APPROVED: pb.AUGMENTATION_STATE_APPROVED,
    r.AugmentationState.REJECTED: pb.AUGMENTATION_STATE_REJECTED,
}
OUTPUT_KIND_TO_PB = {
    r.OutputKind.PROBABILITY: pb.OUTPUT_KIND_PROBABILITY,
    r.OutputKind.REGRESSION: pb.OUTPUT_KIND_REGRESSION,
}


K = TypeVar("K")
V = TypeVar("V")


def _inverse(mapping: Mapping[K, V]) -> dict[V, K]:
    return {v: k for k, v in mapping.items()}


SOURCE_FROM_PB = _inverse(SOURCE_TO_PB)
AUG_SOURCE_FROM_PB = _inverse(AUG_SOURCE_TO_PB)
AUG_STATE_FROM_PB = _inverse(AUG_STATE_TO_PB)
OUTPUT_KIND_FROM_PB = _inverse(OUTPUT_KIND_TO_PB)
HISTORY_KIND_TO_PB = {
    r.HistoryKind.ACTIVATION: model_pb.HISTORY_KIND_ACTIVATION,
    r.HistoryKind.ROLLBACK: model_pb.HISTORY_KIND_ROLLBACK,
    r.HistoryKind.RETIREMENT: model_pb.HISTORY_KIND_RETIREMENT,
    r.HistoryKind.DELETION: model_pb.HISTORY_KIND_DELETION,
}


def timestamp(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


#: The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
TIMESTAMP_MIN_SECONDS = -62_135_596_800
TIMESTAMP_MAX_SECONDS = 253_402_300_799


def timestamp_ms(ts: Timestamp, field: str) -> int:
    """A request's Timestamp in milliseconds since the epoch; INVALID_ARGUMENT naming `field`
    when it is outside what a Timestamp may hold (protobuf would raise a bare ValueError)."""
    if not TIMESTAMP_MIN_SECONDS <= ts.seconds <= TIMESTAMP_MAX_SECONDS:
        raise InvalidArgument.field(
            field,
            f"seconds must be within 0001-01-01..9999-12-31 ({TIMESTAMP_MIN_SECONDS}.."
            f"{TIMESTAMP_MAX_SECONDS}), got {ts.seconds}",
        )
    if not 0 <= ts.nanos <= 999_999_999:
        raise InvalidArgument.field(field, f"nanos must be in 0..999999999, got {ts.nanos}")
    return ts.ToMilliseconds()


def features_from_pb(
    features: Mapping[str, pb.FeatureValue], prefix: str = ""
) -> dict[str, RawValue]:
    """Raw values by name; a value with neither number nor string set is a bad field."""
    out: dict[str, RawValue] = {}
    violations: list[FieldViolation] = []
    for name, value in features.items():
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            out[name] = value.number_value
        elif kind == "string_value":
            out[name] = value.string_value
        else:
            violations.append(
                FieldViolation(f"{prefix}features.{name}", "has no value (set number or string)")
            )
    if violations:
        raise InvalidArgument(listing(violations, " "), violations)
    return out


def features_to_pb(features: Mapping[str, RawValue]) -> dict[str, pb.FeatureValue]:
    out: dict[str, pb.FeatureValue] = {}
    for name, value in features.items():
        if isinstance(value, str):
            out[name] = pb.FeatureValue(string_value=value)
        else:
            out[name] = pb.FeatureValue(number_value=float(value))
    return out


def signature_to_pb(signature: Signature) -> pb.Signature:
    features = []
    for f in signature.features:
        if isinstance(f, NumericFeature):
            features.append(
                pb.Feature(
                    name=f.name,
                    numeric=pb.NumericBinning(
                        edges=f.edges,
                        representatives=f.representatives,
                        # None leaves the bound unset: open.
                        lower=f.lower,
                        upper=f.upper,
                    ),
                )
            )
        elif isinstance(f, CategoricalFeature):
            features.append(
                pb.Feature(
                    name=f.name,
                    categorical=pb.CategoricalBinning(
                        vocabulary=f.vocabulary, out_of_vocabulary_bucket=f.oov_bucket
                    ),
                )
            )
    return pb.Signature(features=features)


def model_to_pb(m: r.ModelInfo) -> pb.Model:
    return pb.Model(
        name=m.name,
        description=m.description,
        signature=signature_to_pb(m.signature),
        output=pb.OutputSpec(
            kind=OUTPUT_KIND_TO_PB[m.output_kind], description=m.output_description
        ),
        current_version=m.current_version,
        previous_version=m.previous_version,
        create_time=timestamp(m.create_time_ms),
        aliases=m.aliases,
        grid_size=m.signature.grid_size,
    )


def version_to_pb(v: r.VersionInfo) -> pb.ModelVersion:
    return pb.ModelVersion(
        model=v.model,
        version=v.version,
        state=STATE_TO_PB[v.state],
        table=v.table,
        row_count=v.row_count,
        creator=v.creator,
        metrics=v.metrics,
        create_time=timestamp(v.create_time_ms),
        update_time=timestamp(v.update_time_ms),
        rows_written=v.rows_written,
        failure_reason=v.failure_reason,
        evaluation_dataset=v.evaluation_dataset,
        retired_by=v.retired_by,
        retire_time=timestamp(v.retire_time_ms) if v.retire_time_ms else None,
        table_dropped=v.table_dropped,
    )


def augmentation_to_pb(a: r.Augmentation) -> pb.Augmentation:
    return pb.Augmentation(
        augmentation_id=a.augmentation_id,
        better_output=a.better_output,
        source=AUG_SOURCE_TO_PB[a.source],
        actor=a.actor,
        reason=a.reason,
        state=AUG_STATE_TO_PB[a.state],
        create_time=timestamp(a.create_time_ms),
        reviewed_augmentation_id=a.reviewed_augmentation_id,
    )


def decision_to_pb(d: r.Decision) -> pb.Decision:
    """The Decision message. Built in place (every audited Predict builds one): nested
    messages passed to the constructor are built and then copied, which made this twice as
    slow (6.1 against 3.0 us with serialisation, docs/benchmarks.md)."""
    m = pb.Decision(
        decision_id=d.decision_id,
        model=d.model,
        model_version=d.model_version,
        subject=d.subject,
        key=d.key_hex,
        output=d.output,
        source=SOURCE_TO_PB[d.source],
    )
    features = m.features
    for name, value in d.features.items():
        if isinstance(value, str):
            features[name].string_value = value
        else:
            features[name].number_value = float(value)
    m.decide_time.FromMilliseconds(d.decide_time_ms)
    if d.augmentations:
        m.augmentations.extend(augmentation_to_pb(a) for a in d.augmentations)
    if d.chain is not None:
        m.chain.SetInParent()
        m.chain.chain_id = d.chain.chain_id
        m.chain.sequence = d.chain.sequence
        m.chain.tag = d.chain.tag
    return m


def chain_to_pb(link: r.ChainLink | None) -> pb.ChainLink | None:
    if link is None:
        return None
    return pb.ChainLink(chain_id=link.chain_id, sequence=link.sequence, tag=link.tag)


def chain_from_pb(d: pb.Decision, where: str) -> r.ChainLink | None:
    """The decision's chain link (None when unset); a link is whole or refused."""
    if not d.HasField("chain"):
        return None
    link = d.chain
    if not link.chain_id or len(link.chain_id) > 64 or link.sequence < 0:
        raise InvalidArgument.field(
            f"{where}.chain", "needs a chain_id (at most 64 characters) and a sequence >= 0"
        )
    try:
        tag = bytes.fromhex(link.tag)
    except ValueError:
        tag = b""
    if len(tag) != 32:
        raise InvalidArgument.field(f"{where}.chain.tag", "must be 64 hex digits")
    return r.ChainLink(link.chain_id, link.sequence, link.tag)


def decision_from_pb(d: pb.Decision, index: int) -> r.Decision:
    """A decision sent by a prediction server; index names it in errors."""
    where = f"decisions[{index}]"
    if not d.decision_id:
        raise InvalidArgument.field(f"{where}.decision_id", "is required")
    source = SOURCE_FROM_PB.get(d.source)
    if not isinstance(source, r.Source):
        raise InvalidArgument.field(f"{where}.source", "is required")
    return r.Decision(
        decision_id=d.decision_id,
        model=d.model,
        model_version=d.model_version,
        subject=d.subject,
        features=features_from_pb(d.features, prefix=f"{where}."),
        key_hex=d.key,
        output=d.output,
        source=source,
        decide_time_ms=timestamp_ms(d.decide_time, f"{where}.decide_time"),
        chain=chain_from_pb(d, where),
    )


def signature_from_pb(signature: pb.Signature) -> Signature:
    """Build and validate a signature; violations name `model.signature...` fields."""
    features: list[NumericFeature | CategoricalFeature] = []
    for f in signature.features:
        kind = f.WhichOneof("binning")
        if kind == "numeric":
            features.append(
                NumericFeature(
                    name=f.name,
                    edges=tuple(f.numeric.edges),
                    representatives=tuple(f.numeric.representatives),
                    lower=f.numeric.lower if f.numeric.HasField("lower") else None,
                    upper=f.numeric.upper if f.numeric.HasField("upper") else None,
                )
            )
        elif kind == "categorical":
            features.append(
                CategoricalFeature(
                    name=f.name,
                    vocabulary=tuple(f.categorical.vocabulary),
                    oov_bucket=f.categorical.out_of_vocabulary_bucket,
                )
            )
        else:
            raise InvalidArgument.field(
                f"model.signature.features.{f.name}", "needs numeric or categorical binning"
            )
    try:
        return Signature(tuple(features))
    except InvalidArgument as exc:
        raise exc.prefixed("model.") from None


def propagation_to_pb(p: r.Propagation) -> model_pb.Propagation:
    wait = Duration()
    wait.FromNanoseconds(int(p.waited_s * 1e9))
    return model_pb.Propagation(
        generation=p.generation,
        servers=p.servers,
        lagging_servers=p.lagging,
        complete=p.complete,
        wait=wait,
    )
