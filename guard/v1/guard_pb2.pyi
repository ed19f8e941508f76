from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_USER: _ClassVar[Source]
    SOURCE_LLM: _ClassVar[Source]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_ALLOW: _ClassVar[Action]
    ACTION_FLAG: _ClassVar[Action]
    ACTION_BLOCK: _ClassVar[Action]
SOURCE_UNSPECIFIED: Source
SOURCE_USER: Source
SOURCE_LLM: Source
ACTION_UNSPECIFIED: Action
ACTION_ALLOW: Action
ACTION_FLAG: Action
ACTION_BLOCK: Action

class CheckRequest(_message.Message):
    __slots__ = ("text", "source", "policy", "tenant", "request_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    source: Source
    policy: str
    tenant: str
    request_id: str
    def __init__(self, text: _Optional[str] = ..., source: _Optional[_Union[Source, str]] = ..., policy: _Optional[str] = ..., tenant: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("decision", "request_id", "timing")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    request_id: str
    timing: Timing
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., request_id: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ...) -> None: ...

class CategoryScore(_message.Message):
    __slots__ = ("category", "score", "threshold", "triggered", "action", "block_threshold")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TRIGGERED_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BLOCK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    category: str
    score: float
    threshold: float
    triggered: bool
    action: Action
    block_threshold: float
    def __init__(self, category: _Optional[str] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., triggered: _Optional[bool] = ..., action: _Optional[_Union[Action, str]] = ..., block_threshold: _Optional[float] = ...) -> None: ...

class Intent(_message.Message):
    __slots__ = ("route", "score")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    route: str
    score: float
    def __init__(self, route: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("action", "categories", "intent", "reasons", "policy", "policy_version", "model", "trace_id", "degraded", "rule")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    action: Action
    categories: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    intent: Intent
    reasons: _containers.RepeatedScalarFieldContainer[str]
    policy: str
    policy_version: str
    model: str
    trace_id: str
    degraded: bool
    rule: str
    def __init__(self, action: _Optional[_Union[Action, str]] = ..., categories: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., intent: _Optional[_Union[Intent, _Mapping]] = ..., reasons: _Optional[_Iterable[str]] = ..., policy: _Optional[str] = ..., policy_version: _Optional[str] = ..., model: _Optional[str] = ..., trace_id: _Optional[str] = ..., degraded: _Optional[bool] = ..., rule: _Optional[str] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queue_ms", "tokenize_ms", "inference_ms", "total_ms", "batch_size")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZE_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    tokenize_ms: float
    inference_ms: float
    total_ms: float
    batch_size: int
    def __init__(self, queue_ms: _Optional[float] = ..., tokenize_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...

class CheckBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CheckRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[CheckRequest, _Mapping]]] = ...) -> None: ...

class CheckBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[CheckResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[CheckResponse, _Mapping]]] = ...) -> None: ...

class StreamOpen(_message.Message):
    __slots__ = ("source", "policy", "tenant", "request_id", "prompt")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    source: Source
    policy: str
    tenant: str
    request_id: str
    prompt: str
    def __init__(self, source: _Optional[_Union[Source, str]] = ..., policy: _Optional[str] = ..., tenant: _Optional[str] = ..., request_id: _Optional[str] = ..., prompt: _Optional[str] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("open", "delta", "end")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    open: StreamOpen
    delta: str
    end: bool
    def __init__(self, open: _Optional[_Union[StreamOpen, _Mapping]] = ..., delta: _Optional[str] = ..., end: _Optional[bool] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("released_until", "decision", "final")
    RELEASED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    released_until: int
    decision: Decision
    final: bool
    def __init__(self, released_until: _Optional[int] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ..., final: _Optional[bool] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyInfo(_message.Message):
    __slots__ = ("name", "version", "categories")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("model", "model_path", "labels", "multi_label", "device", "dtype", "max_window_tokens", "policies", "default_policy", "max_text_chars", "max_batch_items", "version", "backend", "quantization", "execution")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MULTI_LABEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_WINDOW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ITEMS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    model: str
    model_path: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    multi_label: bool
    device: str
    dtype: str
    max_window_tokens: int
    policies: _containers.RepeatedCompositeFieldContainer[PolicyInfo]
    default_policy: str
    max_text_chars: int
    max_batch_items: int
    version: str
    backend: str
    quantization: str
    execution: str
    def __init__(self, model: _Optional[str] = ..., model_path: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., multi_label: _Optional[bool] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., max_window_tokens: _Optional[int] = ..., policies: _Optional[_Iterable[_Union[PolicyInfo, _Mapping]]] = ..., default_policy: _Optional[str] = ..., max_text_chars: _Optional[int] = ..., max_batch_items: _Optional[int] = ..., version: _Optional[str] = ..., backend: _Optional[str] = ..., quantization: _Optional[str] = ..., execution: _Optional[str] = ...) -> None: ...
