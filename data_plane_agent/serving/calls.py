"""One prediction call to a variation's replicas, with the replica protocol's errors mapped to ours.

A replica that cannot be reached (it crashed, or closed the connection before answering) is
tried once more on another routable replica of the same variation: a prediction has no side
effects, so only requests that found no replica at all fail.
"""

from __future__ import annotations

import asyncio

import pyarrow as pa

from data_plane_agent.serving.client import ReplicaUnreachable, error_from_answer
from data_plane_agent.serving.routing import Route
from data_plane_agent.serving.supervisor import Replica
from mallard.serving.wire import decode_table
from shared.errors import InvalidInput, ModelFailed, PredictionTimeout, Unavailable


async def call_route(route: Route, body: bytes, timeout: float) -> tuple[pa.Table, str]:
    """(outputs, build id of the replica that answered) for an Arrow IPC request body."""
    tried: Replica | None = None
    unreachable: ReplicaUnreachable | None = None
    try:
        async with asyncio.timeout(timeout):
            for _ in range(2):
                replica = route.pick() if tried is None else _other(route, tried)
                if replica is not None and not replica.routable:  # it left routing a moment ago
                    replica = _other(route, replica)
                if replica is None or replica.client is None or not replica.routable:
                    break
                replica.inflight += 1
                replica.started += 1
                try:
                    status, answer = await replica.client.request("POST", "/predict", body)
                except ReplicaUnreachable as exc:
                    tried, unreachable = replica, exc
                    continue
                finally:
                    replica.inflight -= 1
                if status == 200:
                    return decode_table(answer), replica.build_id
                raise _mapped(status, answer, route.name)
    except TimeoutError:
        raise PredictionTimeout(
            f"variation {route.name!r} did not answer within {timeout:g}s", details={"timeout_s": timeout}
        ) from None
    reason = f": {unreachable}" if unreachable is not None else ""
    raise Unavailable(f"no replica of variation {route.name!r} could be reached{reason}")


def _other(route: Route, tried: Replica) -> Replica | None:
    return next((r for r in route.replicas if r is not tried and r.routable), None)


def _mapped(status: int, answer: bytes, variation: str) -> Exception:
    error = error_from_answer(status, answer)
    if status == 400:
        return InvalidInput(f"the model could not read the input: {error.message}")
    if status == 503:
        return Unavailable(f"a replica of variation {variation!r} is not ready: {error.message}")
    return ModelFailed(error.message or f"the model server answered {status}", details={"variation": variation})
