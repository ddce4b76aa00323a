"""The agent's identity on disk: key (0600), certificate, CA, ids, the JWT verification key."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from shared.identity import AgentIdentity
from shared.keys import write_public, write_secret


@dataclass(frozen=True)
class Credentials:
    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes
    not_before: datetime
    not_after: datetime

    def renew_at(self) -> datetime:
        """About two thirds into the certificate's lifetime."""
        return self.not_before + (self.not_after - self.not_before) * 2 / 3


class AgentHome:
    """Files under the agent's home directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = root / "agent.key"
        self.cert = root / "agent.crt"
        self.ca = root / "ca.crt"
        self.identity_file = root / "identity.json"
        self.jwt_public_key = root / "jwt.pub"
        self.state_db = root / "state.db"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self._finish_interrupted_rotation()

    @property
    def enrolled(self) -> bool:
        return self.identity_file.exists() and self.key.exists() and self.cert.exists()

    def identity(self) -> AgentIdentity:
        data = json.loads(self.identity_file.read_text())
        return AgentIdentity(tenant_id=data["tenant_id"], agent_id=data["agent_id"])

    def save_enrollment(
        self, *, identity: AgentIdentity, key_pem: bytes, cert_pem: bytes, ca_pem: bytes, jwt_public_pem: bytes
    ) -> None:
        write_secret(self.key, key_pem)
        write_public(self.cert, cert_pem)
        write_public(self.ca, ca_pem)
        if jwt_public_pem:
            write_public(self.jwt_public_key, jwt_public_pem)
        # Written last: its presence means the enrollment is complete.
        write_public(
            self.identity_file,
            json.dumps(
                {"tenant_id": identity.tenant_id, "agent_id": identity.agent_id, "spiffe_id": identity.spiffe_id},
                indent=2,
            ).encode(),
        )

    def credentials(self) -> Credentials:
        cert_pem = self.cert.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        return Credentials(
            key_pem=self.key.read_bytes(),
            cert_pem=cert_pem,
            ca_pem=self.ca.read_bytes(),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    def rotate(self, key_pem: bytes, cert_pem: bytes) -> None:
        """Replace key and certificate together; a crash between the two is repaired at start."""
        write_secret(self.root / "agent.key.next", key_pem)
        write_public(self.root / "agent.crt.next", cert_pem)
        self._finish_interrupted_rotation()

    def _finish_interrupted_rotation(self) -> None:
        """Complete a rotation a crash interrupted: the key is renamed first, then the certificate.

        Both `.next` files: nothing was renamed yet. Only the certificate: the key was already
        renamed, so the certificate must follow or the pair would not match. Only the key: the
        certificate never arrived completely; keep the current pair.
        """
        key_next, cert_next = self.root / "agent.key.next", self.root / "agent.crt.next"
        if key_next.exists() and cert_next.exists():
            os.replace(key_next, self.key)
            os.replace(cert_next, self.cert)
        elif cert_next.exists():
            os.replace(cert_next, self.cert)
        else:
            key_next.unlink(missing_ok=True)

    def save_jwt_public_key(self, pem: bytes) -> None:
        if pem and (not self.jwt_public_key.exists() or self.jwt_public_key.read_bytes() != pem):
            write_public(self.jwt_public_key, pem)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)
