"""Builds: turn an uploaded context into a tested, content-addressed artifact.

`BuildManager` runs the phases of shared/builds.py with a `LocalBuilder` (a cached virtualenv,
the embedded default) or a `DockerBuilder` (an image build on a local Docker engine).
"""

from data_plane_agent.builds.environments import SdkWheels, VirtualEnvironments, Wheelhouses
from data_plane_agent.builds.job import Builder, BuildJob
from data_plane_agent.builds.local import LocalBuilder
from data_plane_agent.builds.manager import BuildManager
from data_plane_agent.builds.state import BuildRecord

__all__ = [
    "BuildJob",
    "BuildManager",
    "BuildRecord",
    "Builder",
    "LocalBuilder",
    "SdkWheels",
    "VirtualEnvironments",
    "Wheelhouses",
]
