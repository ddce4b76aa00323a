"""An enrolled agent home whose data-plane API trusts a fresh JWT key, as the control plane's would."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from data_plane_agent.link.identity import AgentHome


def trusting_home(root: Path, tenant_id: str, agent_id: str = "agt_1") -> tuple[AgentHome, bytes]:
    """Prepare an agent home at `root` enrolled in `tenant_id` that verifies JWTs with a new Ed25519 key.

    Returns the home and the private key (PEM) to sign tokens with (`shared.jwt_tokens.sign`).
    """
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    home = AgentHome(root)
    home.prepare()
    home.identity_file.write_text(json.dumps({"tenant_id": tenant_id, "agent_id": agent_id}))
    home.jwt_public_key.write_bytes(public)
    return home, private
