"""Build contexts: deterministic archives, gitignore semantics, and safe extraction of hostile archives."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from mallard.packing import PackingError, list_context_files, pack_context, unpack_context


def make_tree(root: Path, files: list[str]) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {rel}\n")
    return root


# ---- determinism -------------------------------------------------------------------------


def test_same_files_give_the_same_digest_and_a_change_gives_another(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "a", ["mallard.yaml", "main/model.py", "tests/test_model.py"])
    second = tmp_path / "b"
    # The same files written in another order, at another time, with other permissions bits.
    make_tree(second, ["tests/test_model.py", "main/model.py", "mallard.yaml"])
    os.utime(second / "main" / "model.py", (time.time() - 86400, time.time() - 86400))
    (second / "mallard.yaml").chmod(0o600)

    one = pack_context(first, tmp_path / "one.tar.gz")
    again = pack_context(first, tmp_path / "again.tar.gz")
    other = pack_context(second, tmp_path / "other.tar.gz")
    assert one.digest == again.digest == other.digest
    assert one.digest.startswith("sha256:") and len(one.digest) == len("sha256:") + 64
    assert one.files == ["main/model.py", "mallard.yaml", "tests/test_model.py"]
    assert one.size == (tmp_path / "one.tar.gz").stat().st_size

    (first / "main" / "model.py").write_text("changed\n")
    assert pack_context(first, tmp_path / "changed.tar.gz").digest != one.digest
    (second / "main" / "model.py").chmod(0o755)
    assert pack_context(second, tmp_path / "executable.tar.gz").digest != one.digest


def test_archive_entries_are_normalised(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "p", ["main/model.py", "run.sh"])
    (project / "run.sh").chmod(0o775)
    packed = pack_context(project, tmp_path / "ctx.tar.gz")
    with tarfile.open(packed.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["main/model.py", "run.sh"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert [m.mode for m in members] == [0o644, 0o755]
    raw = packed.path.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime


def test_archive_written_inside_the_project_is_not_packed(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "p", ["main/model.py"])
    packed = pack_context(project, project / "context.tar.gz")
    assert packed.files == ["main/model.py"]
    assert pack_context(project, project / "context.tar.gz").digest == packed.digest


def test_oversized_context_is_refused(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "p", ["main/model.py"])
    (project / "main" / "weights.bin").write_bytes(os.urandom(50_000))
    with pytest.raises(PackingError, match="more than the limit of 10000"):
        pack_context(project, tmp_path / "ctx.tar.gz", max_bytes=10_000)
    assert not (tmp_path / "ctx.tar.gz").exists()


# ---- ignore rules ------------------------------------------------------------------------

FILES = [
    "main/model.py",
    "main/data/train.csv",
    "main/data/README.md",
    "notes.log",
    "keep.log",
    "sub/notes.log",
    "build/out.bin",
    "main/build/x.py",
    "root.txt",
    "main/root.txt",
    "docs/a/b/draft.tmp",
    "docs/draft.tmp",
    "docs/final.md",
    "logs/keep/k.txt",
    "logs/x.txt",
    "#hash.txt",
    "fileA.txt",
    "file1.txt",
    "deep/a/b/c.txt",
    "deep/c.txt",
]

IGNORE_CASES = [
    ("nothing ignored", {}, set()),
    ("glob at any depth", {".gitignore": "*.log\n"}, {"notes.log", "keep.log", "sub/notes.log"}),
    ("negation re-includes", {".gitignore": "*.log\n!keep.log\n"}, {"notes.log", "sub/notes.log"}),
    ("directory pattern", {".gitignore": "build/\n"}, {"build/out.bin", "main/build/x.py"}),
    ("anchored pattern", {".gitignore": "/root.txt\n"}, {"root.txt"}),
    ("middle slash anchors", {".gitignore": "main/root.txt\n"}, {"main/root.txt"}),
    ("double star in the middle", {".gitignore": "docs/**/*.tmp\n"}, {"docs/a/b/draft.tmp", "docs/draft.tmp"}),
    ("leading double star", {".gitignore": "**/c.txt\n"}, {"deep/a/b/c.txt", "deep/c.txt"}),
    ("trailing double star", {".gitignore": "deep/**\n"}, {"deep/a/b/c.txt", "deep/c.txt"}),
    (
        "re-include inside an ignored dir's contents",
        {".gitignore": "main/data/*\n!main/data/README.md\n"},
        {"main/data/train.csv"},
    ),
    ("no re-include below an excluded dir", {".gitignore": "logs/\n!logs/keep/\n"}, {"logs/keep/k.txt", "logs/x.txt"}),
    ("escaped hash", {".gitignore": "\\#hash.txt\n# a comment\n"}, {"#hash.txt"}),
    ("character classes", {".gitignore": "file[A-Z].txt\n"}, {"fileA.txt"}),
    ("negated class", {".gitignore": "file[!A-Z].txt\n"}, {"file1.txt"}),
    (
        "mallardignore beats gitignore",
        {".gitignore": "*.log\n", ".mallardignore": "!keep.log\n"},
        {"notes.log", "sub/notes.log"},
    ),
    ("nested ignore file applies below itself", {"sub/.gitignore": "*.log\n"}, {"sub/notes.log"}),
    (
        "nested file can re-include",
        {".gitignore": "*.log\n", "sub/.gitignore": "!notes.log\n"},
        {"notes.log", "keep.log"},
    ),
]


@pytest.mark.parametrize(("rules", "excluded"), [c[1:] for c in IGNORE_CASES], ids=[c[0] for c in IGNORE_CASES])
def test_ignore_rules(tmp_path: Path, rules: dict[str, str], excluded: set[str]) -> None:
    make_tree(tmp_path, FILES)
    for rel, text in rules.items():
        (tmp_path / rel).write_text(text)
    expected = sorted(set(FILES) - excluded | set(rules))
    assert list_context_files(tmp_path) == expected


def test_always_excluded(tmp_path: Path) -> None:
    make_tree(tmp_path, ["main/model.py", ".git/config", "main/__pycache__/model.cpython-311.pyc", ".venv/bin/python"])
    make_tree(tmp_path, ["stray.pyc"])
    (tmp_path / ".gitignore").write_text("!.git/\n!*.pyc\n")  # cannot be re-included
    assert list_context_files(tmp_path) == [".gitignore", "main/model.py"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_agrees_with_git(tmp_path: Path) -> None:
    make_tree(tmp_path, FILES)
    (tmp_path / ".gitignore").write_text(
        "*.log\n!keep.log\nbuild/\n/root.txt\ndocs/**/*.tmp\nlogs/\n!logs/keep/\nmain/data/*\n!main/data/README.md\n"
        "file[!A-Z].txt\ndeep/**/c.txt\n"
    )
    (tmp_path / "sub" / ".gitignore").write_text("!notes.log\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert list_context_files(tmp_path) == sorted(listed.stdout.splitlines())


# ---- symlinks ----------------------------------------------------------------------------


def test_symlink_inside_the_project_is_kept_as_a_link(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "p", ["main/model.py", "data/v1.csv"])
    (project / "main" / "data.csv").symlink_to("../data/v1.csv")
    packed = pack_context(project, tmp_path / "ctx.tar.gz")
    assert "main/data.csv" in packed.files
    dest = tmp_path / "out"
    unpack_context(packed.path, dest)
    assert (dest / "main" / "data.csv").is_symlink()
    assert (dest / "main" / "data.csv").read_text() == "content of data/v1.csv\n"


def test_symlink_leaving_the_project_is_refused_unless_ignored(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "p", ["main/model.py"])
    (tmp_path / "secret.txt").write_text("secret")
    (project / "main" / "secret.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(PackingError, match=r"main/secret.txt is a symlink to .*outside the project"):
        pack_context(project, tmp_path / "ctx.tar.gz")
    (project / ".mallardignore").write_text("main/secret.txt\n")
    assert pack_context(project, tmp_path / "ctx.tar.gz").files == [".mallardignore", "main/model.py"]


# ---- unpacking ---------------------------------------------------------------------------


def test_unpack_round_trip(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "p", ["main/model.py", "tests/test_model.py", "mallard.yaml"])
    packed = pack_context(project, tmp_path / "ctx.tar.gz")
    dest = tmp_path / "out"
    assert unpack_context(packed.path, dest) == packed.files
    for rel in packed.files:
        assert (dest / rel).read_text() == (project / rel).read_text()
    with pytest.raises(PackingError, match="not an empty directory"):
        unpack_context(packed.path, dest)


def hostile_archive(path: Path, *entries: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in entries:
            data = b"pwned" if info.isreg() else None
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


HOSTILE = [
    ("absolute path", [entry("/tmp/evil.txt")], "absolute"),
    ("dot dot", [entry("main/../../evil.txt")], r"'\.\.' is not allowed"),
    ("absolute symlink", [entry("passwd", tarfile.SYMTYPE, "/etc/passwd")], "symlink to an absolute path"),
    ("symlink up", [entry("up", tarfile.SYMTYPE, "../..")], "pointing outside"),
    ("hard link", [entry("main/model.py"), entry("hard", tarfile.LNKTYPE, "main/model.py")], "hard link"),
    ("device", [entry("dev", tarfile.CHRTYPE)], "special file"),
    ("duplicate", [entry("a.txt"), entry("a.txt")], "appears twice"),
    ("file over a directory", [entry("a/b.txt"), entry("a")], "cannot be unpacked"),
    (
        "chain of links",
        [entry("x", tarfile.SYMTYPE, "."), entry("y", tarfile.SYMTYPE, "x/x/../.."), entry("y/evil.txt")],
        "outside the destination",
    ),
    (
        "chain resolved late",
        [entry("y", tarfile.SYMTYPE, "x/x/../.."), entry("x", tarfile.SYMTYPE, ".")],
        "resolves outside the destination",
    ),
]


@pytest.mark.parametrize(("entries", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_unsafe_archives_are_refused(tmp_path: Path, entries: list[tarfile.TarInfo], message: str) -> None:
    archive = hostile_archive(tmp_path / "evil.tar.gz", *entries)
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(PackingError, match=message):
        unpack_context(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "deep" / "evil.txt").exists()


def test_unpack_refuses_too_much_content_and_garbage(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "p", ["main/model.py"])
    (project / "big.bin").write_bytes(b"0" * 100_000)
    packed = pack_context(project, tmp_path / "ctx.tar.gz")
    with pytest.raises(PackingError, match="more than 1000 bytes"):
        unpack_context(packed.path, tmp_path / "out", max_bytes=1000)
    (tmp_path / "garbage.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(PackingError, match="not a readable tar archive"):
        unpack_context(tmp_path / "garbage.tar.gz", tmp_path / "out2")
