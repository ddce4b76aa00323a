"""The control plane's certificate authority: agent certificates, the gateway's server cert, JWT keys."""

from control_plane.pki.ca import CertificateAuthority, SignedCertificate

__all__ = ["CertificateAuthority", "SignedCertificate"]
