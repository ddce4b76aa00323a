"""A variation's routing set: the replicas a request may go to."""

from __future__ import annotations

from dataclasses import dataclass, field

from data_plane_agent.serving.supervisor import Replica


@dataclass
class Route:
    """A variation's routable replicas (least in-flight first, ties in turn)."""

    name: str
    shadow: bool
    weight: int
    replicas: list[Replica] = field(default_factory=list)
    turn: int = 0

    def pick(self) -> Replica:
        replicas = self.replicas
        if len(replicas) == 1:
            return replicas[0]
        self.turn += 1
        start = self.turn % len(replicas)
        best = replicas[start]
        for replica in replicas[start + 1 :] + replicas[:start]:
            if replica.inflight < best.inflight:
                best = replica
        return best
