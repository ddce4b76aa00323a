"""A file-backed CA. Keys are written 0600 and never logged or returned by any API."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.errors import InvalidInput
from shared.identity import AgentIdentity
from shared.keys import generate_private_key, private_key_pem, write_public, write_secret

CA_LIFETIME = timedelta(days=3650)
SERVER_LIFETIME = timedelta(days=365)
MAX_CSR_BYTES = 16 * 1024


@dataclass(frozen=True)
class SignedCertificate:
    """A certificate the CA issued, with what the database records about it."""

    pem: bytes
    serial: str
    not_before: datetime
    not_after: datetime


def _serial_hex(serial: int) -> str:
    return format(serial, "x")


class CertificateAuthority:
    """Root CA kept in `directory` (ca.key 0600, ca.crt), plus the gateway and JWT keys."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        self.directory = directory
        self._key = key
        self.cert = cert

    # ---- loading -------------------------------------------------------------------------

    @classmethod
    def load_or_create(cls, directory: Path, *, common_name: str = "Mallard control plane CA") -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        key_path, cert_path = directory / "ca.key", directory / "ca.crt"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(directory, key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        key = generate_private_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_secret(key_path, private_key_pem(key))
        write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, cert)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.crt"

    # ---- issuing -------------------------------------------------------------------------

    def _builder(
        self, subject_cn: str, public_key: object, not_before: datetime, not_after: datetime
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )

    def sign_agent_csr(
        self,
        csr_pem: bytes,
        identity: AgentIdentity,
        *,
        lifetime: timedelta,
        backdate: timedelta = timedelta(minutes=5),
        now: datetime | None = None,
    ) -> SignedCertificate:
        """Sign a client certificate for `identity`. Only the CSR's public key is used."""
        public_key = parse_csr_public_key(csr_pem)
        now = now or datetime.now(UTC)
        not_before, not_after = now - backdate, now + lifetime
        builder = (
            self._builder(identity.agent_id, public_key, not_before, not_after)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.spiffe_id)]), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        cert = builder.sign(self._key, hashes.SHA256())
        return SignedCertificate(
            pem=cert.public_bytes(serialization.Encoding.PEM),
            serial=_serial_hex(cert.serial_number),
            not_before=not_before,
            not_after=not_after,
        )

    def ensure_server_certificate(self, names: list[str]) -> tuple[Path, Path]:
        """Issue (once) the gateway's TLS server certificate for the given DNS names / IPs."""
        key_path, cert_path = self.directory / "gateway.key", self.directory / "gateway.crt"
        if key_path.exists() and cert_path.exists():
            existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if existing.not_valid_after_utc > datetime.now(UTC) + timedelta(days=7):
                return key_path, cert_path
        key = generate_private_key()
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        now = datetime.now(UTC)
        cert = (
            self._builder(
                names[0] if names else "mallard-gateway",
                key.public_key(),
                now - timedelta(minutes=5),
                now + SERVER_LIFETIME,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        write_secret(key_path, private_key_pem(key))
        write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return key_path, cert_path

    def ensure_jwt_keys(self) -> tuple[bytes, bytes]:
        """The Ed25519 key pair that signs data-plane JWTs: (private PEM, public PEM)."""
        priv_path, pub_path = self.directory / "jwt.key", self.directory / "jwt.pub"
        if priv_path.exists() and pub_path.exists():
            return priv_path.read_bytes(), pub_path.read_bytes()
        key = ed25519.Ed25519PrivateKey.generate()
        priv = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        write_secret(priv_path, priv)
        write_public(pub_path, pub)
        return priv, pub

    def __repr__(self) -> str:  # never show key material
        return (
            f"CertificateAuthority(directory={str(self.directory)!r}, subject={self.cert.subject.rfc4514_string()!r})"
        )


def parse_csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """Validate a CSR (format, self-signature, key type and size) and return its public key."""
    if not csr_pem:
        raise InvalidInput("certificate signing request is empty", field="csr_pem")
    if len(csr_pem) > MAX_CSR_BYTES:
        raise InvalidInput(f"certificate signing request is larger than {MAX_CSR_BYTES} bytes", field="csr_pem")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise InvalidInput("certificate signing request is not a valid PEM CSR", field="csr_pem") from exc
    if not csr.is_signature_valid:
        raise InvalidInput("certificate signing request signature does not verify", field="csr_pem")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise InvalidInput(f"unsupported EC curve {key.curve.name}; use P-256 or P-384", field="csr_pem")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InvalidInput("RSA keys must be at least 2048 bits", field="csr_pem")
        return key
    raise InvalidInput("unsupported key type in CSR; use EC P-256 or RSA", field="csr_pem")
