"""Fetch phase: the uploaded context from the store, checked against its digest and unpacked
safely, and the parts of the project's build config the agent needs."""

from __future__ import annotations

import hashlib
import tarfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_plane_agent.builds.steps import StepFailed
from data_plane_agent.storage import ObjectStore, context_key, digest_hex

MAX_UNPACKED_BYTES = 4 * 1024 * 1024 * 1024
CONFIG_FILE = "mallard.yaml"


def fetch_context(store: ObjectStore, digest: str, workdir: Path) -> Path:
    """Download, verify and unpack the context; returns the project root (holds mallard.yaml)."""
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
    target.mkdir()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            if sum(m.size for m in members) > MAX_UNPACKED_BYTES:
                raise StepFailed(f"context {digest} unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB")
            # The "data" filter refuses absolute paths, '..', links out of the tree and devices.
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StepFailed(f"context {digest} is not a valid tar.gz archive: {exc}") from exc
    archive.unlink()
    return project_root(target)


def project_root(unpacked: Path) -> Path:
    if (unpacked / CONFIG_FILE).is_file():
        return unpacked
    entries = [p for p in unpacked.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / CONFIG_FILE).is_file():
        return entries[0]
    raise StepFailed(f"the context has no {CONFIG_FILE} at its root; build a Mallard project directory")


@dataclass(frozen=True)
class ProjectBuildConfig:
    """What the agent reads from a project: its Python requirements and build env vars."""

    requirements: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    has_tests: bool = False


def read_build_config(project: Path) -> ProjectBuildConfig:
    """Requirements from main/requirements.txt, main/pyproject.toml [project].dependencies and
    mallard.yaml `build.python_requirements`; env vars from mallard.yaml `build.env`."""
    try:
        config = yaml.safe_load((project / CONFIG_FILE).read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StepFailed(f"{CONFIG_FILE} is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise StepFailed(f"{CONFIG_FILE} must be a mapping")
    build: Any = config.get("build") or {}
    if not isinstance(build, dict):
        raise StepFailed(f"{CONFIG_FILE}: `build` must be a mapping")
    requirements: list[str] = []
    req_file = project / "main" / "requirements.txt"
    if req_file.is_file():
        requirements += _requirement_lines(req_file.read_text())
    pyproject = project / "main" / "pyproject.toml"
    if pyproject.is_file():
        try:
            deps = tomllib.loads(pyproject.read_text()).get("project", {}).get("dependencies", [])
        except tomllib.TOMLDecodeError as exc:
            raise StepFailed(f"main/pyproject.toml is not valid TOML: {exc}") from exc
        requirements += [str(d).strip() for d in deps]
    extra = build.get("python_requirements") or []
    if not isinstance(extra, list):
        raise StepFailed(f"{CONFIG_FILE}: `build.python_requirements` must be a list of requirement strings")
    requirements += [str(r).strip() for r in extra if str(r).strip()]
    env = build.get("env") or {}
    if not isinstance(env, dict):
        raise StepFailed(f"{CONFIG_FILE}: `build.env` must be a mapping of names to values")
    return ProjectBuildConfig(
        requirements=requirements,
        env={str(k): str(v) for k, v in env.items()},
        has_tests=(project / "tests").is_dir(),
    )


def _requirement_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines
