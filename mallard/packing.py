"""Build contexts: the files of a model project packed into one deterministic tar.gz.

`pack_context(dir, out)` packs what `mallard models build` uploads to the data plane. The archive
is a pure function of the packed files' paths, contents and executable bits: entries are sorted,
every timestamp is 0, owners are 0/0 with no names, modes are 0644 or 0755, and the gzip header
carries no name or time. The same files therefore always give the same `sha256:` digest, which is
the context's address in the data-plane store.

Which files go in follows git: `.gitignore` and `.mallardignore` files (in the project root or any
subdirectory, each applying below its own directory; a `.mallardignore` rule beats a `.gitignore`
rule of the same directory, deeper files beat shallower ones, the last matching rule wins, `!`
re-includes, but nothing below an excluded directory can be re-included). Supported pattern
syntax: `#` comments, `\\` escapes, `!` negation, a trailing `/` for directories only, a `/` at the
start or in the middle anchors the pattern to its file's directory, `*`, `?`, `[a-z]`/`[!a-z]`,
and `**` as a whole segment (`**/x`, `x/**`, `a/**/b`). `.git/`, `__pycache__/`, `.venv/` and
`*.pyc` are always left out. Symlinks are kept as symlinks if they point inside the project and
refused if they point outside it.

`unpack_context(archive, dest)` is its safe inverse, used by the agent on archives it did not
write: only regular files, directories and symlinks, no absolute paths or `..`, nothing written
or pointing outside `dest`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

IGNORE_FILES = (".gitignore", ".mallardignore")  # in order of precedence within one directory
ALWAYS_EXCLUDED_DIRS = frozenset({".git", "__pycache__", ".venv"})
ALWAYS_EXCLUDED_SUFFIXES = (".pyc",)


class PackingError(Exception):
    """A project cannot be packed, or an archive cannot be unpacked safely."""


@dataclass(frozen=True)
class PackedContext:
    """A packed build context: its content address, size in bytes, archive path and packed files."""

    digest: str
    size: int
    path: Path
    files: list[str] = field(default_factory=list)


# ---- ignore rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRule:
    """One pattern line of an ignore file, compiled; `base` is its directory relative to the root."""

    pattern: str
    base: str
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool
    source: str

    def matches(self, path: str, is_dir: bool) -> bool:
        """Whether the rule's pattern matches `path` (relative to the project root, `/`-separated)."""
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not path.startswith(self.base + "/"):
                return False
            path = path[len(self.base) + 1 :]
        return self.regex.fullmatch(path) is not None


def parse_ignore_line(line: str, *, base: str = "", source: str = "") -> IgnoreRule | None:
    """Compile one gitignore line; None for blank lines and comments."""
    line = line.rstrip("\r\n")
    if not line or line.startswith("#"):
        return None
    line = _strip_trailing_spaces(line)
    if not line:
        return None
    negated = line.startswith("!")
    if negated or line.startswith(("\\!", "\\#")):  # `\!` and `\#` start literal names
        line = line[1:]
    dir_only = line.endswith("/") and not line.endswith("\\/")
    if dir_only:
        line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    segments = line.split("/")
    body = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            body.append(".+" if last else "(?:[^/]+/)*")
        else:
            body.append(_segment_regex(segment) + ("" if last else "/"))
    regex = ("" if anchored else "(?:[^/]+/)*") + "".join(body)
    return IgnoreRule(
        pattern=line,
        base=base,
        regex=re.compile(regex, re.DOTALL),
        negated=negated,
        dir_only=dir_only,
        source=source,
    )


def _strip_trailing_spaces(line: str) -> str:
    while line.endswith(" ") and not line.endswith("\\ "):
        line = line[:-1]
    return line


def _segment_regex(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "\\" and i + 1 < len(segment):
            out.append(re.escape(segment[i + 1]))
            i += 2
            continue
        if c == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1  # `**` inside a segment is an ordinary `*`
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = _class_end(segment, i)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = segment[i + 1 : end]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("[", "\\[")
                out.append(f"[^/{body}]" if negate else f"[{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _class_end(segment: str, start: int) -> int:
    i = start + 1
    if i < len(segment) and segment[i] in "!^":
        i += 1
    if i < len(segment) and segment[i] == "]":
        i += 1  # a leading `]` is a literal member
    while i < len(segment):
        if segment[i] == "]":
            return i
        i += 1
    return -1


class IgnoreRules:
    """The ignore rules of a project, in precedence order (later rules win)."""

    def __init__(self) -> None:
        self.rules: list[IgnoreRule] = []

    def add_lines(self, lines: list[str], *, base: str = "", source: str = "") -> None:
        """Add the rules of one ignore file whose directory is `base` (relative to the root)."""
        for number, line in enumerate(lines, start=1):
            rule = parse_ignore_line(line, base=base, source=f"{source}:{number}")
            if rule is not None:
                self.rules.append(rule)

    def add_directory(self, root: Path, base: str) -> None:
        """Add the ignore files found in `root/base`."""
        for name in IGNORE_FILES:
            path = root / base / name if base else root / name
            if path.is_file() and not path.is_symlink():
                text = path.read_text(encoding="utf-8", errors="replace")
                self.add_lines(text.splitlines(), base=base, source=f"{base}/{name}" if base else name)

    def matches(self, path: str, is_dir: bool) -> bool:
        """Whether `path` itself is excluded by the last matching rule (its parents are not consulted)."""
        name = path.rsplit("/", 1)[-1]
        if name in ALWAYS_EXCLUDED_DIRS:
            return True
        if not is_dir and name.endswith(ALWAYS_EXCLUDED_SUFFIXES):
            return True
        excluded = False
        for rule in self.rules:
            if rule.matches(path, is_dir):
                excluded = not rule.negated
        return excluded

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether `path` is left out: it or one of its parent directories is excluded."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if self.matches("/".join(parts[:depth]), is_dir=True):
                return True
        return self.matches(path, is_dir)


# ---- packing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    path: str  # relative, posix
    source: Path
    link_target: str | None  # for symlinks: a relative target inside the project


def list_context_files(directory: str | os.PathLike[str]) -> list[str]:
    """The project-relative paths `pack_context` would pack, sorted."""
    return [entry.path for entry in _walk(Path(directory).resolve())]


def _walk(root: Path, exclude: frozenset[Path] = frozenset()) -> list[_Entry]:
    if not root.is_dir():
        raise PackingError(f"{root} is not a directory")
    rules = IgnoreRules()
    entries: list[_Entry] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        current = Path(dirpath)
        base = current.relative_to(root).as_posix()
        base = "" if base == "." else base
        rules.add_directory(root, base)
        kept_dirs = []
        for name in sorted(dirnames):
            rel = f"{base}/{name}" if base else name
            if (current / name).is_symlink():
                filenames.append(name)  # a link to a directory is packed as a link, not followed
            elif not rules.matches(rel, is_dir=True):
                kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            rel = f"{base}/{name}" if base else name
            path = current / name
            if path in exclude or rules.matches(rel, is_dir=False):  # as in git, a symlink is not a directory
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                entries.append(_Entry(rel, path, _link_target(root, path, rel)))
            elif stat.S_ISREG(mode):
                entries.append(_Entry(rel, path, None))
            else:
                raise PackingError(f"{rel} is not a regular file, directory or symlink; add it to .mallardignore")
    entries.sort(key=lambda e: e.path)
    return entries


def _link_target(root: Path, path: Path, rel: str) -> str:
    target = os.readlink(path)
    resolved = Path(os.path.realpath(path))
    if resolved != root and root not in resolved.parents:
        raise PackingError(
            f"{rel} is a symlink to {target}, outside the project; copy what it points to into the "
            "project or add the link to .mallardignore"
        )
    return os.path.relpath(resolved, os.path.realpath(path.parent))


def pack_context(
    directory: str | os.PathLike[str], out_path: str | os.PathLike[str], *, max_bytes: int | None = None
) -> PackedContext:
    """Pack a project into a deterministic tar.gz at `out_path` and return its digest.

    Raises `PackingError` for symlinks that leave the project, special files, or an archive
    larger than `max_bytes`.
    """
    root = Path(directory).resolve()
    out = Path(out_path).resolve()
    partial = out.with_name(out.name + ".partial")
    entries = _walk(root, exclude=frozenset({out, partial}))
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            partial.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for entry in entries:
                _add(tar, entry)
        size = partial.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise PackingError(
                f"the packed context is {size} bytes, more than the limit of {max_bytes}; "
                "leave data sets and outputs out with .mallardignore"
            )
        digest = _sha256(partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return PackedContext(digest=digest, size=size, path=out, files=[e.path for e in entries])


def _add(tar: tarfile.TarFile, entry: _Entry) -> None:
    info = tarfile.TarInfo(entry.path)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.link_target is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link_target
        info.mode = 0o777
        tar.addfile(info)
        return
    executable = entry.source.stat().st_mode & stat.S_IXUSR
    info.mode = 0o755 if executable else 0o644
    with entry.source.open("rb") as f:
        info.size = os.fstat(f.fileno()).st_size
        tar.addfile(info, f)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def context_digest(path: str | os.PathLike[str]) -> str:
    """The `sha256:<hex>` digest of an archive file (what the data plane verifies on arrival)."""
    return _sha256(Path(path))


# ---- unpacking ---------------------------------------------------------------------------


def unpack_context(
    archive: str | os.PathLike[str], dest: str | os.PathLike[str], *, max_bytes: int | None = None
) -> list[str]:
    """Extract a context archive into `dest` (absent or empty) and return the paths extracted.

    Refuses, naming the entry: absolute paths, `..`, hard links, devices and other special
    files, symlinks that point outside `dest`, duplicate entries, and more than `max_bytes` of
    uncompressed content. On refusal nothing is left in `dest`.
    """
    target = Path(dest)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PackingError(f"cannot unpack into {target}: it exists and is not an empty directory")
    target.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.realpath(target))
    try:
        return _extract(Path(archive), root, max_bytes)
    except BaseException as exc:
        _empty(root)
        if isinstance(exc, OSError):  # e.g. a file entry where an earlier entry made a directory
            raise PackingError(f"the archive cannot be unpacked: {exc}") from exc
        raise


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _extract(archive: Path, root: Path, max_bytes: int | None) -> list[str]:
    extracted: list[str] = []
    seen: set[str] = set()
    links: list[tuple[str, Path]] = []
    total = 0
    try:
        tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError) as exc:
        raise PackingError(f"{archive} is not a readable tar archive: {exc}") from exc
    with tar:
        for member in _members(tar):
            name = _safe_name(member.name)
            if name in seen:
                raise PackingError(f"archive entry {name!r} appears twice")
            seen.add(name)
            path = root / name
            written = path.parent if member.issym() else path
            if not _inside(root, os.path.realpath(written)):
                raise PackingError(f"archive entry {name!r} would be written outside the destination")
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
            elif member.issym():
                _check_link_target(name, member.linkname)
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(member.linkname, path)
                links.append((name, path))
                extracted.append(name)
            elif member.isreg():
                total += member.size
                if max_bytes is not None and total > max_bytes:
                    raise PackingError(f"the archive holds more than {max_bytes} bytes of files")
                path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise PackingError(f"archive entry {name!r} has no content")
                with source, open(path, "xb") as f:
                    shutil.copyfileobj(source, f)
                path.chmod(0o755 if member.mode & stat.S_IXUSR else 0o644)
                extracted.append(name)
            else:
                kind = "a hard link" if member.islnk() else "a device or other special file"
                raise PackingError(
                    f"archive entry {name!r} is {kind}; contexts hold only files, directories and symlinks"
                )
    # Each link was checked on its own; a chain of links can still leave, so resolve them all at the end.
    for name, path in links:
        if not _inside(root, os.path.realpath(path)):
            raise PackingError(f"archive entry {name!r} is a symlink that resolves outside the destination")
    return extracted


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    try:
        yield from tar
    except tarfile.TarError as exc:
        raise PackingError(f"the archive is corrupt: {exc}") from exc


def _safe_name(name: str) -> str:
    if not name or name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise PackingError(f"archive entry {name!r} has an absolute or non-portable path")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if not parts or ".." in parts or "\x00" in name:
        raise PackingError(f"archive entry {name!r} leaves the destination ('..' is not allowed)")
    return "/".join(parts)


def _check_link_target(name: str, linkname: str) -> None:
    if not linkname or linkname.startswith("/") or "\\" in linkname:
        raise PackingError(f"archive entry {name!r} is a symlink to an absolute path ({linkname!r})")
    joined = os.path.normpath(os.path.join(os.path.dirname(name), linkname))
    if joined == ".." or joined.startswith("../"):
        raise PackingError(f"archive entry {name!r} is a symlink pointing outside the destination ({linkname!r})")


def _inside(root: Path, resolved: str) -> bool:
    path = Path(resolved)
    return path == root or root in path.parents
