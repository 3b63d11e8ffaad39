import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_KIND_UNSPECIFIED: _ClassVar[OutputKind]
    OUTPUT_KIND_PROBABILITY: _ClassVar[OutputKind]
    OUTPUT_KIND_REGRESSION: _ClassVar[OutputKind]

class VersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_STATE_UNSPECIFIED: _ClassVar[VersionState]
    VERSION_STATE_REGISTERED: _ClassVar[VersionState]
    VERSION_STATE_MATERIALIZING: _ClassVar[VersionState]
    VERSION_STATE_READY: _ClassVar[VersionState]
    VERSION_STATE_FAILED: _ClassVar[VersionState]
    VERSION_STATE_RETIRED: _ClassVar[VersionState]

class PredictionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREDICTION_SOURCE_UNSPECIFIED: _ClassVar[PredictionSource]
    PREDICTION_SOURCE_HBASE: _ClassVar[PredictionSource]
    PREDICTION_SOURCE_CACHE: _ClassVar[PredictionSource]
    PREDICTION_SOURCE_FALLBACK: _ClassVar[PredictionSource]

class AugmentationSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUGMENTATION_SOURCE_UNSPECIFIED: _ClassVar[AugmentationSource]
    AUGMENTATION_SOURCE_PERSON: _ClassVar[AugmentationSource]
    AUGMENTATION_SOURCE_PROGRAM: _ClassVar[AugmentationSource]

class AugmentationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUGMENTATION_STATE_UNSPECIFIED: _ClassVar[AugmentationState]
    AUGMENTATION_STATE_PROPOSED: _ClassVar[AugmentationState]
    AUGMENTATION_STATE_APPROVED: _ClassVar[AugmentationState]
    AUGMENTATION_STATE_REJECTED: _ClassVar[AugmentationState]
OUTPUT_KIND_UNSPECIFIED: OutputKind
OUTPUT_KIND_PROBABILITY: OutputKind
OUTPUT_KIND_REGRESSION: OutputKind
VERSION_STATE_UNSPECIFIED: VersionState
VERSION_STATE_REGISTERED: VersionState
VERSION_STATE_MATERIALIZING: VersionState
VERSION_STATE_READY: VersionState
VERSION_STATE_FAILED: VersionState
VERSION_STATE_RETIRED: VersionState
PREDICTION_SOURCE_UNSPECIFIED: PredictionSource
PREDICTION_SOURCE_HBASE: PredictionSource
PREDICTION_SOURCE_CACHE: PredictionSource
PREDICTION_SOURCE_FALLBACK: PredictionSource
AUGMENTATION_SOURCE_UNSPECIFIED: AugmentationSource
AUGMENTATION_SOURCE_PERSON: AugmentationSource
AUGMENTATION_SOURCE_PROGRAM: AugmentationSource
AUGMENTATION_STATE_UNSPECIFIED: AugmentationState
AUGMENTATION_STATE_PROPOSED: AugmentationState
AUGMENTATION_STATE_APPROVED: AugmentationState
AUGMENTATION_STATE_REJECTED: AugmentationState

class FeatureValue(_message.Message):
    __slots__ = ("number_value", "string_value")
    NUMBER_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    number_value: float
    string_value: str
    def __init__(self, number_value: _Optional[float] = ..., string_value: _Optional[str] = ...) -> None: ...

class Feature(_message.Message):
    __slots__ = ("name", "numeric", "categorical")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_FIELD_NUMBER: _ClassVar[int]
    CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    numeric: NumericBinning
    categorical: CategoricalBinning
    def __init__(self, name: _Optional[str] = ..., numeric: _Optional[_Union[NumericBinning, _Mapping]] = ..., categorical: _Optional[_Union[CategoricalBinning, _Mapping]] = ...) -> None: ...

class NumericBinning(_message.Message):
    __slots__ = ("edges", "representatives", "lower", "upper")
    EDGES_FIELD_NUMBER: _ClassVar[int]
    REPRESENTATIVES_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedScalarFieldContainer[float]
    representatives: _containers.RepeatedScalarFieldContainer[float]
    lower: float
    upper: float
    def __init__(self, edges: _Optional[_Iterable[float]] = ..., representatives: _Optional[_Iterable[float]] = ..., lower: _Optional[float] = ..., upper: _Optional[float] = ...) -> None: ...

class CategoricalBinning(_message.Message):
    __slots__ = ("vocabulary", "out_of_vocabulary_bucket")
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_VOCABULARY_BUCKET_FIELD_NUMBER: _ClassVar[int]
    vocabulary: _containers.RepeatedScalarFieldContainer[str]
    out_of_vocabulary_bucket: bool
    def __init__(self, vocabulary: _Optional[_Iterable[str]] = ..., out_of_vocabulary_bucket: _Optional[bool] = ...) -> None: ...

class Signature(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[Feature]
    def __init__(self, features: _Optional[_Iterable[_Union[Feature, _Mapping]]] = ...) -> None: ...

class OutputSpec(_message.Message):
    __slots__ = ("kind", "description")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    kind: OutputKind
    description: str
    def __init__(self, kind: _Optional[_Union[OutputKind, str]] = ..., description: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "description", "signature", "output", "current_version", "previous_version", "create_time", "aliases", "grid_size")
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    GRID_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    signature: Signature
    output: OutputSpec
    current_version: int
    previous_version: int
    create_time: _timestamp_pb2.Timestamp
    aliases: _containers.ScalarMap[str, int]
    grid_size: int
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., signature: _Optional[_Union[Signature, _Mapping]] = ..., output: _Optional[_Union[OutputSpec, _Mapping]] = ..., current_version: _Optional[int] = ..., previous_version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., aliases: _Optional[_Mapping[str, int]] = ..., grid_size: _Optional[int] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("model", "version", "state", "table", "row_count", "creator", "metrics", "create_time", "update_time", "rows_written", "failure_reason", "evaluation_dataset")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_DATASET_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    state: VersionState
    table: str
    row_count: int
    creator: str
    metrics: _containers.ScalarMap[str, float]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    rows_written: int
    failure_reason: str
    evaluation_dataset: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[_Union[VersionState, str]] = ..., table: _Optional[str] = ..., row_count: _Optional[int] = ..., creator: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rows_written: _Optional[int] = ..., failure_reason: _Optional[str] = ..., evaluation_dataset: _Optional[str] = ...) -> None: ...

class Augmentation(_message.Message):
    __slots__ = ("augmentation_id", "better_output", "source", "actor", "reason", "state", "create_time")
    AUGMENTATION_ID_FIELD_NUMBER: _ClassVar[int]
    BETTER_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    augmentation_id: str
    better_output: float
    source: AugmentationSource
    actor: str
    reason: str
    state: AugmentationState
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, augmentation_id: _Optional[str] = ..., better_output: _Optional[float] = ..., source: _Optional[_Union[AugmentationSource, str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., state: _Optional[_Union[AugmentationState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("decision_id", "model", "model_version", "subject", "features", "key", "output", "source", "decide_time", "augmentations")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FeatureValue, _Mapping]] = ...) -> None: ...
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    AUGMENTATIONS_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    model: str
    model_version: int
    subject: str
    features: _containers.MessageMap[str, FeatureValue]
    key: str
    output: float
    source: PredictionSource
    decide_time: _timestamp_pb2.Timestamp
    augmentations: _containers.RepeatedCompositeFieldContainer[Augmentation]
    def __init__(self, decision_id: _Optional[str] = ..., model: _Optional[str] = ..., model_version: _Optional[int] = ..., subject: _Optional[str] = ..., features: _Optional[_Mapping[str, FeatureValue]] = ..., key: _Optional[str] = ..., output: _Optional[float] = ..., source: _Optional[_Union[PredictionSource, str]] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., augmentations: _Optional[_Iterable[_Union[Augmentation, _Mapping]]] = ...) -> None: ...
