"""Every message that crosses the agent link is metadata (ARCHITECTURE.md, "What crosses the boundary").

The gateway's wire tap records each message in both directions; this test drives enrollment,
heartbeats, events, commands and a certificate renewal, then inspects every recorded message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.servers import wait_for
from tests.helpers.stack import AgentProcess, ControlPlane

pytestmark = pytest.mark.slow

ALLOWED = {
    ("up", "Enroll"): {"csrPem", "agentVersion", "hostname", "joinToken", "expectedTenantId"},
    ("down", "Enroll"): {
        "agentId",
        "tenantId",
        "spiffeId",
        "certificatePem",
        "caChainPem",
        "notAfterUnix",
        "jwtPublicKeyPem",
    },
    ("up", "Connect"): {"hello", "heartbeat", "event", "commandAck", "renew"},
    ("down", "Connect"): {"welcome", "command", "eventAck", "commandAckReceipt", "renewed", "intervals"},
}
EVENT_PAYLOAD_KEYS = {"agent.started": {"run_id"}, "command.started": {"command_id", "type"}}
RESULT_KEYS = {
    "describe": {"agent_id", "tenant_id", "version", "capabilities", "data_plane_url", "uptime_seconds", "host"},
    "ping": {"pong", "agent_time_unix_ms"},
}


def strings(value: Any) -> list[str]:
    """Every string in a message, plus the decoded text of base64 (protobuf bytes) fields."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    if isinstance(value, str):
        out = [value]
        with contextlib.suppress(binascii.Error, ValueError):
            out.append(base64.b64decode(value, validate=True).decode("utf-8", "replace"))
        return out
    return []


def test_only_metadata_crosses_the_link(sqlite_url: str, tmp_path: Path) -> None:
    wire = tmp_path / "wire.jsonl"
    cp = ControlPlane(
        database_url=sqlite_url,
        home=tmp_path / "cp",
        extra_env={
            "MALLARD_WIRE_LOG": str(wire),
            "MALLARD_CERT_LIFETIME_SECONDS": "6",
            "MALLARD_CERT_BACKDATE_SECONDS": "0",
        },
    )
    cp.prepare()
    cp.start_api()
    cp.start_gateway()
    cp.bootstrap()
    with cp.client() as api:
        token = api.post("/join-tokens", json={"name": "edge", "ttl_seconds": 600}).json()["token"]
        agent = AgentProcess(cp, tmp_path / "agent", join_token=token)
        agent.start()
        agent_id = agent.wait_enrolled()
        first_key = (agent.home / "agent.key").read_text()
        wait_for(lambda: api.get(f"/agents/{agent_id}").json()["status"] == "online", timeout=20, what="online")
        assert api.post(f"/agents/{agent_id}/describe").json()["state"] == "succeeded"
        ping = api.post(f"/agents/{agent_id}/commands", json={"type": "ping", "spec": {}, "wait_seconds": 10})
        assert ping.json()["state"] == "succeeded", ping.text
        wait_for(lambda: (agent.home / "agent.key").read_text() != first_key, timeout=15, what="renewal")
        wait_for(lambda: '"renewed"' in wire.read_text(), timeout=10, what="renewal on the wire")
    assert agent.proc is not None
    agent.proc.terminate()
    cp.stop()

    records = [json.loads(line) for line in wire.read_text().splitlines()]
    kinds = {(r["direction"], r["rpc"], next(iter(r["message"]), "")) for r in records}
    for needed in ("hello", "heartbeat", "event", "commandAck", "renew"):
        assert ("up", "Connect", needed) in kinds, needed
    for needed in ("welcome", "command", "eventAck", "renewed"):
        assert ("down", "Connect", needed) in kinds, needed

    private_keys = [first_key, (agent.home / "agent.key").read_text()]
    command_types: dict[str, str] = {}
    for record in records:
        message = record["message"]
        allowed = ALLOWED[(record["direction"], record["rpc"])]
        assert set(message) <= allowed, f"unexpected field(s) on the wire: {set(message) - allowed}"
        text = "\n".join(strings(message))
        assert "PRIVATE KEY" not in text
        assert not any(key.strip() in text for key in private_keys)
        if record["rpc"] == "Enroll" and record["direction"] == "up":
            assert message["joinToken"] == "<redacted>"  # the tap itself never stores the secret
        if "event" in message:
            event = message["event"]
            payload = json.loads(event.get("payloadJson", "{}"))
            assert event["type"] in EVENT_PAYLOAD_KEYS, event["type"]
            assert set(payload) <= EVENT_PAYLOAD_KEYS[event["type"]]
        if "command" in message:
            command_types[message["command"]["id"]] = message["command"]["type"]
        if "commandAck" in message:
            ack = message["commandAck"]
            result = json.loads(ack.get("resultJson") or "{}")
            assert set(result) <= RESULT_KEYS[command_types[ack["commandId"]]]
