"""gRPC `mallard.v1.OnlineFeatures` on the data plane's gRPC server (see grpc_server.py, which
checks the JWT before this servicer runs). Register it with `OnlineFeaturesServicer(service).add_to_server`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from grpc import aio

from data_plane_agent.features.service import FeatureService
from shared.errors import InvalidInput, MallardError
from shared.protos.mallard.v1 import features_pb2, features_pb2_grpc

MAX_KEYS = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return (moment - _EPOCH) // timedelta(microseconds=1)


def to_value(value: Any) -> features_pb2.FeatureValue:
    """A Python value as a typed FeatureValue (None: unset)."""
    if value is None:
        return features_pb2.FeatureValue()
    if isinstance(value, bool):
        return features_pb2.FeatureValue(bool_value=value)
    if isinstance(value, int):
        return features_pb2.FeatureValue(int_value=value)
    if isinstance(value, float):
        return features_pb2.FeatureValue(float_value=value)
    if isinstance(value, datetime):
        return features_pb2.FeatureValue(timestamp_micros=_micros(value))
    return features_pb2.FeatureValue(string_value=str(value))


def from_value(value: features_pb2.FeatureValue) -> Any:
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


class OnlineFeaturesServicer(features_pb2_grpc.OnlineFeaturesServicer):
    """Online reads over the agent's FeatureEngine; MallardErrors become their gRPC status."""

    def __init__(self, service: FeatureService) -> None:
        self.service = service

    def add_to_server(self, server: aio.Server) -> None:
        features_pb2_grpc.add_OnlineFeaturesServicer_to_server(self, server)

    def _read(self, request: features_pb2.GetOnlineFeaturesRequest) -> features_pb2.GetOnlineFeaturesResponse:
        engine = self.service.engine
        if not request.feature_set:
            raise InvalidInput("feature_set is required", field="feature_set")
        if not request.keys or len(request.keys) > MAX_KEYS:
            raise InvalidInput(f"keys must hold 1 to {MAX_KEYS} entity keys", field="keys")
        project = self.service.project_of(request.feature_set, request.project or None)
        version = request.version or None
        fs = engine.definition(request.feature_set, version, project=project)
        wanted = list(request.features) or list(fs.feature_types)
        keys = [{name: from_value(v) for name, v in key.columns.items()} for key in request.keys]
        rows = self.service.get_online(fs.name, keys, wanted, fs.version, project=project)
        response = features_pb2.GetOnlineFeaturesResponse(
            feature_set=fs.name, version=fs.version, project=project, features=wanted
        )
        for row in rows:
            stamp = row.get("event_timestamp")
            out = response.rows.add(found=stamp is not None)
            if isinstance(stamp, datetime):
                out.event_timestamp_micros = _micros(stamp)
            out.values.extend(to_value(row.get(name)) for name in wanted)
        return response

    async def GetOnlineFeatures(
        self, request: features_pb2.GetOnlineFeaturesRequest, context: aio.ServicerContext
    ) -> features_pb2.GetOnlineFeaturesResponse:
        try:
            return await asyncio.to_thread(self._read, request)
        except MallardError as exc:
            where = f" ({exc.field})" if exc.field else ""
            await context.abort(exc.grpc_code, exc.message + where)
            raise  # pragma: no cover  (abort raises)
