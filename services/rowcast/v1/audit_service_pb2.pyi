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
    __slots__ = ("subject", "page_size", "page_token")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject: str
    page_size: int
    page_token: str
    def __init__(self, subject: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDecisionsResponse(_message.Message):
    __slots__ = ("decisions", "next_page_token")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Decision]
    next_page_token: str
    def __init__(self, decisions: _Optional[_Iterable[_Union[_resources_pb2.Decision, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AugmentRequest(_message.Message):
    __slots__ = ("decision_id", "augmentation")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATION_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    augmentation: _resources_pb2.Augmentation
    def __init__(self, decision_id: _Optional[str] = ..., augmentation: _Optional[_Union[_resources_pb2.Augmentation, _Mapping]] = ...) -> None: ...

class AugmentResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: _resources_pb2.Decision
    def __init__(self, decision: _Optional[_Union[_resources_pb2.Decision, _Mapping]] = ...) -> None: ...
