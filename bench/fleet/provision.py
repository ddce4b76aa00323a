"""Give N simulated agents real identities without N enrollments.

Enrollment costs a join-token redemption, a CSR signature and a transaction per agent; the
benchmark is about the link, so it signs certificates with the control plane's own CA and
inserts the Agent and AgentCertificate rows in one transaction. The gateway accepts these
exactly as enrolled agents: it checks the chain, the SPIFFE id, the recorded serial and that
neither the agent nor the certificate is revoked.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCertificate, Tenant
from control_plane.pki import CertificateAuthority
from shared.identity import AgentIdentity
from shared.keys import build_csr, generate_private_key, private_key_pem

CERT_LIFETIME = timedelta(hours=6)


@dataclass(frozen=True)
class SimulatedAgent:
    """What one simulated agent needs to open its link: its id and its key pair."""

    agent_id: str
    key_pem: str
    cert_pem: str


def provision_fleet(database_url: str, pki_dir: Path, count: int) -> tuple[str, list[SimulatedAgent]]:
    """Create a tenant with `count` agents, each holding a recorded client certificate."""
    ca = CertificateAuthority.load_or_create(pki_dir)
    tenant = Tenant(name=f"bench-{secrets.token_hex(4)}")
    agents: list[SimulatedAgent] = []
    rows: list[Agent | AgentCertificate] = []
    for index in range(count):
        agent = Agent(tenant_id=tenant.id, name=f"bench-{index}", hostname=f"bench-host-{index}")
        key = generate_private_key()
        signed = ca.sign_agent_csr(build_csr(key), AgentIdentity(tenant.id, agent.id), lifetime=CERT_LIFETIME)
        agent.cert_serial = signed.serial
        agent.cert_expires_at = signed.not_after
        rows.append(agent)
        rows.append(
            AgentCertificate(
                serial=signed.serial,
                agent_id=agent.id,
                tenant_id=tenant.id,
                not_before=signed.not_before,
                not_after=signed.not_after,
            )
        )
        agents.append(SimulatedAgent(agent.id, private_key_pem(key).decode(), signed.pem.decode()))
    with session_scope(database_url) as session:
        session.add(tenant)
        session.flush()
        agents_first = [r for r in rows if isinstance(r, Agent)]
        session.add_all(agents_first)
        session.flush()
        session.add_all([r for r in rows if isinstance(r, AgentCertificate)])
        session.commit()
    return tenant.id, agents


def write_fleet_file(path: Path, agents: list[SimulatedAgent]) -> None:
    """The simulated-agent processes read their identities from this file (0600: it holds keys)."""
    path.touch(mode=0o600)
    path.write_text(json.dumps([asdict(a) for a in agents]))


def read_fleet_file(path: Path) -> list[SimulatedAgent]:
    return [SimulatedAgent(**item) for item in json.loads(path.read_text())]
