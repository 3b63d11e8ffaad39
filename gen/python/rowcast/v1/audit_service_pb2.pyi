import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from rowcast.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordDecisionsRequest(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[_resources_pb2.Decision, _Mapping]]] = ...) -> None: ...

class RecordDecisionsResponse(_message.Message):
    __slots__ = ("recorded_count",)
    RECORDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    recorded_count: int
    def __init__(self, recorded_count: _Optional[int] = ...) -> None: ...

class StreamDecisionsRequest(_message.Message):
    __slots__ = ("batch_id", "decisions")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    decisions: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Decision]
    def __init__(self, batch_id: _Optional[int] = ..., decisions: _Optional[_Iterable[_Union[_resources_pb2.Decision, _Mapping]]] = ...) -> None: ...

class StreamDecisionsResponse(_message.Message):
    __slots__ = ("batch_id", "recorded_count", "rejected")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    recorded_count: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedDecision]
    def __init__(self, batch_id: _Optional[int] = ..., recorded_count: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedDecision, _Mapping]]] = ...) -> None: ...

class RejectedDecision(_message.Message):
    __slots__ = ("index", "decision_id", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    decision_id: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., decision_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class GetDecisionResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: _resources_pb2.Decision
    def __init__(self, decision: _Optional[_Union[_resources_pb2.Decision, _Mapping]] = ...) -> None: ...

class ListDecisionsRequest(_message.Message):
    __slots__ = ("subject", "page_size", "page_token", "model", "model_version", "key", "start_time", "end_time")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    subject: str
    page_size: int
    page_token: str
    model: str
    model_version: int
    key: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, subject: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., model: _Optional[str] = ..., model_version: _Optional[int] = ..., key: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDecisionsResponse(_message.Message):
    __slots__ = ("decisions", "next_page_token")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Decision]
    next_page_token: str
    def __init__(self, decisions: _Optional[_Iterable[_Union[_resources_pb2.Decision, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CountDecisionsRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class CountDecisionsResponse(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[DecisionCount]
    def __init__(self, counts: _Optional[_Iterable[_Union[DecisionCount, _Mapping]]] = ...) -> None: ...

class DecisionCount(_message.Message):
    __slots__ = ("model_version", "decision_count", "unaugmented_count", "proposed_count", "approved_count", "rejected_count")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNAUGMENTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    APPROVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    model_version: int
    decision_count: int
    unaugmented_count: int
    proposed_count: int
    approved_count: int
    rejected_count: int
    def __init__(self, model_version: _Optional[int] = ..., decision_count: _Optional[int] = ..., unaugmented_count: _Optional[int] = ..., proposed_count: _Optional[int] = ..., approved_count: _Optional[int] = ..., rejected_count: _Optional[int] = ...) -> None: ...

class AugmentRequest(_message.Message):
    __slots__ = ("decision_id", "augmentation", "request_id")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    augmentation: _resources_pb2.Augmentation
    request_id: str
    def __init__(self, decision_id: _Optional[str] = ..., augmentation: _Optional[_Union[_resources_pb2.Augmentation, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class AugmentResponse(_message.Message):
    __slots__ = ("decision", "replayed")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    decision: _resources_pb2.Decision
    replayed: bool
    def __init__(self, decision: _Optional[_Union[_resources_pb2.Decision, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...
