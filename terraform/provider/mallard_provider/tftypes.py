"""Terraform types the `tf` framework lacks: objects, for the data sources' lists of records."""

from __future__ import annotations

import json
import re
from typing import Any

from tf.types import TfType

_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Object(TfType):
    """An object with fixed, typed attributes; maps to a Python dict."""

    def __init__(self, attributes: dict[str, TfType]) -> None:
        self.attributes = attributes

    def encode(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {name: kind.encode(value.get(name)) for name, kind in self.attributes.items()}

    def decode(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {name: kind.decode(value.get(name)) for name, kind in self.attributes.items()}

    def tf_type(self) -> bytes:
        fields = {name: json.loads(kind.tf_type()) for name, kind in self.attributes.items()}
        return json.dumps(["object", fields], separators=(",", ":")).encode()


def parse_duration(text: str) -> int:
    """Seconds in a duration such as "90s", "15m", "1h30m" or "7d"; ValueError otherwise."""
    cleaned = text.strip()
    if not cleaned or _DURATION_PART.sub("", cleaned):
        raise ValueError(f"{text!r} is not a duration: write a number with a unit s, m, h or d, such as 15m or 1h30m")
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(cleaned))
