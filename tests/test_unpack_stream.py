"""Unpacking through GNU tar (issue 15) makes the tree that tarfile's own extraction made.

The safety rules are tested in tests/test_safety_unpack.py (on the GNU tar path, the default
where tar is installed); here the two ways of writing the tree are compared on an archive with
what source archives hold and what a re-encoding could get wrong: names past ustar's 100 bytes,
non-ASCII names, pax and GNU long-name headers, set-id and read-only modes, a directory without
write permission, hard and symbolic links, a file repeated, times of 0 and far in the future.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest
from support.debianpython import run_filterless

from fwbuild.errors import UnpackError
from fwbuild.trees import copy_tree
from fwbuild.unpack import UNPACK_ENV, _gnu_tar, extract_tarball

LONG = "pkg-1.0/" + "/".join(["a-rather-long-directory-name-" + "x" * 20] * 3) + "/file.c"


def _member(tar: tarfile.TarFile, name: str, kind: bytes, **kw: object) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    data = kw.pop("data", None)
    for key, value in kw.items():
        setattr(info, key, value)
    if isinstance(data, bytes):
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def _archive(path: Path, fmt: int, long: str = LONG) -> Path:
    F, D, S, H = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        _member(tar, "pkg-1.0", D, mode=0o755, mtime=1_000_000)
        _member(tar, "pkg-1.0/ro", D, mode=0o555, mtime=0)  # no write permission
        _member(tar, "pkg-1.0/ro/inside.c", F, mode=0o444, data=b"ro\n")
        _member(tar, "pkg-1.0/configure", F, mode=0o775, data=b"#!/bin/sh\n", uid=1000)
        far = 2**33 + 5 if fmt != tarfile.USTAR_FORMAT else 2**33 - 5  # past 8**11 for pax/GNU
        _member(tar, "pkg-1.0/setuid", F, mode=0o4755, data=b"s\n", mtime=far)
        _member(tar, "pkg-1.0/group-x", F, mode=0o610, data=b"g\n")
        _member(tar, long, F, mode=0o644, data=b"long\n" * 1000)
        _member(tar, "pkg-1.0/naïve-ünïcode.txt", F, mode=0o644, data="ü\n".encode())
        _member(tar, "pkg-1.0/include/l.h", S, linkname="../" + long.split("/", 1)[1])
        _member(tar, "pkg-1.0/hard.c", H, linkname="./pkg-1.0/configure", mode=0o775)
        _member(tar, "pkg-1.0/NEWS", F, mode=0o644, data=b"old\n")
        _member(tar, "pkg-1.0/NEWS", F, mode=0o644, data=b"new\n", mtime=7)
        _member(tar, "pkg-1.0/empty", F, mode=0o644, data=b"")
    return path


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    seen: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                seen[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                seen[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                seen[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes(), st.st_mtime)
    return seen


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_gnu_tar_and_tarfile_make_the_same_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: int
) -> None:
    assert _gnu_tar() is not None, "GNU tar is part of every Debian system (scripts/setup-debian)"
    # ustar holds no name past 255 bytes (split in prefix and name), nor an mtime past 2**33
    long = "pkg-1.0/" + "y" * 90 + "/f.c" if fmt == tarfile.USTAR_FORMAT else LONG
    archive = _archive(tmp_path / "pkg-1.0.tar.gz", fmt, long)
    made: dict[str, dict[str, tuple[object, ...]]] = {}
    for way in ("tar", "python"):
        monkeypatch.setenv(UNPACK_ENV, way)
        extract_tarball(archive, tmp_path / way / "src", package="pkg")
        made[way] = _tree(tmp_path / way / "src")
        assert sorted(p.name for p in (tmp_path / way).iterdir()) == ["src"]
        owners = {p.lstat().st_uid for p in (tmp_path / way / "src").rglob("*")}
        assert owners == {os.geteuid()}, (way, owners)  # not the archive's uid 1000
    assert made["tar"] == made["python"]
    tree = made["tar"]
    assert tree["setuid"][1] == 0o755 and tree["group-x"][1] == 0o600  # data filter's modes
    assert tree["ro/inside.c"][1] == 0o644 and tree["ro"][0] == "dir"
    assert tree["NEWS"][2] == b"new\n" and tree["include/l.h"][0] == "link"
    src = tmp_path / "tar" / "src"
    assert (src / "hard.c").stat().st_ino == (src / "configure").stat().st_ino
    assert os.access(src / "ro", os.W_OK)  # a patch can add files there


def test_debians_python_extracts_the_same_tree(tmp_path: Path) -> None:
    """Debian 12's python3 (3.11.2: no extraction filters) makes, on the tarfile path, the tree
    GNU tar makes: same modes (set-id dropped), links, data and times, owned by the user."""
    archive = _archive(tmp_path / "pkg-1.0.tar.gz", tarfile.PAX_FORMAT)
    extract_tarball(archive, tmp_path / "tar" / "src", package="pkg")
    bad = tmp_path / "bad-1.0.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        _member(tar, "bad-1.0/etc", tarfile.SYMTYPE, linkname="/etc")
        _member(tar, "bad-1.0/etc/evil", tarfile.REGTYPE, data=b"x\n")
    code = (
        "import sys; from pathlib import Path; from fwbuild.unpack import extract_tarball\n"
        "from fwbuild.errors import UnpackError\n"
        "extract_tarball(Path(sys.argv[1]), Path(sys.argv[2]), package='pkg')\n"
        "try:\n    extract_tarball(Path(sys.argv[3]), Path(sys.argv[4]), package='bad')\n"
        "except UnpackError as exc:\n    assert 'refusing to unpack' in str(exc), exc\n"
        "else:\n    sys.exit('not refused')\n"
    )
    dest, refused = tmp_path / "debian" / "src", tmp_path / "refused" / "src"
    refused.parent.mkdir()
    run_filterless(code, str(archive), str(dest), str(bad), str(refused),
                   env={UNPACK_ENV: "python"})  # fmt: skip
    assert _tree(dest) == _tree(tmp_path / "tar" / "src")
    assert {p.lstat().st_uid for p in dest.rglob("*")} == {os.geteuid()}
    assert list(refused.parent.iterdir()) == []  # no tree, no scratch left


def test_without_gnu_tar_tarfile_extracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose ``tar`` is not GNU tar (or has none) still unpacks, with tarfile."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tar"
    fake.write_text("#!/bin/sh\necho 'bsdtar 3.6.2'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv(UNPACK_ENV, raising=False)
    assert _gnu_tar() is None
    archive = _archive(tmp_path / "pkg-1.0.tar.gz", tarfile.PAX_FORMAT)
    extract_tarball(archive, tmp_path / "src", package="pkg")
    assert (tmp_path / "src" / "NEWS").read_bytes() == b"new\n"


def test_copy_tree_makes_what_copytree_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An override tree copied by GNU cp equals shutil.copytree's copy: VCS metadata left out
    at every depth (a submodule's .git file too), links kept as links, modes and times kept."""
    src = tmp_path / "override"
    (src / "sub" / "mod" / ".git").mkdir(parents=True)
    (src / "sub" / "mod" / ".git" / "HEAD").write_text("ref\n")
    (src / "sub" / "vendored").mkdir()
    (src / "sub" / "vendored" / ".git").write_text("gitdir: ../../.git/modules/x\n")
    (src / ".git").mkdir()
    (src / ".svn").mkdir()
    (src / "configure").write_text("#!/bin/sh\n")
    (src / "configure").chmod(0o750)
    os.utime(src / "configure", (1_000_000, 1_000_000))
    (src / "sub" / "a.c").write_text("int a;\n")
    (src / "link").symlink_to("sub/a.c")
    (src / "dangling").symlink_to("/nonexistent/x")
    (src / "empty").mkdir()
    ours = tmp_path / "ours"
    copy_tree(src, ours)
    monkeypatch.setenv("PATH", "/nonexistent")  # no cp: the shutil.copytree way
    theirs = tmp_path / "theirs"
    copy_tree(src, theirs)
    assert _tree(ours) == _tree(theirs)
    assert not (ours / ".git").exists() and not (ours / "sub" / "vendored" / ".git").exists()
    assert (ours / "dangling").is_symlink() and (ours / "link").readlink() == Path("sub/a.c")
    assert (ours / "configure").stat().st_mtime == 1_000_000


# --------------------------------------------------------------------------------------------
# Decompression in a process of its own (gzip -dc, bzip2 -dc, xz -dc), its checksum still checked


def _padded_tar() -> bytes:
    """A small source tar followed by 1 MB of zeros past its end-of-archive blocks: a tar reader
    stops long before the compressed stream's end, where its checksum is."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        _member(tar, "pkg-1.0/a.c", tarfile.REGTYPE, mode=0o644, data=b"int a;\n" * 5000)
    return raw.getvalue() + bytes(1 << 20)


def _gzip_bad_crc(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data, mtime=0))
    packed[-8] ^= 0xFF  # the CRC-32 of the uncompressed data, in the 8-byte trailer
    return bytes(packed)


DAMAGED_TAILS = {
    "gzip-crc": _gzip_bad_crc,
    "gzip-cut": lambda data: gzip.compress(data, mtime=0)[:-8],  # no trailer
    "bzip2-cut": lambda data: bz2.compress(data)[:-6],  # no end-of-stream CRC
    "xz-cut": lambda data: lzma.compress(data)[:-12],  # no stream footer
    "gzip-garbage": lambda data: gzip.compress(data, mtime=0) + b"garbage",
}


def _path_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only ``tools`` (links to the real ones)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        assert real is not None, f"{tool} is part of every Debian system"
        (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


@pytest.mark.parametrize("damage", sorted(DAMAGED_TAILS))
@pytest.mark.parametrize("decompressor", ["tool", "python"])
def test_damaged_compressed_tail_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, decompressor: str
) -> None:
    """The tar inside is whole and its reader stops at its end, so only the compressed
    stream's own check (read to its very end) finds the damage: by the decompressing tool's
    exit status, or by Python's reader where that tool is missing."""
    plain = _padded_tar()
    archive = tmp_path / "pkg-1.0.tar"
    archive.write_bytes(DAMAGED_TAILS[damage](plain))
    tool = {"gzip": "gzip", "bzip2": "bzip2", "xz": "xz"}[damage.split("-")[0]]
    if decompressor == "python":  # GNU tar, but no decompressing tool: Python's reader
        monkeypatch.setenv("PATH", _path_with(tmp_path, "tar"))
    else:
        assert shutil.which(tool), f"{tool} is part of every Debian system"
    assert _gnu_tar() is not None
    with pytest.raises(UnpackError) as err:
        extract_tarball(archive, tmp_path / "src", package="pkg")
    message = str(err.value)
    assert str(archive) in message and "fetch it again" in message, message
    if decompressor == "tool":
        assert f"{tool} -d:" in message, message  # the tool's own words
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "bin") == ["pkg-1.0.tar"]


@pytest.mark.parametrize("tool", ["gzip", "bzip2", "xz"])
def test_decompressing_tool_runs_beside_the_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    """A compressed archive is decompressed by its own tool in another process (this one
    only reads the headers), and without that tool by Python: the same tree either way."""
    plain = _padded_tar()
    packed = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}[tool](plain)
    archive = tmp_path / "pkg-1.0.tar.x"
    archive.write_bytes(packed)
    real = shutil.which(tool)
    assert real is not None
    calls = tmp_path / "calls"
    wrapper = tmp_path / "bin" / tool
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    (tmp_path / "bin" / "tar").symlink_to(str(shutil.which("tar")))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    extract_tarball(archive, tmp_path / "src", package="pkg")
    assert calls.read_text().split() == ["-d", "-c"]
    assert (tmp_path / "src" / "a.c").read_bytes() == b"int a;\n" * 5000
    wrapper.unlink()  # the tool is missing: Python decompresses, the tree is the same
    extract_tarball(archive, tmp_path / "src2", package="pkg")
    assert _tree(tmp_path / "src2") == _tree(tmp_path / "src")
    assert calls.read_text().split() == ["-d", "-c"]  # not run again
    wrapper.write_text("#!/nonexistent/sh\n")  # there but cannot be run: Python again
    wrapper.chmod(0o755)
    extract_tarball(archive, tmp_path / "src3", package="pkg")
    assert _tree(tmp_path / "src3") == _tree(tmp_path / "src")
