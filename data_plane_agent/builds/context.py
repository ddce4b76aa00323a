"""Fetch phase: the uploaded context from the store, checked against its digest and unpacked
safely (mallard.packing.unpack_context), and what the agent needs from the project's config."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from data_plane_agent.builds.steps import StepFailed
from data_plane_agent.storage import ObjectStore, context_key, digest_hex

MAX_UNPACKED_BYTES = 4 * 1024 * 1024 * 1024
CONFIG_FILE = "mallard.yaml"


def fetch_context(store: ObjectStore, digest: str, workdir: Path) -> Path:
    """Download, verify and unpack the context; returns the project root (holds mallard.yaml)."""
    from mallard.packing import PackingError, unpack_context

    hex_ = digest_hex(digest, field="context_digest")
    key = context_key(digest)
    if not store.exists(key):
        raise StepFailed(f"context {digest} is not in this agent's store; upload it first (PUT /v1/contexts/{digest})")
    archive = workdir / "context.tar.gz"
    store.get_to_file(key, archive)
    sha = hashlib.sha256()
    with open(archive, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    if sha.hexdigest() != hex_:
        raise StepFailed(f"context digest mismatch: expected {digest}, the stored object is sha256:{sha.hexdigest()}")
    target = workdir / "context"
    try:
        unpack_context(archive, target, max_bytes=MAX_UNPACKED_BYTES)
    except PackingError as exc:
        raise StepFailed(f"context {digest} cannot be unpacked: {exc}") from exc
    archive.unlink()
    if not (target / CONFIG_FILE).is_file():
        raise StepFailed(f"the context has no {CONFIG_FILE} at its root; build a Mallard project directory")
    return target


@dataclass(frozen=True)
class ProjectBuildConfig:
    """What the agent reads from a project: its Python requirements and build env vars."""

    requirements: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    has_tests: bool = False


def read_build_config(project: Path) -> ProjectBuildConfig:
    """Requirements as the SDK defines them: main/requirements.txt, else main/pyproject.toml
    [project].dependencies, then mallard.yaml `build.python_requirements`; env from `build.env`."""
    from mallard.project import ProjectError, read_config

    try:
        config = read_config(project / CONFIG_FILE)
    except ProjectError as exc:
        raise StepFailed(str(exc)) from exc
    requirements: list[str] = []
    req_file = project / "main" / "requirements.txt"
    pyproject = project / "main" / "pyproject.toml"
    if req_file.is_file():
        for raw in req_file.read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                requirements.append(line)
    elif pyproject.is_file():
        try:
            deps = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("dependencies", [])
        except tomllib.TOMLDecodeError as exc:
            raise StepFailed(f"main/pyproject.toml: {exc}") from exc
        requirements += [str(d).strip() for d in deps if str(d).strip()]
    requirements += config.build.python_requirements
    return ProjectBuildConfig(
        requirements=requirements, env=dict(config.build.env), has_tests=(project / "tests").is_dir()
    )
