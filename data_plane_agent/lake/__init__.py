"""The inference lake: every prediction as a row of Parquet in the data-plane store, queryable with SQL.

`InferenceLake` is the buffered, crash-safe writer (the serving engine's recorder),
`MinuteMetrics` the per-minute aggregates sent to the control plane, `LakeQuery` the SQL side;
`table.py` documents the columns of the `predictions` table.
"""

from data_plane_agent.lake.metrics import MinuteMetrics
from data_plane_agent.lake.query import LakeQuery, QueryResult, QueryTimeout
from data_plane_agent.lake.records import PredictionRecord
from data_plane_agent.lake.writer import InferenceLake

__all__ = ["InferenceLake", "LakeQuery", "MinuteMetrics", "PredictionRecord", "QueryResult", "QueryTimeout"]
