"""A real gateway process (and, where needed, the API) on the parametrized database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.stack import ControlPlane


@pytest.fixture
def control_plane(database_url: str, tmp_path: Path) -> Iterator[ControlPlane]:
    cp = ControlPlane(database_url=database_url, home=tmp_path / "cp")
    cp.prepare()
    yield cp
    cp.stop()


@pytest.fixture
def gateway(control_plane: ControlPlane) -> ControlPlane:
    control_plane.start_gateway()
    return control_plane
