"""Request messages built from plain Python arguments, shared by the async and sync clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from rowcast.v1 import audit_service_pb2 as audit_pb
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import resources_pb2 as pb

FeatureInput = Mapping[str, float | int | str]
"""One set of inputs: a number or a string per feature name."""


def feature_values(features: FeatureInput) -> dict[str, pb.FeatureValue]:
    out: dict[str, pb.FeatureValue] = {}
    for name, value in features.items():
        if isinstance(value, str):
            out[name] = pb.FeatureValue(string_value=value)
        elif isinstance(value, bool):
            raise TypeError(f"feature {name!r}: booleans are not feature values")
        else:
            out[name] = pb.FeatureValue(number_value=float(value))
    return out


def predict_request(
    model: str, features: FeatureInput, subject: str, alias: str = ""
) -> pred_pb.PredictRequest:
    return pred_pb.PredictRequest(
        model=model, features=feature_values(features), subject=subject, alias=alias
    )


def predict_batch_request(
    model: str, inputs: Sequence[FeatureInput], subjects: Sequence[str] | None
) -> pred_pb.PredictBatchRequest:
    subjects = subjects or [""] * len(inputs)
    return pred_pb.PredictBatchRequest(
        model=model,
        inputs=[
            pred_pb.PredictInput(features=feature_values(f), subject=s)
            for f, s in zip(inputs, subjects, strict=True)
        ],
    )


def _timestamp(when: datetime | None) -> Timestamp | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise ValueError("start_time/end_time must be timezone-aware datetimes")
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


def list_decisions_request(
    subject: str,
    *,
    model: str,
    model_version: int,
    key: str,
    start_time: datetime | None,
    end_time: datetime | None,
    page_size: int,
    page_token: str,
) -> audit_pb.ListDecisionsRequest:
    return audit_pb.ListDecisionsRequest(
        subject=subject,
        model=model,
        model_version=model_version,
        key=key,
        start_time=_timestamp(start_time),
        end_time=_timestamp(end_time),
        page_size=page_size,
        page_token=page_token,
    )


def augment_request(
    decision_id: str,
    better_output: float,
    *,
    actor: str,
    source: pb.AugmentationSource.ValueType,
    reason: str,
    state: pb.AugmentationState.ValueType,
    request_id: str,
) -> audit_pb.AugmentRequest:
    return audit_pb.AugmentRequest(
        decision_id=decision_id,
        augmentation=pb.Augmentation(
            better_output=better_output, source=source, actor=actor, reason=reason, state=state
        ),
        request_id=request_id,
    )


def create_version_request(
    model: str,
    creator: str,
    lightgbm_model: bytes | None,
    training: model_pb.TrainingSpec | None,
    evaluation_dataset: str,
) -> model_pb.CreateVersionRequest:
    if (lightgbm_model is None) == (training is None):
        raise ValueError("give exactly one of lightgbm_model or training")
    if lightgbm_model is not None:
        return model_pb.CreateVersionRequest(
            model=model,
            creator=creator,
            lightgbm_model=lightgbm_model,
            evaluation_dataset=evaluation_dataset,
        )
    return model_pb.CreateVersionRequest(
        model=model, creator=creator, training=training, evaluation_dataset=evaluation_dataset
    )
