from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("join_token", "csr_pem", "agent_version", "hostname", "expected_tenant_id")
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    join_token: str
    csr_pem: bytes
    agent_version: str
    hostname: str
    expected_tenant_id: str
    def __init__(self, join_token: _Optional[str] = ..., csr_pem: _Optional[bytes] = ..., agent_version: _Optional[str] = ..., hostname: _Optional[str] = ..., expected_tenant_id: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("agent_id", "tenant_id", "spiffe_id", "certificate_pem", "ca_chain_pem", "not_after_unix", "jwt_public_key_pem")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_UNIX_FIELD_NUMBER: _ClassVar[int]
    JWT_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    tenant_id: str
    spiffe_id: str
    certificate_pem: bytes
    ca_chain_pem: bytes
    not_after_unix: int
    jwt_public_key_pem: bytes
    def __init__(self, agent_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., spiffe_id: _Optional[str] = ..., certificate_pem: _Optional[bytes] = ..., ca_chain_pem: _Optional[bytes] = ..., not_after_unix: _Optional[int] = ..., jwt_public_key_pem: _Optional[bytes] = ...) -> None: ...
