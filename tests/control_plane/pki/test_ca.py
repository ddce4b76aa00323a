from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from control_plane.pki import CertificateAuthority
from shared.errors import InvalidInput
from shared.identity import AgentIdentity
from shared.keys import build_csr, generate_private_key


def test_ca_key_is_private_and_reloaded(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    assert (tmp_path / "pki" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "pki").stat().st_mode & 0o777 == 0o700
    again = CertificateAuthority.load_or_create(tmp_path / "pki")
    assert again.cert.serial_number == ca.cert.serial_number
    assert "PRIVATE" not in repr(ca) and "ca.key" not in repr(ca)


def test_agent_certificate_identity_comes_from_the_caller_not_the_csr(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    key = generate_private_key()
    csr = build_csr(key, common_name="i-claim-to-be-admin")
    now = datetime.now(UTC)
    signed = ca.sign_agent_csr(
        csr, AgentIdentity("ten_a", "agt_b"), lifetime=timedelta(hours=24), backdate=timedelta(minutes=5), now=now
    )
    cert = x509.load_pem_x509_certificate(signed.pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "agt_b"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://mallard/tenant/ten_a/agent/agt_b"]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_before_utc == (now - timedelta(minutes=5)).replace(microsecond=0)
    assert cert.not_valid_after_utc == (now + timedelta(hours=24)).replace(microsecond=0)
    assert format(cert.serial_number, "x") == signed.serial
    cert.verify_directly_issued_by(ca.cert)


def _csr_with(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("csr", "message"),
    [
        (b"", "empty"),
        (b"hello", "not a valid PEM CSR"),
        (_csr_with(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "at least 2048"),
        (_csr_with(ec.generate_private_key(ec.SECP256K1())), "unsupported EC curve"),
    ],
)
def test_bad_csrs_are_refused_with_a_reason(tmp_path: Path, csr: bytes, message: str) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    with pytest.raises(InvalidInput, match=message):
        ca.sign_agent_csr(csr, AgentIdentity("ten_a", "agt_b"), lifetime=timedelta(hours=1))


def test_csr_whose_signature_does_not_verify_is_refused(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    pem = build_csr(generate_private_key())
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # flip bits inside the signature
    import base64

    tampered = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE REQUEST-----\n"
    )
    with pytest.raises(InvalidInput):
        ca.sign_agent_csr(tampered, AgentIdentity("ten_a", "agt_b"), lifetime=timedelta(hours=1))


def test_gateway_server_certificate_names(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    key_path, cert_path = ca.ensure_server_certificate(["localhost", "127.0.0.1", "::1"])
    assert key_path.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
