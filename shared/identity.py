"""SPIFFE-style agent identities carried in the URI SAN of agent certificates."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509

TRUST_DOMAIN = "mallard"
_SPIFFE_RE = re.compile(
    r"^spiffe://(?P<domain>[a-z0-9.-]+)/tenant/(?P<tenant>[A-Za-z0-9_-]+)/agent/(?P<agent>[A-Za-z0-9_-]+)$"
)


@dataclass(frozen=True)
class AgentIdentity:
    """Who an agent certificate says it is: a tenant id and an agent id."""

    tenant_id: str
    agent_id: str

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/tenant/{self.tenant_id}/agent/{self.agent_id}"

    @classmethod
    def parse(cls, uri: str) -> AgentIdentity:
        match = _SPIFFE_RE.match(uri)
        if not match or match["domain"] != TRUST_DOMAIN:
            raise ValueError(f"not a Mallard agent identity: {uri!r}")
        return cls(tenant_id=match["tenant"], agent_id=match["agent"])

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> AgentIdentity:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound as exc:
            raise ValueError("certificate has no subjectAltName") from exc
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        for uri in uris:
            if uri.startswith("spiffe://"):
                return cls.parse(uri)
        raise ValueError("certificate has no spiffe:// URI SAN")
