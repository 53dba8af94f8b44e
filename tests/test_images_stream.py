"""Images written streaming (issue 15): never whole in memory, byte for byte what the in-memory
writers made (gzip.compress of the whole cpio), and nothing left behind when an entry is bad."""

from __future__ import annotations

import gzip
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from fwbuild.errors import BuildError
from fwbuild.images import write_cpio, write_sha256sums, write_tar
from fwbuild.rootfs import Entry

pytestmark = pytest.mark.unit  # in-process only: tests/support/layers.py

MIB = 1024 * 1024


def entry(path: str, type: str = "d", **kw: object) -> Entry:
    fields = dict(path=path, type=type, mode=0o755, uid=0, gid=0, package="", sha256="",
                  size=0, target="", major=0, minor=0)  # fmt: skip
    return Entry(**{**fields, **kw})  # type: ignore[arg-type]


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[Entry]]:
    root = tmp_path / "rootfs"
    (root / "lib").mkdir(parents=True)
    entries = [entry("/"), entry("/lib"), entry("/dev"), entry("/bin/sh", "l", target="busybox")]
    entries.append(entry("/dev/console", "c", mode=0o600, major=5, minor=1))
    for i in range(24):  # 24 MiB of files, 1 MiB each, half of them incompressible
        data = os.urandom(MIB) if i % 2 else bytes([i]) * MIB
        (root / "lib" / f"f{i:02d}").write_bytes(data)
        entries.append(entry(f"/lib/f{i:02d}", "f", mode=0o644, size=MIB))
    return root, entries


def test_images_stream_and_match_the_in_memory_format(
    tree: tuple[Path, list[Entry]], tmp_path: Path
) -> None:
    root, entries = tree
    out = tmp_path / "out"
    tracemalloc.start()
    try:
        write_cpio(entries, root, out / "rootfs.cpio.gz", 1234)
        write_tar(entries, root, out / "rootfs.tar", 1234)
        write_sha256sums(out, ["rootfs.cpio.gz", "rootfs.tar"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"images built in memory: {peak} bytes at peak"  # 24 MiB of files
    image = (out / "rootfs.cpio.gz").read_bytes()
    # the bytes gzip.compress made of the whole archive (the writer before streaming)
    assert image == gzip.compress(gzip.decompress(image), compresslevel=9, mtime=0)
    with tarfile.open(out / "rootfs.tar") as tar:
        names = tar.getnames()
        assert tar.getmember("./dev/console").ischr() and "./lib/f23" in names
    assert sorted(p.name for p in out.iterdir()) == ["rootfs.cpio.gz", "rootfs.tar", "sha256sums"]


def test_a_bad_entry_leaves_no_image_and_no_temporary(
    tree: tuple[Path, list[Entry]], tmp_path: Path
) -> None:
    root, entries = tree
    (root / "lib" / "f05").unlink()
    (root / "lib" / "f05").symlink_to("/etc/passwd")  # changed after the manifest was made
    out = tmp_path / "out"
    for writer, name in ((write_cpio, "rootfs.cpio.gz"), (write_tar, "rootfs.tar")):
        with pytest.raises(BuildError, match="lib/f05"):
            writer(entries, root, out / name, 0)
    assert list(out.iterdir()) == []
