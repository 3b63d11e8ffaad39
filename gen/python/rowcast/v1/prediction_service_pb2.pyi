from rowcast.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FallbackRule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FALLBACK_RULE_UNSPECIFIED: _ClassVar[FallbackRule]
    FALLBACK_RULE_CLAMPED_TO_EDGE_BIN: _ClassVar[FallbackRule]
    FALLBACK_RULE_MISSING_ROW_DEFAULT: _ClassVar[FallbackRule]
FALLBACK_RULE_UNSPECIFIED: FallbackRule
FALLBACK_RULE_CLAMPED_TO_EDGE_BIN: FallbackRule
FALLBACK_RULE_MISSING_ROW_DEFAULT: FallbackRule

class PredictRequest(_message.Message):
    __slots__ = ("model", "features", "subject", "alias")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _resources_pb2.FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_resources_pb2.FeatureValue, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    model: str
    features: _containers.MessageMap[str, _resources_pb2.FeatureValue]
    subject: str
    alias: str
    def __init__(self, model: _Optional[str] = ..., features: _Optional[_Mapping[str, _resources_pb2.FeatureValue]] = ..., subject: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("output", "model_version", "decision_id", "source", "key", "clamped_features", "fallback_rules")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLAMPED_FEATURES_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_RULES_FIELD_NUMBER: _ClassVar[int]
    output: float
    model_version: int
    decision_id: str
    source: _resources_pb2.PredictionSource
    key: str
    clamped_features: _containers.RepeatedScalarFieldContainer[str]
    fallback_rules: _containers.RepeatedScalarFieldContainer[FallbackRule]
    def __init__(self, output: _Optional[float] = ..., model_version: _Optional[int] = ..., decision_id: _Optional[str] = ..., source: _Optional[_Union[_resources_pb2.PredictionSource, str]] = ..., key: _Optional[str] = ..., clamped_features: _Optional[_Iterable[str]] = ..., fallback_rules: _Optional[_Iterable[_Union[FallbackRule, str]]] = ...) -> None: ...

class PredictInput(_message.Message):
    __slots__ = ("features", "subject")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _resources_pb2.FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_resources_pb2.FeatureValue, _Mapping]] = ...) -> None: ...
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    features: _containers.MessageMap[str, _resources_pb2.FeatureValue]
    subject: str
    def __init__(self, features: _Optional[_Mapping[str, _resources_pb2.FeatureValue]] = ..., subject: _Optional[str] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("model", "inputs")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _containers.RepeatedCompositeFieldContainer[PredictInput]
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[PredictInput, _Mapping]]] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[PredictResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[PredictResponse, _Mapping]]] = ...) -> None: ...

class StreamPredictRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: PredictRequest
    def __init__(self, request: _Optional[_Union[PredictRequest, _Mapping]] = ...) -> None: ...

class StreamPredictResponse(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: PredictResponse
    def __init__(self, response: _Optional[_Union[PredictResponse, _Mapping]] = ...) -> None: ...
