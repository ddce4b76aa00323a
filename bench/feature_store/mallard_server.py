"""Ours over HTTP: the agent's data-plane REST app (`data_plane_agent.api.app.create_app` with the
feature service) alone under uvicorn, configured as the agent daemon runs it, on the benchmark's
home (the one `mallard_driver.py` applied and materialized). The agent's link, builds and serving
are left out: they take no part in `POST /v1/features/online`.

    python bench/feature_store/mallard_server.py CONFIG.json   # {"home", "port", "token_file"}

Tokens are verified as on a real agent (ed25519 JWT, offline); the key pair is made here and a
token for the load generator is written to `token_file`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from data_plane_agent.api.app import create_app
from data_plane_agent.features import FeatureEngine, open_online_store
from data_plane_agent.features.service import FeatureService
from data_plane_agent.link.client import LinkState
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore
from shared.jwt_tokens import sign

TENANT = "bench"


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    root = Path(config["home"])
    home = AgentHome(root)
    home.prepare()
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    home.identity_file.write_text(json.dumps({"tenant_id": TENANT, "agent_id": "agt_bench"}))
    home.jwt_public_key.write_bytes(public)
    token = sign(private, subject="usr_bench", tenant_id=TENANT, role="viewer", ttl_seconds=24 * 3600)
    Path(config["token_file"]).write_text(token)

    store = LocalObjectStore(root / "store")
    online = open_online_store("", default_path=root / "features" / "online.sqlite")
    engine = FeatureEngine(root, store, online, TENANT)
    outbox = Outbox(root / "bench-outbox.db")
    service = FeatureService(engine, outbox=outbox, schedule_interval_seconds=3600)
    service.start()
    app = create_app(home, LinkState(), store=store, features=service)
    try:
        uvicorn.run(app, host="127.0.0.1", port=config["port"], log_level="warning", lifespan="off")
    finally:
        service.shutdown()
        engine.close()
        outbox.close()


if __name__ == "__main__":
    main()
