from __future__ import annotations

from tests.helpers.object_stores import s3, store

__all__ = ["s3", "store"]
