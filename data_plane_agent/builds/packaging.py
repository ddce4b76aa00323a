"""Package phase: one deterministic tar.gz per build (sorted entries, zero mtimes and owners),
named by its sha256.

    manifest.json   build_id, model, context_digest, builder, params, metrics, created_at, sdk_version
    model/          the trained state as the SDK saved it (with its own versioned manifest.json)
    project/        main/, mallard.yaml and tests/ from the build context
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

ARTIFACT_FORMAT = "mallard-artifact/1"
PROJECT_PARTS = ("main", "mallard.yaml", "tests")
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git"}


def _info(name: str, *, size: int = 0, directory: bool = False, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o755 if executable else 0o644
    return info


def _entries(source: Path, arcname: str) -> list[tuple[str, Path]]:
    """(archive name, path) of a file or a tree, sorted, regular files and directories only."""
    if source.is_file():
        return [(arcname, source)]
    found = [(arcname, source)]
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not Path(dirpath, d).is_symlink())
        base = Path(dirpath)
        rel = base.relative_to(source).as_posix()
        prefix = arcname if rel == "." else f"{arcname}/{rel}"
        for d in dirnames:
            found.append((f"{prefix}/{d}", base / d))
        for f in sorted(filenames):
            path = base / f
            if path.is_file() and not path.is_symlink() and not f.endswith(".pyc"):
                found.append((f"{prefix}/{f}", path))
    return found


def write_artifact(*, target: Path, manifest: dict[str, Any], model_dir: Path, project: Path) -> tuple[str, int]:
    """Write the artifact to `target`; returns (sha256 hex, size)."""
    entries = _entries(model_dir, "model")
    for part in PROJECT_PARTS:
        if (project / part).exists():
            entries += _entries(project / part, f"project/{part}")
    entries.sort(key=lambda item: item[0])
    manifest_bytes = json.dumps({"format": ARTIFACT_FORMAT, **manifest}, indent=2, sort_keys=True).encode() + b"\n"
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(_info("manifest.json", size=len(manifest_bytes)), io.BytesIO(manifest_bytes))
        for name, path in entries:
            if path.is_dir():
                tar.addfile(_info(name, directory=True))
            else:
                with open(path, "rb") as handle:
                    tar.addfile(
                        _info(name, size=path.stat().st_size, executable=bool(path.stat().st_mode & 0o111)), handle
                    )
    digest = hashlib.sha256()
    with open(target, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest(), target.stat().st_size
