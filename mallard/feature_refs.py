"""`FeatureRef`: a model input that comes from the feature store, looked up by entity key.

```python
mallard.ModelSchema(
    inputs=[mallard.Field("driver_id", "int"), mallard.Field("distance_km", "float")],
    outputs=[mallard.Field("eta_minutes", "float")],
    features=[mallard.FeatureRef("driver_stats:trips_today"), mallard.FeatureRef("driver_stats:rating")],
)
```

The prediction gateway looks the features up in the online store by the entity key columns of
each request row and passes the enriched frame to `predict` (see `mallard.enrichment`). Pure
Python: importable in a model's build environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_REF = re.compile(r"^(?P<set>[A-Za-z_][A-Za-z0-9_]*)(@v?(?P<version>[0-9]+))?:(?P<feature>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class FeatureRef:
    """`FeatureRef("driver_stats:trips_today")` (latest version) or `"driver_stats@2:trips_today"`.

    `alias` names the column the value lands in (default: the feature's name); `type` (int, float,
    str, bool) lets `ModelSchema.example()` fill the column for the build's checks.
    """

    ref: str
    alias: str | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ref, str) or not _REF.match(self.ref.strip()):
            raise ValueError(
                f"feature reference {self.ref!r} must look like SET:FEATURE or SET@VERSION:FEATURE, "
                "e.g. driver_stats:trips_today"
            )
        object.__setattr__(self, "ref", self.ref.strip())

    @property
    def feature_set(self) -> str:
        """The feature set's name."""
        return self._parts()["set"]

    @property
    def version(self) -> int | None:
        """The pinned version, or None for the latest."""
        version = self._parts()["version"]
        return int(version) if version else None

    @property
    def feature(self) -> str:
        """The feature's name inside its set."""
        return self._parts()["feature"]

    @property
    def column(self) -> str:
        """The column the value is put in."""
        return self.alias or self.feature

    def _parts(self) -> dict[str, str]:
        match = _REF.match(self.ref)
        assert match is not None
        return match.groupdict()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored with the model schema in an artifact's manifest)."""
        out: dict[str, Any] = {"ref": self.ref}
        if self.alias:
            out["alias"] = self.alias
        if self.type:
            out["type"] = self.type
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> FeatureRef:
        """Rebuild from `to_dict()` output (or a plain reference string)."""
        if isinstance(data, str):
            return cls(data)
        return cls(str(data["ref"]), alias=data.get("alias"), type=data.get("type"))
