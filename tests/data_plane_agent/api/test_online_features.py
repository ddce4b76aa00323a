"""The online-features answer encoder writes what `json` would: orjson when that is the same, `json`
for what orjson writes differently (NaN, Infinity) or refuses (integers beyond 64 bits)."""

from __future__ import annotations

import json
import math

from data_plane_agent.api.online_features import _dumps


def test_answers_decode_to_the_values_read() -> None:
    result = {
        "feature_set": "s",
        "version": 1,
        "project": "p",
        "rows": [
            {
                "id": 7,
                "x": 0.1,
                "y": 1e-05,
                "n": None,
                "b": True,
                "s": "é",
                "event_timestamp": "2026-11-27T00:00:00+00:00",
            }
        ],
    }
    assert json.loads(_dumps(result)) == result


def test_non_finite_values_and_huge_integers_are_written_as_json_writes_them() -> None:
    for value in (math.nan, math.inf, -math.inf, 2**70):
        result = {"rows": [{"id": 1, "x": value}]}
        assert _dumps(result) == json.dumps(result, separators=(",", ":")).encode()
