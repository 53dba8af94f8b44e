"""Safe extraction of source tarballs (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz).

A tarball is untrusted until it is unpacked, so each entry is checked, in archive order, against
what the archive has made before it, and refused with the archive's and the entry's names when it
could put anything outside the tree or write through a link:

* an absolute name, a name containing ``..``, a device file or FIFO;
* an entry under a directory that the archive made a symbolic link (a file written *through* a
  link: the trick of CVE-2025-4517), or under a regular file;
* a symbolic link that is absolute, points outside the tree, goes up (``..``) after going down
  (``..`` after a symlinked directory is not the directory above it), or passes through another
  symbolic link;
* a hard link to anything but a regular file the archive extracted before it;
* an entry that replaces an earlier link, or a directory by a non-directory or the reverse.

The rules look at the names only, so they neither depend on what ``os.path.realpath`` manages to
resolve (it gives up past PATH_MAX, which is how CVE-2025-4517 slips past Python's own check) nor
on the Python version's ``tarfile`` (Debian 12's 3.11.2 has no extraction filters at all).
Together they make the unpacked tree safe to work in: no directory on the way to an entry is a
link, and every link resolves inside the tree, because a link only goes up from a real directory
and then only down, and any link it reaches obeys the same rule. Ordinary relative links inside a
tree (``foo -> ../bar/foo``) extract as they are. With ``strip_top``, a link that would point
above the single top-level directory (``pkg-1.0/x -> ../y``) is refused too, since that
directory becomes the tree.

How: the archive is read once, as a stream. A compressed archive is decompressed by its own tool
(``gzip -dc``, ``bzip2 -dc``, ``xz -dc``) in a process of its own, beside the checks on another
core (by Python's readers where the tool is missing); the decompressor must end without error or
complaint after the whole stream is read, so a damaged tail (its checksum) is an error even where
the tar inside looks whole. Python's ``tarfile`` reads the headers, every entry is checked by the
rules above, and only then is it handed to GNU tar, which writes the files (a fraction of
``tarfile``'s CPU per file: it no longer resolves two real paths per entry nor sets times and
modes in Python). What tar is given is not the archive's own headers but a canonical
re-encoding of what was checked: one plain header per entry, written here from the checked
name, type, size, link and time, the mode normalised as ``tarfile``'s ``data`` filter does (no
set-id bits, no group or other write, owner read-write; directories the default mode), no
owners; the file data follows byte for byte, moved from the archive (or the decompressor's
pipe) to tar's by the kernel (``splice``) without passing through this process. So tar cannot
read an entry differently from the checks (no parser differential), and an entry reaches tar
only after it passed: tar never holds an entry the rules would refuse later. Without GNU tar
(or with ``FWBUILD_UNPACK=python``) ``tarfile`` extracts, with the same checks, each entry's
mode normalised the same way and owned by the user unpacking (``fwbuild.tarmembers``).

Nothing is left behind on failure: the archive is unpacked into a scratch directory beside
``dest`` that is removed on any error. A full disk, a read-only or unwritable destination is
reported as such, naming the directory (the download is fine and is kept); only a damaged
archive is worth fetching again.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import lzma
import os
import resource
import shutil
import signal
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, cast

from fwbuild.errors import UnpackError
from fwbuild.tarmembers import current_umask, data_mode, extract_as_given, with_data_modes
from fwbuild.trees import copy_tree, gnu_tool

__all__ = ["UNPACK_ENV", "copy_tree", "extract_tarball"]  # copy_tree: its home is fwbuild.trees

_KIND_NAMES = {
    "dir": "directory",
    "file": "regular file",
    "hardlink": "hard link",
    "symlink": "symbolic link",
}
# An entry may repeat an earlier one of the same name only when neither is a link and the kind
# stays the same (tar appends a newer copy of a file; a directory may be listed twice).
_REPLACEABLE = {("dir", "dir"), ("file", "file")}

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_WRITE = {errno.EROFS, errno.EACCES, errno.EPERM}


class _Refused(Exception):
    """An archive entry the rules refuse; the text reads "entry 'NAME' <reason>"."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"entry {name!r} {reason}")


def _components(name: str) -> tuple[str, ...]:
    return tuple(c for c in name.split("/") if c not in ("", "."))


def _shown(path: tuple[str, ...]) -> str:
    return "/".join(path) or "."


class _Layout:
    """What the archive has made so far, by path (its components, without "." or empty ones).

    Only names are looked at, never the disk, so the checks hold whatever tarfile does.
    """

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, ...], str] = {}  # "dir", "file", "hardlink", "symlink"
        # Each symbolic link: where it points (relative to the archive root) and its raw target.
        self.links: dict[tuple[str, ...], tuple[tuple[str, ...], str]] = {}

    def admit(self, member: tarfile.TarInfo) -> None:
        """Record ``member`` or raise _Refused; called before the member is extracted."""
        name = member.name
        if name.startswith("/") or os.path.isabs(name):
            raise _Refused(name, "has an absolute path")
        path = _components(name)
        if ".." in path:
            raise _Refused(name, "would land outside the tree (its name contains '..')")
        if member.ischr() or member.isblk() or member.isfifo():
            raise _Refused(name, "is a device file or FIFO")
        if member.isdir():
            kind = "dir"
        elif member.issym():
            kind = "symlink"
        elif member.islnk():
            kind = "hardlink"
        elif member.issparse():  # its data is a map, not the file: nothing to hand on as it is
            raise _Refused(name, "is a sparse file, an entry type source archives do not use")
        elif member.isreg():
            kind = "file"
        else:
            raise _Refused(name, f"has an entry type ({member.type!r}) source archives do not use")
        if not path:  # "./": the top of the tree itself
            if kind != "dir":
                raise _Refused(name, "would replace the top of the tree")
            return
        for i in range(1, len(path)):
            above = self.kinds.get(path[:i])
            if above in ("symlink", "file", "hardlink"):
                raise _Refused(
                    name,
                    f"lies under {_shown(path[:i])!r}, which the archive made a "
                    f"{_KIND_NAMES[above]}"
                    + (
                        ": it would be written through the link, possibly outside the tree"
                        if above == "symlink"
                        else ""
                    ),
                )
        earlier = self.kinds.get(path)
        if earlier is not None and (earlier, kind) not in _REPLACEABLE:
            raise _Refused(
                name,
                f"is a {_KIND_NAMES[kind]} replacing the {_KIND_NAMES[earlier]} of the same name "
                "earlier in the archive",
            )
        if kind == "symlink":
            self.links[path] = (self._symlink_target(name, path, member.linkname), member.linkname)
        elif kind == "hardlink":
            self._check_hardlink(name, member.linkname)
        for i in range(1, len(path)):
            self.kinds.setdefault(path[:i], "dir")  # tarfile makes missing parents
        self.kinds[path] = kind

    def _symlink_target(self, name: str, path: tuple[str, ...], target: str) -> tuple[str, ...]:
        if not target:
            raise _Refused(name, "is a symbolic link without a target")
        if target.startswith("/"):
            raise _Refused(name, f"is a link to an absolute path ({target})")
        parts = _components(target)
        ups = 0
        while ups < len(parts) and parts[ups] == "..":
            ups += 1
        if ".." in parts[ups:]:
            raise _Refused(
                name,
                f"is a link to {target!r}, which goes up ('..') after going down into a "
                "directory: if that directory is or becomes a symbolic link, '..' leads "
                "elsewhere than the name suggests, possibly outside the tree",
            )
        base = path[:-1]
        if ups > len(base):
            raise _Refused(name, f"is a link pointing outside the tree (to {target!r})")
        resolved = base[: len(base) - ups] + parts[ups:]
        for i in range(1, len(resolved)):
            if self.kinds.get(resolved[:i]) == "symlink":
                raise _Refused(
                    name,
                    f"is a link to {target!r}, which passes through {_shown(resolved[:i])!r}, "
                    "itself a symbolic link; a chain of links could lead outside the tree",
                )
        return resolved

    def _check_hardlink(self, name: str, target: str) -> None:
        if target.startswith("/"):
            raise _Refused(name, f"is a link to an absolute path ({target})")
        parts = _components(target)
        if ".." in parts:
            raise _Refused(name, f"is a link pointing outside the tree (to {target!r})")
        if self.kinds.get(parts) not in ("file", "hardlink"):
            raise _Refused(
                name,
                f"is a hard link to {target!r}, which is not a regular file extracted before it",
            )

    def check_inside(self, top: str) -> None:
        """Refuse a link that would point above ``top`` once that directory is the tree."""
        for path, (resolved, target) in self.links.items():
            if resolved[:1] != (top,):
                raise _Refused(
                    _shown(path),
                    f"is a link to {target!r}, which points above the archive's top directory "
                    f"{top!r}, the top of the unpacked tree: outside the tree",
                )


def _checked(tar: tarfile.TarFile, layout: _Layout) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        layout.admit(member)
        yield member


def _single_top(layout: _Layout) -> str | None:
    tops = {path[0] for path in layout.kinds}
    if len(tops) == 1:
        (top,) = tops
        if layout.kinds.get((top,)) == "dir":
            return top
    return None


def extract_tarball(archive: Path, dest: Path, *, package: str, strip_top: bool = True) -> None:
    """Extract ``archive`` into the new directory ``dest`` (which must not exist yet).

    With ``strip_top`` the archive's single top-level directory (``ppp-2.4.3/``) is removed, as
    with ``tar --strip-components=1``; an archive with several top-level entries is kept as is.
    Raises UnpackError, leaving neither ``dest`` nor a partial tree, when an entry is unsafe
    (see the module docstring), the archive is damaged, or the destination cannot be written.
    """
    staging = dest.with_name(dest.name + ".unpack")
    layout = _Layout()
    top: str | None = None
    tool = _gnu_tar()
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        if tool is not None:
            _extract_with_tar(tool, archive, staging, layout)
        else:
            _extract_with_tarfile(archive, staging, layout)
        top = _single_top(layout) if strip_top else None
        if top is not None:
            layout.check_inside(top)
    except _Refused as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnpackError(
            f"refusing to unpack {archive}: {exc}. A source archive must only hold regular "
            "files, directories and links that stay inside its tree; check where it came from",
            package=package,
        ) from None
    except _ToolFailed as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnpackError(
            f"cannot unpack {archive} into {staging}: GNU tar ({tool}) failed: {exc}. Check "
            f"{dest.parent} and the disk it is on, then run the build again; the archive itself "
            "read correctly and needs no fetching again",
            package=package,
        ) from None
    except OSError as exc:
        if exc.errno is None:  # gzip's BadGzipFile, bz2's "Invalid data stream": the archive
            shutil.rmtree(staging, ignore_errors=True)
            raise _damaged(archive, exc, package) from None
        shutil.rmtree(staging, ignore_errors=True)
        raise _cannot_write(archive, dest, staging, exc, package) from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _damaged(archive, exc, package) from None
    if top is not None:
        (staging / top).rename(dest)
        staging.rmdir()
    else:
        staging.rename(dest)


def _extract_with_tarfile(archive: Path, staging: Path, layout: _Layout) -> None:
    with tarfile.open(archive) as tar:
        extract_as_given(tar, staging, with_data_modes(_checked(tar, layout)))
        # tarfile stops at the end-of-archive blocks, before the end of the compressed
        # stream, whose checksum (gzip's CRC, bz2's, xz's) is therefore never verified:
        # read the rest so a damaged archive is an error, not a silently altered tree.
        while tar.fileobj is not None and tar.fileobj.read(1 << 20):
            pass


# --- streaming through GNU tar ------------------------------------------------------------------
UNPACK_ENV = "FWBUILD_UNPACK"  # "python": extract with tarfile even where GNU tar is installed
_BLOCK = tarfile.BLOCKSIZE


class _ToolFailed(Exception):
    """GNU tar failed on a stream that read correctly, for no reason it named as an errno."""


def _gnu_tar() -> str | None:
    """GNU tar's path, if installed and not switched off (its options below are GNU's)."""
    if os.environ.get(UNPACK_ENV, "") == "python":
        return None
    return gnu_tool("tar")


_DECOMPRESSORS = (  # magic bytes, the tool that decompresses to stdout, Python's own reader
    (b"\x1f\x8b", "gzip", gzip.open),
    (b"BZh", "bzip2", bz2.open),
    (b"\xfd7zXZ\x00", "xz", lzma.open),
)
_CHUNK = 1 << 20
_AHEAD = 1 << 16  # read ahead / written at once: several small entries of a source tree
_PIPE_SIZE = 1 << 20  # fewer wake-ups per MB than the default 64 KiB (Linux's unprivileged cap)


def _widen(fd: int) -> None:
    with contextlib.suppress(AttributeError, OSError):  # Linux only; a nicety
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Source:
    """The archive's tar stream, whatever the compression (told by its first bytes, not its
    name): an uncompressed archive is read as it is; a compressed one through its own tool
    (``gzip -dc``, ``bzip2 -dc``, ``xz -dc``) in a process of its own, so decompressing costs
    this process nothing and runs beside the checks on another core, as ``bzcat | tar`` does.
    Without that tool Python's reader decompresses here. Either way the compressed stream's
    checksum is checked at its end (:meth:`verify`): a damaged tail is an error."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: BinaryIO | None = None  # Python's decompressor (no tool)
        self.errors: IO[bytes] | None = None
        self.tool = ""
        self.ahead, self.at = b"", 0  # bytes read ahead, and how many of them were taken
        with open(archive, "rb") as fh:
            magic = fh.read(6)
        for prefix, tool, opener in _DECOMPRESSORS:
            if magic.startswith(prefix):
                path = shutil.which(tool)
                if path is None:
                    self.reader = cast(BinaryIO, opener(archive, "rb"))
                    self.fd = -1
                    return
                self.tool = tool
                env = {**os.environ, "LC_ALL": "C"}
                env.pop("LANGUAGE", None)
                self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
                try:
                    with open(archive, "rb") as compressed:
                        self.proc = subprocess.Popen(
                            [path, "-d", "-c"],
                            stdin=compressed,
                            stdout=subprocess.PIPE,
                            stderr=self.errors,
                            env=env,
                        )
                except OSError as exc:
                    if exc.filename and os.fsdecode(exc.filename) == str(archive):
                        raise  # the archive itself cannot be read: said as such
                    self.errors.close()  # the tool cannot be run: Python decompresses
                    self.errors, self.tool = None, ""
                    self.reader = cast(BinaryIO, opener(archive, "rb"))
                    self.fd = -1
                    return
                assert self.proc.stdout is not None
                self.fd = self.proc.stdout.fileno()
                _widen(self.fd)
                return
        self.fd = os.open(archive, os.O_RDONLY)  # uncompressed: the file itself

    def _raw(self, size: int) -> bytes:
        if self.reader is not None:
            return self.reader.read(size)
        return os.read(self.fd, size)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (fewer only at the end of the stream). Reads ahead: most
        entries of a source tree are small, and a header, its file and the next header then
        cost one system call instead of three."""
        have = len(self.ahead) - self.at
        if have >= size:
            self.at += size
            return self.ahead[self.at - size : self.at]
        parts = [self.ahead[self.at :]] if have else []
        want = size - have
        self.ahead, self.at = b"", 0
        while want > 0:
            chunk = self._raw(min(max(want, _AHEAD), _CHUNK))
            if not chunk:
                break
            if len(chunk) > want:
                parts.append(chunk[:want])
                self.ahead, self.at = chunk, want
                break
            parts.append(chunk)
            want -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def buffered(self, size: int) -> bytes:
        """Up to ``size`` of the bytes already read ahead (no system call)."""
        data = self.ahead[self.at : self.at + size]
        self.at += len(data)
        return data

    def send(self, sink: int, size: int) -> int:
        """Pass ``size`` bytes on to the pipe ``sink`` without holding them here (the kernel
        moves them: splice); returns how many there were (fewer only at the end). The bytes
        read ahead go first: the caller takes them with :meth:`buffered`."""
        assert self.at == len(self.ahead), "send() with bytes read ahead"
        moved = 0
        if self.reader is None and hasattr(os, "splice"):
            while moved < size:
                step = os.splice(self.fd, sink, min(size - moved, _PIPE_SIZE))
                if not step:
                    break
                moved += step
            return moved
        while moved < size:
            data = self._raw(min(size - moved, _CHUNK))
            if not data:
                break
            _write_all(sink, data)
            moved += len(data)
        return moved

    def _drain(self) -> None:
        self.ahead, self.at = b"", 0
        while self._raw(_CHUNK):
            pass

    def verify(self) -> None:
        """Read the compressed stream to its end and check how its decompressor ended (the
        stream's checksum is at the end): raise tarfile.ReadError quoting it if it failed or
        complained (trailing garbage too, as Python's own readers refuse it)."""
        if self.reader is None and self.proc is None:
            return  # uncompressed: nothing to check past the end of the archive
        self._drain()  # Python's reader checks as it reads; the tool, when it exits
        if self.proc is None:
            return
        status = self.proc.wait()
        problem = self._complaint(status)
        if problem:
            raise tarfile.ReadError(problem)

    def failure(self) -> str | None:
        """After an error while reading: the decompressor's own complaint if it failed (a
        damaged stream explains a broken tar stream better than tarfile's words)."""
        if self.proc is None:
            return None
        with contextlib.suppress(OSError):
            self._drain()
        return self._complaint(self.proc.wait())

    def _complaint(self, status: int) -> str | None:
        assert self.errors is not None
        self.errors.seek(0)
        said = self.errors.read().decode(errors="replace").strip()
        if status == 0 and not said:
            return None
        said = said.replace("stdin: ", "") or f"exit status {status}"
        return f"{self.tool} -d: {said}"

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        elif self.proc is not None:
            if self.proc.returncode is None:
                self.proc.kill()
                self.proc.wait()
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        else:
            os.close(self.fd)
        if self.errors is not None:
            self.errors.close()

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _header(member: tarfile.TarInfo, name: str, umask: int) -> bytes:
    """One canonical header for a checked entry: its checked name, type, size, link and time,
    the mode as the ``data`` filter makes it, no owners. Plain ustar when the fields fit (most
    entries, a few microseconds), else tarfile's pax encoding of the same fields."""
    if member.isreg():
        mode, size, kind, link = data_mode(member, umask), member.size, tarfile.REGTYPE, ""
    elif member.isdir():
        mode, size, kind, link = data_mode(member, umask), 0, tarfile.DIRTYPE, ""
    elif member.issym():
        mode, size, kind, link = 0o777, 0, tarfile.SYMTYPE, member.linkname
    else:  # a hard link, to the checked name of a file before it
        mode, size, kind = 0o644, 0, tarfile.LNKTYPE
        link = "/".join(_components(member.linkname))
    mtime = int(member.mtime)
    try:
        raw_name = name.encode("ascii")
        raw_link = link.encode("ascii")
    except UnicodeEncodeError:
        raw_name = raw_link = b"\xff" * 101  # not plain ASCII: pax below
    if len(raw_name) <= 100 and len(raw_link) <= 100 and 0 <= mtime < 8**11 and size < 8**11:
        block = b"".join((
            raw_name.ljust(100, b"\0"), _octal(mode, 8), _octal(0, 8), _octal(0, 8),
            _octal(size, 12), _octal(mtime, 12), b" " * 8, kind, raw_link.ljust(100, b"\0"),
            b"ustar\x0000", bytes(64), _octal(0, 8), _octal(0, 8), bytes(167),
        ))  # fmt: skip
        return block[:148] + b"%06o\0 " % sum(block) + block[156:]
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime, info.linkname = kind, mode, size, mtime, link
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _Relay:
    """The tar stream as ``tarfile`` reads it, passed on to tar only once checked.

    ``tarfile`` reads headers here and seeks past file data. Bytes read are kept until the
    entry they belong to is admitted: its headers are then replaced by the canonical one
    (:func:`_header`) and its data passed on as it is, up to the end of its last block. The data
    of an admitted entry, which ``tarfile`` skips by seeking, goes from the source to tar
    without passing through this process (:meth:`_Source.send`) unless it was read ahead with
    a header. So tar sees entries only in the order, and only after, the checks. What is
    passed on is gathered and written in pieces of ``_AHEAD`` bytes.
    """

    def __init__(self, source: _Source, sink: int) -> None:
        self.source, self.sink = source, sink
        self.held = bytearray()
        self.start = 0  # stream offset of held[0]
        self.pos = 0  # stream offset of the next byte read from the source
        self.cleared = 0  # stream offset up to which the bytes belong to admitted entries
        self.out = bytearray()  # passed on, not yet written

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size if size >= 0 else 1 << 62)
        self.held += data
        self.pos += len(data)
        self._pass(self.cleared)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Forward only (``tarfile`` skips file data): admitted bytes are sent on unread."""
        if whence != os.SEEK_SET or offset < self.pos:
            raise io.UnsupportedOperation("the tar stream is read forward only")
        self._pass(self.cleared)  # held is now empty, or pos >= cleared
        if self.pos < self.cleared:
            want = min(offset, self.cleared) - self.pos
            ahead = self.source.buffered(want)
            self._emit(ahead)
            self.pos += len(ahead)
            if want > len(ahead):
                self._flush()  # in order: what was gathered, then the spliced rest
                sent = self.source.send(self.sink, want - len(ahead))
                self.pos += sent
                if sent < want - len(ahead):
                    self.start = self.pos
                    return self.pos  # the end of the stream: tarfile's next read finds it
            self.start = self.pos
        if offset > self.pos:  # bytes of no admitted entry (not expected): held like any
            self.read(offset - self.pos)
        return self.pos

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data
        if len(self.out) >= _AHEAD:
            self._flush()

    def _flush(self) -> None:
        if self.out:
            _write_all(self.sink, self.out)
            self.out.clear()

    def _pass(self, upto: int) -> None:
        count = min(upto - self.start, len(self.held))
        if count > 0:
            self._emit(memoryview(self.held)[:count])
            del self.held[:count]
            self.start += count

    def _drop(self, upto: int) -> None:
        count = upto - self.start
        if count > 0:
            del self.held[:count]
            self.start += count

    def admit(self, member: tarfile.TarInfo, header: bytes | None) -> None:
        """Pass on what came before ``member`` (the data of admitted entries), then its
        canonical header instead of its own (``None``: the entry is left out), then its data."""
        self._pass(min(member.offset, self.cleared))
        self._drop(member.offset_data)
        if header is not None:
            self._emit(header)
        data = -(-member.size // _BLOCK) * _BLOCK if member.isreg() else 0
        self.cleared = member.offset_data + data
        self._pass(self.cleared)

    def finish(self) -> None:
        """Pass on the last data and end the archive."""
        self._pass(self.cleared)
        self._emit(bytes(2 * _BLOCK))
        self._flush()
        self.held.clear()


_TAR_OPTIONS = (
    "--no-same-owner",  # owners are not a source tree's business (root would restore them)
    "--same-permissions",  # exactly the canonical headers' modes
    "--warning=no-timestamp",  # an mtime of 0 (reproducible archives) is not worth a line
)


def _extract_with_tar(tool: str, archive: Path, staging: Path, layout: _Layout) -> None:
    umask = current_umask()
    env = {**os.environ, "LC_ALL": "C"}  # its messages in English, as os.strerror's are
    env.pop("LANGUAGE", None)
    argv = [tool, "-x", "-f", "-", "-C", str(staging), *_TAR_OPTIONS]
    with tempfile.TemporaryFile() as errors, _Source(archive) as source:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=env
        )
        assert proc.stdin is not None
        ended = False
        try:
            _widen(proc.stdin.fileno())
            # (a broken pipe: tar stopped reading; its status and message say why, below)
            with contextlib.suppress(BrokenPipeError), proc.stdin:
                relay = _Relay(source, proc.stdin.fileno())
                try:
                    with tarfile.open(fileobj=cast(IO[bytes], relay), mode="r:") as stream:
                        for member in stream:
                            layout.admit(member)
                            name = "/".join(_components(member.name))
                            relay.admit(member, _header(member, name, umask) if name else None)
                except (tarfile.TarError, EOFError) as exc:
                    why = source.failure()  # a damaged stream says more than tarfile can
                    raise exc if why is None else tarfile.ReadError(why) from None
                relay.finish()
                ended = True
            if ended:
                source.verify()  # the compressed stream's checksum, at its very end
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        status = proc.wait()
        if status == 0 and ended:
            return
        if status == 0:  # it exited before the end of the archive: not a tree to trust
            raise _ToolFailed("it stopped reading before the end of the archive")
        if status == -signal.SIGXFSZ:  # a file size limit (ulimit -f) stopped it
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(staging))
        errors.seek(0)
        message = errors.read().decode(errors="replace")
        if status < 0:
            message += f"\nkilled by signal {signal.Signals(-status).name}"
        raise _tar_error(message, staging, tool)


def _tar_error(message: str, staging: Path, tool: str) -> Exception:
    """tar's failure as the OSError it reports (the errno told by its text), else _ToolFailed."""
    lines = [line.removeprefix(f"{tool}: ") for line in message.strip().splitlines()]
    lines = [line for line in lines if not line.startswith("Exiting with failure status")]
    for line in lines:
        for code in (*_DISK_FULL, *_NO_WRITE, errno.EIO, errno.ENOENT, errno.ENOTDIR):
            text = os.strerror(code)
            if line.endswith(": " + text):
                entry = line.split(": ", 1)[0]
                return OSError(code, text, str(staging / entry))
    for line in lines:
        if "Wrote only" in line:  # a short write: the disk filled up, or a file size limit
            entry = line.split(": ", 1)[0]
            code = _short_write_cause(staging)
            return OSError(code, os.strerror(code), str(staging / entry))
    return _ToolFailed("; ".join(lines[-3:]) or "no message")


def _short_write_cause(staging: Path) -> int:
    """Why a write stopped short (tar names no errno then): a full disk, else a size limit."""
    with contextlib.suppress(OSError):
        stats = os.statvfs(staging)
        if stats.f_bavail * stats.f_frsize < (1 << 20):
            return errno.ENOSPC
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return errno.EFBIG if limit != resource.RLIM_INFINITY else errno.EIO


def _damaged(archive: Path, exc: BaseException, package: str) -> UnpackError:
    return UnpackError(
        f"cannot unpack {archive}: {exc}. The file is truncated, damaged or not a tar archive; "
        "delete it from the download directory (or replace the local copy you pointed the build "
        "at) and fetch it again",
        package=package,
    )


def _cannot_write(
    archive: Path, dest: Path, staging: Path, exc: OSError, package: str
) -> UnpackError:
    where = dest.parent
    what = exc.strerror or str(exc)
    if exc.filename and Path(os.fsdecode(exc.filename)) == archive:
        return UnpackError(
            f"cannot read {archive}: {what}. Check that the file exists and is readable by the "
            "user running the build",
            package=package,
        )
    if exc.filename:
        what += f" ({os.fsdecode(exc.filename)})"
    if exc.errno in _DISK_FULL:
        advice = (
            f"The file system holding {where} is full (or a file size limit was hit): free space "
            "there, or point the build directory elsewhere, and run the build again."
        )
    elif exc.errno in _NO_WRITE:
        advice = (
            f"{where} is read-only or not writable by the user running the build: fix its "
            "permissions or mount, or point the build directory elsewhere, and run the build "
            "again."
        )
    else:
        advice = (
            f"Check {where} and the disk it is on, and that {archive} is readable, then run the "
            "build again."
        )
        return UnpackError(
            f"cannot unpack {archive} into {staging}: {what}. {advice}", package=package
        )
    return UnpackError(
        f"cannot unpack {archive} into {staging}: {what}. {advice} The archive is not at fault: "
        f"keep it, it needs no fetching again (no partial tree was left in {where})",
        package=package,
    )
