from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "event", "command_ack", "renew")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ACK_FIELD_NUMBER: _ClassVar[int]
    RENEW_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    event: Event
    command_ack: CommandAck
    renew: RenewRequest
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ..., command_ack: _Optional[_Union[CommandAck, _Mapping]] = ..., renew: _Optional[_Union[RenewRequest, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("version", "capabilities", "last_acked_command_id", "data_plane_url", "hostname")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    LAST_ACKED_COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_PLANE_URL_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    last_acked_command_id: str
    data_plane_url: str
    hostname: str
    def __init__(self, version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., last_acked_command_id: _Optional[str] = ..., data_plane_url: _Optional[str] = ..., hostname: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at_unix_ms",)
    SENT_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    sent_at_unix_ms: int
    def __init__(self, sent_at_unix_ms: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "type", "payload_json", "occurred_at_unix_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    type: str
    payload_json: str
    occurred_at_unix_ms: int
    def __init__(self, seq: _Optional[int] = ..., type: _Optional[str] = ..., payload_json: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ...) -> None: ...

class CommandAck(_message.Message):
    __slots__ = ("command_id", "ok", "result_json", "error")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    ok: bool
    result_json: str
    error: str
    def __init__(self, command_id: _Optional[str] = ..., ok: _Optional[bool] = ..., result_json: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class ControlMessage(_message.Message):
    __slots__ = ("welcome", "command", "event_ack", "intervals", "renewed", "command_ack_receipt")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    EVENT_ACK_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    RENEWED_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ACK_RECEIPT_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    command: Command
    event_ack: EventAck
    intervals: Intervals
    renewed: RenewResponse
    command_ack_receipt: CommandAckReceipt
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ..., event_ack: _Optional[_Union[EventAck, _Mapping]] = ..., intervals: _Optional[_Union[Intervals, _Mapping]] = ..., renewed: _Optional[_Union[RenewResponse, _Mapping]] = ..., command_ack_receipt: _Optional[_Union[CommandAckReceipt, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("agent_id", "tenant_id", "intervals", "last_event_seq", "jwt_public_key_pem")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    JWT_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    tenant_id: str
    intervals: Intervals
    last_event_seq: int
    jwt_public_key_pem: bytes
    def __init__(self, agent_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., intervals: _Optional[_Union[Intervals, _Mapping]] = ..., last_event_seq: _Optional[int] = ..., jwt_public_key_pem: _Optional[bytes] = ...) -> None: ...

class Intervals(_message.Message):
    __slots__ = ("heartbeat_ms",)
    HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    heartbeat_ms: int
    def __init__(self, heartbeat_ms: _Optional[int] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("id", "type", "spec_json", "created_at_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    spec_json: str
    created_at_unix_ms: int
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., spec_json: _Optional[str] = ..., created_at_unix_ms: _Optional[int] = ...) -> None: ...

class EventAck(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class CommandAckReceipt(_message.Message):
    __slots__ = ("command_id",)
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    def __init__(self, command_id: _Optional[str] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_chain_pem", "not_after_unix")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_UNIX_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    ca_chain_pem: bytes
    not_after_unix: int
    def __init__(self, certificate_pem: _Optional[bytes] = ..., ca_chain_pem: _Optional[bytes] = ..., not_after_unix: _Optional[int] = ...) -> None: ...
