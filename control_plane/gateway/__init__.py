"""The gRPC gateway agents dial out to: enrollment and the mTLS agent link. Runs as its own process."""

from control_plane.gateway.server import GatewayServer

__all__ = ["GatewayServer"]
