"""Unpacking never writes outside the tree, and never gives advice that loses a good download.

The centre piece is the CVE-2025-4517 tarball, built here exactly as CPython's own regression
test builds it (test_tarfile's ``test_realpath_limit_attack``): a chain of nested directories and
symbolic links whose resolved path exceeds PATH_MAX, so ``os.path.realpath`` stops resolving and
the ``data`` filter of an unfixed Python (such as 3.11.7) passes a link that leads out of the
destination; a hard link through it then overwrites a file outside, and a file is created
outside. The test first shows that the tarball really escapes when extracted without checks,
then that ``extract_tarball`` and the patch stage refuse it and touch nothing outside.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer
from support.mounts import tmpfs

from fwbuild.errors import UnpackError
from fwbuild.tarmembers import extract_as_given
from fwbuild.unpack import copy_tree, extract_tarball

STEPS = "abcdefghijklmnop"


def _add(
    tar: tarfile.TarFile,
    name: str,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
    data: bytes | None = None,
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o777 if kind == tarfile.DIRTYPE else 0o644
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def cve_2025_4517_tarball(unpack_dir: Path) -> tuple[bytes, str]:
    """The published attack, sized for extraction into ``unpack_dir``; returns (gzip bytes,
    the name of the first entry that goes through a symlink: the one we must refuse)."""
    # As in CPython's test: short enough unexpanded, longer than PATH_MAX once expanded.
    path_max = os.pathconf(unpack_dir.parent, "PC_PATH_MAX")
    component = "d" * ((path_max - (len(str(unpack_dir)) + 1)) // (len(STEPS) + 1))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        path = ""
        for step in STEPS:
            _add(tar, os.path.join(path, component), tarfile.DIRTYPE)
            _add(tar, os.path.join(path, step), tarfile.SYMTYPE, component)
            path = os.path.join(path, component)
        # Never expanded by realpath (past PATH_MAX), simply points back to the top dir...
        linkpath = os.path.join(*STEPS, "l" * 254)
        _add(tar, linkpath, tarfile.SYMTYPE, os.path.join(*[".."] * len(STEPS)))
        # ...so "escape" is the directory above the destination.
        _add(tar, "escape", tarfile.SYMTYPE, os.path.join(linkpath, ".."))
        _add(tar, "flaglink", tarfile.LNKTYPE, os.path.join("escape", "flag"))
        _add(tar, "flaglink", data=b"overwrite")  # writes through the hard link: outside
        _add(tar, "escape/newfile", data=b"new")  # a new file outside
    return gzip.compress(raw.getvalue(), mtime=0), linkpath


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a checksum of its content (or its link target)."""
    snap: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                snap[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                snap[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                snap[rel] = "dir"
    return snap


def decoy(work: Path) -> None:
    """What the attack aims at beside the tree: a file to overwrite and a directory of keys."""
    work.mkdir(parents=True)
    (work / "flag").write_text("the real flag\n")
    (work / "pki").mkdir()
    (work / "pki" / "ca.key").write_text("-----BEGIN PRIVATE KEY-----\nsecret\n")


@pytest.mark.unit
def test_cve_2025_4517_tarball_escapes_without_checks(tmp_path: Path) -> None:
    """The tarball is a real attack on this machine: unchecked, it writes outside."""
    work = tmp_path / "work"
    decoy(work)
    dest = work / "src.unpack"  # the same length as where extract_tarball unpacks
    data, _ = cve_2025_4517_tarball(dest)
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        extract_as_given(tar, dest, tar)
    assert (work / "flag").read_bytes() == b"overwrite"
    assert (work / "newfile").read_bytes() == b"new"


@pytest.mark.unit
def test_cve_2025_4517_tarball_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    decoy(work)
    dest = work / "src"
    data, entry = cve_2025_4517_tarball(dest.with_name("src.unpack"))
    archive = tmp_path / "evil-1.0.tar.gz"
    archive.write_bytes(data)
    before = snapshot(work)
    with pytest.raises(UnpackError) as err:
        extract_tarball(archive, dest, package="evil")
    message = str(err.value)
    assert message.startswith("evil: refusing to unpack")
    assert str(archive) in message and repr(entry) in message
    assert "symbolic link" in message and "Traceback" not in message
    assert snapshot(work) == before  # nothing outside written, no half-extracted tree left
    assert archive.read_bytes() == data


def test_patch_stage_refuses_the_cve_2025_4517_tarball(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    """Through doit, as a user would run it: the patch stage fails and nothing escapes."""
    proj = make_project(tmp_path / "proj", dist, server.url)
    work = proj / "build" / "hello"
    data, entry = cve_2025_4517_tarball(work / "src.new.unpack")
    archive = tmp_path / "hello-evil.tar.gz"
    archive.write_bytes(data)
    overrides = tmp_path / "local.toml"
    sha = hashlib.sha256(data).hexdigest()
    overrides.write_text(f'[packages.hello]\ntarball = "{archive}"\nsha256 = "{sha}"\n')
    env = doit_env(FWBUILD_OVERRIDES=str(overrides))
    assert run_doit(proj, "fetch:hello", env=env).returncode == 0
    decoy(work / "victim")  # what the escape aims at: work/flag, beside the tree
    (work / "flag").write_text("the real flag\n")
    before = snapshot(work)
    run = run_doit(proj, "patch:hello", env=env)
    assert run.returncode != 0, run.output
    assert "patch:hello" in run.output
    assert "refusing to unpack" in run.output and str(archive) in run.output
    assert entry in run.output and "Traceback" not in run.output
    assert snapshot(work) == before  # no file written beside the tree, no half tree left
    assert not (work / "src").exists()


# --------------------------------------------------------------------------------------------
# The rules one by one


def _tar(*members: tuple[str, bytes, str, bytes | None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, kind, link, data in members:
            _add(tar, name, kind, link, data)
    return raw.getvalue()


F, D, S, H = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


@pytest.mark.unit
@pytest.mark.parametrize(
    ("members", "entry", "why"),
    [
        # a file written through a symlinked directory that points inside: refused all the same
        (
            [("p/sub", D, "", None), ("p/l", S, "sub", None), ("p/l/f", F, "", b"x")],
            "p/l/f",
            "lies under 'p/l'",
        ),
        # the CVE-2025-45582 pattern in one archive: a link out, then a file through it
        ([("p/x", S, "../../../..", None), ("p/x/authorized_keys", F, "", b"k")], "p/x", "outside"),
        # going up after going down: "a/.." is not "." when a is a symlinked directory
        ([("p/a/b", D, "", None), ("p/l", S, "a/b/../../..", None)], "p/l", "goes up"),
        # a link through another link
        (
            [("p/d/e", D, "", None), ("p/s", S, "d", None), ("p/t", S, "s/e", None)],
            "p/t",
            "passes through 'p/s'",
        ),
        # a hard link to a symlink, to something not extracted (yet), out of the tree
        (
            [("p/s", S, "f", None), ("p/f", F, "", b"x"), ("p/h", H, "p/s", None)],
            "p/h",
            "not a regular file",
        ),
        ([("p/h", H, "p/later", None), ("p/later", F, "", b"x")], "p/h", "not a regular file"),
        ([("p/h", H, "../etc/passwd", None)], "p/h", "outside"),
        # replacing a link, or a directory, by something else
        ([("p/s", S, "f", None), ("p/s", F, "", b"x")], "p/s", "replacing the symbolic link"),
        ([("p/d/f", F, "", b"x"), ("p/d", S, "e", None)], "p/d", "replacing the directory"),
        ([("p/f", F, "", b"x"), ("p/f/g", F, "", b"y")], "p/f/g", "lies under 'p/f'"),
        # inside the archive, but above its top directory, which becomes the tree
        (
            [("pkg-1.0/a", F, "", b"x"), ("pkg-1.0/up", S, "../other", None)],
            "pkg-1.0/up",
            "above the archive's top directory",
        ),
        ([("p/fifo", tarfile.FIFOTYPE, "", None)], "p/fifo", "device file or fifo"),
    ],
)
def test_unsafe_entries_are_refused(
    tmp_path: Path, members: list[tuple[str, bytes, str, bytes | None]], entry: str, why: str
) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar(*members))
    work = tmp_path / "work"
    decoy(work)
    before = snapshot(tmp_path)
    with pytest.raises(UnpackError) as err:
        extract_tarball(archive, work / "src", package="bad")
    message = str(err.value)
    assert str(archive) in message and f"entry {entry!r}" in message
    assert why.lower() in message.lower(), message
    assert snapshot(tmp_path) == before


@pytest.mark.unit
def test_ordinary_links_of_source_trees_still_extract(tmp_path: Path) -> None:
    archive = tmp_path / "ok-1.0.tar.gz"
    archive.write_bytes(
        _tar(
            ("./ok-1.0/", D, "", None),
            ("./ok-1.0/include/", D, "", None),
            ("./ok-1.0/src/foo.h", F, "", b"foo\n"),
            ("./ok-1.0/include/foo.h", S, "../src/foo.h", None),  # foo -> ../bar/foo
            ("ok-1.0/include/foo2.h", S, "foo.h", None),  # a link to a link
            ("ok-1.0/include/X11", S, ".", None),  # a link to its own directory
            ("ok-1.0/later.h", S, "gen/later.h", None),  # points where nothing is yet
            ("ok-1.0/gen/later.h", F, "", b"later\n"),
            ("ok-1.0/src/copy.h", H, "ok-1.0/src/foo.h", None),
            ("ok-1.0/NEWS", F, "", b"old\n"),
            ("ok-1.0/NEWS", F, "", b"new\n"),  # tar appends a newer copy: the last one wins
            ("ok-1.0/include/", D, "", None),
        )
    )
    dest = tmp_path / "src"
    extract_tarball(archive, dest, package="ok")
    assert (dest / "include" / "foo.h").readlink() == Path("../src/foo.h")
    assert (dest / "include" / "foo2.h").read_bytes() == b"foo\n"
    assert (dest / "include" / "X11" / "X11" / "foo.h").read_bytes() == b"foo\n"
    assert (dest / "later.h").read_bytes() == b"later\n"
    assert (dest / "src" / "copy.h").stat().st_ino == (dest / "src" / "foo.h").stat().st_ino
    assert (dest / "NEWS").read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok-1.0.tar.gz", "src"]


# --------------------------------------------------------------------------------------------
# Disk full, read-only, damaged archive: the advice fits the cause


def _big_archive(tmp_path: Path) -> Path:
    archive = tmp_path / "big-1.0.tar.gz"
    archive.write_bytes(
        _tar(("big-1.0/README", F, "", b"small\n"), ("big-1.0/blob", F, "", os.urandom(600_000)))
    )
    return archive


@pytest.mark.unit
def test_full_disk_names_the_directory_and_keeps_the_download(tmp_path: Path) -> None:
    archive = _big_archive(tmp_path)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with tmpfs(tmp_path / "build", "size=200k") as build:
        dest = build / "big" / "src"
        with pytest.raises(UnpackError) as err:
            extract_tarball(archive, dest, package="big")
        message = str(err.value)
        assert "No space left on device" in message and str(dest.parent) in message
        assert "free space" in message and "keep it" in message
        assert "delete" not in message and "fetch it again" not in message
        assert list((build / "big").iterdir()) == []  # the partial tree is gone
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == digest


FSIZE_CHILD = """
import resource, signal, sys
from pathlib import Path
from fwbuild.errors import UnpackError
from fwbuild.unpack import extract_tarball
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    extract_tarball(Path(sys.argv[1]), Path(sys.argv[2]), package="big")
except UnpackError as exc:
    print(exc)
"""


@pytest.mark.unit
def test_file_size_limit_is_not_blamed_on_the_download(tmp_path: Path) -> None:
    """The same without root: a file size limit (ulimit -f) stops the write with EFBIG."""
    archive = _big_archive(tmp_path)
    dest = tmp_path / "build" / "big" / "src"
    result = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(archive), str(dest)],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
    )
    message = result.stdout
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "File too large" in message and str(dest.parent) in message, message
    assert "keep it" in message and "fetch it again" not in message
    assert list(dest.parent.iterdir()) == []


@pytest.mark.unit
def test_read_only_destination_is_named(tmp_path: Path) -> None:
    archive = _big_archive(tmp_path)
    with tmpfs(tmp_path / "build", "size=2m") as build:
        (build / "big").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(build)], check=True)
        with pytest.raises(UnpackError) as err:
            extract_tarball(archive, build / "big" / "src", package="big")
        message = str(err.value)
        assert "Read-only file system" in message and "read-only" in message
        assert str(build / "big") in message and "delete" not in message
    assert archive.exists()


@pytest.mark.unit
@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_damaged_archive_says_to_fetch_it_again(tmp_path: Path, compress: object) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        _add(tar, "pkg/a.c", data=b"".join(b"int x%d;\n" % i for i in range(20_000)))
    data = bytearray(compress(raw.getvalue()))  # type: ignore[operator]
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # corrupt the middle
    archive = tmp_path / "pkg-1.0.tar"
    archive.write_bytes(bytes(data))
    with pytest.raises(UnpackError) as err:
        extract_tarball(archive, tmp_path / "src", package="pkg")
    message = str(err.value)
    assert str(archive) in message and "fetch it again" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg-1.0.tar"]


# --------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_copy_tree_copies_links_as_links(tmp_path: Path) -> None:
    """An override source tree's links are copied as links: nothing outside is read or copied,
    and nothing is written through them."""
    outside = tmp_path / "outside"
    decoy(outside)
    src = tmp_path / "override"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.c").write_text("int f;\n")
    (src / "rel").symlink_to("sub/f.c")
    (src / "abs").symlink_to(outside / "flag")
    (src / "dirlink").symlink_to(outside / "pki", target_is_directory=True)
    (src / ".git").mkdir()
    before = snapshot(outside)
    dest = tmp_path / "copy"
    copy_tree(src, dest)
    assert (dest / "rel").readlink() == Path("sub/f.c")
    assert (dest / "abs").is_symlink() and (dest / "dirlink").is_symlink()
    assert not (dest / ".git").exists()
    assert snapshot(dest) == {
        "sub": "dir",
        "sub/f.c": hashlib.sha256(b"int f;\n").hexdigest(),
        "rel": "link:sub/f.c",
        "abs": f"link:{outside / 'flag'}",
        "dirlink": f"link:{outside / 'pki'}",
    }
    assert snapshot(outside) == before
