"""An optional record of every message crossing the agent link (MALLARD_WIRE_LOG).

The product promise is that only metadata crosses the boundary; with the tap on, every
message in both directions is appended as one JSON line so that tests, and auditors, can
inspect exactly what crossed. Secrets (join tokens) are redacted before writing.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

REDACTED_FIELDS = {"joinToken"}


class WireTap:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def record(self, direction: str, rpc: str, agent_id: str, message: Message) -> None:
        if self.path is None:
            return
        body = MessageToDict(message, preserving_proto_field_name=False)
        for name in REDACTED_FIELDS & body.keys():
            body[name] = "<redacted>"
        line = json.dumps({"direction": direction, "rpc": rpc, "agent_id": agent_id, "message": body}, sort_keys=True)
        with self._lock, open(self.path, "a") as fh:
            fh.write(line + "\n")
