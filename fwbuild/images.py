"""Image writers that need no root: the manifest says owners, modes and device nodes.

``rootfs.cpio.gz`` (newc, what the kernel unpacks as its initramfs) and ``rootfs.tar`` are written
entry by entry from the manifest, so ``/dev/console`` is a real character device in them although
the build never ran mknod. Entries are sorted, times come from ``SOURCE_DATE_EPOCH``, owners are
the table's numbers and gzip gets no name or time: the same inputs give byte-identical images.
"""

from __future__ import annotations

import io
import shutil
import stat
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from fwbuild.errors import BuildError
from fwbuild.fsutil import atomic_file, atomic_write, file_digest
from fwbuild.manifest import Entry
from fwbuild.trees import TreeConflict, read_file

_TYPE_BITS = {"f": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK,
              "c": stat.S_IFCHR, "b": stat.S_IFBLK}  # fmt: skip


def _content(entry: Entry, rootfs: Path) -> bytes:
    if entry.type == "f":
        # never through a link in the tree: the manifest's file is read, not the host's
        try:
            return read_file(rootfs, entry.path)
        except TreeConflict as c:
            raise BuildError(
                f"{rootfs}: {c.describe()}, but the manifest lists {entry.path} as a file; the "
                "rootfs directory changed after it was assembled, run `doit rootfs` again"
            ) from None
    if entry.type == "l":
        return entry.target.encode()
    return b""


def _parents_first(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: e.path)


class _GzipStream:
    """Deflate to a file as ``gzip.compress(data, compresslevel=9, mtime=0)`` would, in pieces:
    the same header (no name, no time), the same deflate stream (zlib's output does not depend
    on how the input is split), CRC and size last; counts what it was given (cpio padding)."""

    HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"  # what gzip.compress(level 9) writes

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.offset, self.crc = fh, 0, 0
        self.zip = zlib.compressobj(9, zlib.DEFLATED, -15)
        fh.write(self.HEADER)

    def write(self, data: bytes) -> None:
        self.fh.write(self.zip.compress(data))
        self.crc = zlib.crc32(data, self.crc)
        self.offset += len(data)

    def close(self) -> None:
        self.fh.write(self.zip.flush())
        self.fh.write(struct.pack("<II", self.crc, self.offset & 0xFFFFFFFF))


def write_cpio(entries: Iterable[Entry], rootfs: Path, out: Path, mtime: int) -> None:
    """A gzip-compressed cpio "newc" archive, as Linux's initramfs unpacker reads it.

    Streamed through deflate to the file, one entry at a time: the image is never held in memory
    (a 48 MB rootfs took 176 MB of RSS when it was built in a buffer and compressed at once)."""
    with atomic_file(out) as raw:
        buf = _GzipStream(raw)

        def pad() -> None:
            buf.write(b"\0" * (-buf.offset % 4))

        for ino, entry in enumerate([*_parents_first(entries), None], 1):
            if entry is None:
                name, mode, data, rdev, uid, gid, nlink = b"TRAILER!!!\0", 0, b"", (0, 0), 0, 0, 1
            else:
                name = entry.path.lstrip("/").encode() + b"\0"
                mode = _TYPE_BITS[entry.type] | entry.mode
                data = _content(entry, rootfs)
                rdev = (entry.major, entry.minor)
                uid, gid = entry.uid, entry.gid
                nlink = 2 if entry.type == "d" else 1
            fields = (ino, mode, uid, gid, nlink, mtime if entry else 0, len(data), 0, 0, *rdev,
                      len(name), 0)  # fmt: skip
            buf.write(b"070701" + "".join(f"{v:08X}" for v in fields).encode() + name)
            pad()
            buf.write(data)
            pad()
        buf.close()


def write_tar(entries: Iterable[Entry], rootfs: Path, out: Path, mtime: int) -> None:
    """A GNU tar of the manifest, written to the file entry by entry (never whole in memory)."""
    with (
        atomic_file(out) as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for entry in _parents_first(entries):
            info = tarfile.TarInfo("./" + entry.path.lstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, mtime
            info.uname = info.gname = ""
            data = b""
            if entry.type == "f":
                data = _content(entry, rootfs)
                info.size = len(data)
            elif entry.type == "d":
                info.type = tarfile.DIRTYPE
            elif entry.type == "l":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
            else:
                info.type = tarfile.CHRTYPE if entry.type == "c" else tarfile.BLKTYPE
                info.devmajor, info.devminor = entry.major, entry.minor
            tar.addfile(info, io.BytesIO(data) if data else None)


def write_ext2(entries: list[Entry], tar: Path, out: Path) -> bool:
    """An ext2 image with genext2fs, if installed, made from our tar (owners, modes, devices).

    Reading the tar rather than the directory gives genext2fs a fixed entry order, and ``-f``
    zeroes its timestamps: the image is byte-identical wherever it is built.
    """
    tool = shutil.which("genext2fs")
    if tool is None:
        return False
    blocks = sum(e.size for e in entries) // 1024 + 2048 + 2 * len(entries)
    tmp = out.with_name(f".{out.name}.tmp")
    result = subprocess.run(
        [tool, "-f", "-a", str(tar), "-b", str(blocks), "-N", str(len(entries) + 64), str(tmp)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"genext2fs failed for {out}: {result.stderr.strip()[-500:]}")
    tmp.replace(out)
    return True


def write_sha256sums(directory: Path, names: Iterable[str]) -> None:
    lines = [f"{file_digest(directory / n)}  {n}" for n in sorted(names)]
    atomic_write(directory / "sha256sums", "\n".join(lines) + "\n")
