"""Build artifacts unpacked for serving: `<cache>/<sha256 hex>/{manifest.json, model/, project/}`.

An artifact is fetched from the data-plane object store, its sha256 checked against the digest
it is named by, and unpacked into a temporary directory renamed into place last, so a directory
that exists is complete. Artifacts are immutable, so every replica of a build shares one copy.
"""

from __future__ import annotations

import functools
import json
import shutil
import tarfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_plane_agent.storage import ObjectMissing, ObjectStore, artifact_key, digest_hex, file_sha256
from mallard.schema import ModelSchema


class ArtifactUnavailable(Exception):
    """The artifact cannot be served: missing from the store, corrupt, or not a model."""


@dataclass(frozen=True)
class UnpackedArtifact:
    """An artifact ready to serve; `model_dir` is what `mallard.state.load_model` reads."""

    root: Path
    manifest: dict[str, Any]  # the model's own manifest (model/manifest.json)

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def project_dir(self) -> Path:
        return self.root / "project"

    @property
    def requirements(self) -> list[str]:
        return [str(r) for r in self.manifest.get("requirements", [])]

    @functools.cached_property
    def schema(self) -> ModelSchema:
        return ModelSchema.from_dict(self.manifest.get("schema") or {})


class ArtifactCache:
    """Unpacked artifacts under `root`, fetched from `store` on first use (thread-safe, blocking)."""

    def __init__(self, root: Path, store: ObjectStore) -> None:
        self.root = root
        self.store = store
        self._lock = threading.Lock()

    def ensure(self, digest: str) -> UnpackedArtifact:
        hexdigest = digest_hex(digest, field="artifact_digest")
        target = self.root / hexdigest
        with self._lock:
            if not (target / "model" / "manifest.json").is_file():
                self._fetch(digest, hexdigest, target)
        try:
            manifest = json.loads((target / "model" / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactUnavailable(f"artifact {digest} holds no readable model manifest: {exc}") from exc
        return UnpackedArtifact(target, manifest)

    def _fetch(self, digest: str, hexdigest: str, target: Path) -> None:
        staging = self.root / f".{hexdigest}.{uuid.uuid4().hex[:8]}"
        archive = staging.with_suffix(".tar.gz")
        try:
            try:
                self.store.get_to_file(artifact_key(digest), archive)
            except ObjectMissing as exc:
                raise ArtifactUnavailable(f"artifact {digest} is not in the data-plane store") from exc
            if file_sha256(archive) != hexdigest:
                raise ArtifactUnavailable(f"artifact {digest} in the store does not match its digest; it is corrupt")
            staging.mkdir(parents=True)
            try:
                with tarfile.open(archive) as tar:
                    tar.extractall(staging, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise ArtifactUnavailable(f"artifact {digest} cannot be unpacked: {exc}") from exc
            if not (staging / "model" / "manifest.json").is_file():
                raise ArtifactUnavailable(f"artifact {digest} holds no model/ directory")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            archive.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
