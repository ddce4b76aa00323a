"""Serving: model replicas (local processes or Docker containers) and the engine that routes to them."""

from data_plane_agent.serving.engine import PredictionOutcome, ServingEngine

__all__ = ["PredictionOutcome", "ServingEngine"]
