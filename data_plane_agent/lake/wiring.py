"""The lake, its aggregates and its SQL side, from AgentSettings (used by the daemon)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from data_plane_agent.lake.compaction import Compactor
from data_plane_agent.lake.metrics import MinuteMetrics
from data_plane_agent.lake.query import LakeQuery
from data_plane_agent.lake.writer import InferenceLake
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.settings import AgentSettings
from data_plane_agent.storage import ObjectStore
from shared.serving import METRICS_EVENT, MetricsPayload


def lake_from_settings(
    settings: AgentSettings, *, home: Path, store: ObjectStore, outbox: Outbox, notify: Callable[[], None]
) -> tuple[InferenceLake, LakeQuery]:
    """A started lake whose per-minute aggregates go out as `serving.metrics` events, and its query side."""

    def emit(payload: MetricsPayload) -> None:
        body: dict[str, Any] = dict(payload)
        outbox.append(METRICS_EVENT, body)
        notify()

    lake = InferenceLake(
        store,
        home / "lake" / "spool",
        flush_interval=settings.lake_flush_interval_seconds,
        flush_rows=settings.lake_flush_rows,
        fsync_interval=settings.lake_fsync_interval_seconds,
        metrics=MinuteMetrics(emit),
        compactor=Compactor(store, home / "lake" / "compaction"),
    )
    lake.start()
    query = LakeQuery(store, lake, max_rows=settings.lake_query_max_rows, timeout_s=settings.lake_query_timeout_seconds)
    return lake, query
