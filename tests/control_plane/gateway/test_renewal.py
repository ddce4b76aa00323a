"""Agents renew their certificate over the link at about two thirds of its lifetime."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509
from sqlmodel import col, select

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCertificate
from tests.helpers.factories import make_join_token, make_tenant
from tests.helpers.servers import wait_for
from tests.helpers.stack import AgentProcess, ControlPlane

pytestmark = pytest.mark.slow


@pytest.fixture
def short_lived(sqlite_url: str, tmp_path: Path) -> ControlPlane:
    # 9 s certificates with no backdating: renewal is due 6 s after issue.
    cp = ControlPlane(
        database_url=sqlite_url,
        home=tmp_path / "cp",
        extra_env={"MALLARD_CERT_LIFETIME_SECONDS": "9", "MALLARD_CERT_BACKDATE_SECONDS": "0"},
    )
    cp.prepare()
    cp.start_gateway()
    return cp


def test_agent_renews_before_expiry_and_stays_connected(short_lived: ControlPlane, tmp_path: Path) -> None:
    cp = short_lived
    tenant = make_tenant(cp.database_url, "acme")
    agent = AgentProcess(cp, tmp_path / "agent", join_token=make_join_token(cp.database_url, tenant))
    agent.start()
    agent_id = agent.wait_enrolled()
    first = x509.load_pem_x509_certificate((agent.home / "agent.crt").read_bytes())
    first_key = (agent.home / "agent.key").read_bytes()

    def renewed() -> x509.Certificate | None:
        cert = x509.load_pem_x509_certificate((agent.home / "agent.crt").read_bytes())
        return cert if cert.serial_number != first.serial_number else None

    second = wait_for(renewed, timeout=20, what="a renewed certificate")
    assert isinstance(second, x509.Certificate)
    # Requested at two thirds of the first certificate's 9 s lifetime (issue time + 6 s).
    after = (second.not_valid_before_utc - first.not_valid_before_utc).total_seconds()
    assert 5 <= after < 9, f"renewed {after:.1f}s after the first certificate was issued; expected about 6s"
    assert (agent.home / "agent.key").read_bytes() != first_key  # a fresh key pair each renewal
    assert (agent.home / "agent.key").stat().st_mode & 0o777 == 0o600

    # The agent reconnects on the new certificate (a second stream open at the gateway) ...
    gateway = cp.gateway
    assert gateway is not None
    wait_for(lambda: gateway.output().count(f"agent {agent_id} connected") >= 2, timeout=10, what="reconnect")
    # ... and past the first certificate's expiry it is still connected.
    expiry = first.not_valid_after_utc.timestamp()
    time.sleep(max(0.0, expiry + 0.5 - time.time()))

    def connected() -> bool:
        with session_scope(cp.database_url) as session:
            row = session.get(Agent, agent_id)
            return bool(row and row.connected and row.cert_serial == format(second.serial_number, "x"))

    wait_for(connected, timeout=10, what="agent still connected after the first certificate expired")
    with session_scope(cp.database_url) as session:
        certs = session.exec(select(AgentCertificate).where(col(AgentCertificate.agent_id) == agent_id)).all()
        assert len(certs) >= 2
        # Once the agent connected with the new certificate, the superseded one was revoked.
        old = session.get(AgentCertificate, format(first.serial_number, "x"))
        assert old is not None and old.revoked_at is not None
    assert agent.proc is not None and agent.proc.alive
