from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureValue(_message.Message):
    __slots__ = ("int_value", "float_value", "string_value", "bool_value", "timestamp_micros")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MICROS_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    string_value: str
    bool_value: bool
    timestamp_micros: int
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ..., timestamp_micros: _Optional[int] = ...) -> None: ...

class EntityKey(_message.Message):
    __slots__ = ("columns",)
    class ColumnsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FeatureValue, _Mapping]] = ...) -> None: ...
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.MessageMap[str, FeatureValue]
    def __init__(self, columns: _Optional[_Mapping[str, FeatureValue]] = ...) -> None: ...

class GetOnlineFeaturesRequest(_message.Message):
    __slots__ = ("feature_set", "version", "project", "keys", "features")
    FEATURE_SET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    feature_set: str
    version: int
    project: str
    keys: _containers.RepeatedCompositeFieldContainer[EntityKey]
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, feature_set: _Optional[str] = ..., version: _Optional[int] = ..., project: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[EntityKey, _Mapping]]] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class FeatureRow(_message.Message):
    __slots__ = ("values", "event_timestamp_micros", "found")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIMESTAMP_MICROS_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[FeatureValue]
    event_timestamp_micros: int
    found: bool
    def __init__(self, values: _Optional[_Iterable[_Union[FeatureValue, _Mapping]]] = ..., event_timestamp_micros: _Optional[int] = ..., found: _Optional[bool] = ...) -> None: ...

class GetOnlineFeaturesResponse(_message.Message):
    __slots__ = ("feature_set", "version", "project", "features", "rows")
    FEATURE_SET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    feature_set: str
    version: int
    project: str
    features: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[FeatureRow]
    def __init__(self, feature_set: _Optional[str] = ..., version: _Optional[int] = ..., project: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[FeatureRow, _Mapping]]] = ...) -> None: ...
