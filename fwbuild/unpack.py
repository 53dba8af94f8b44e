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
on the Python version's ``tarfile``; its ``data`` filter still runs after them (modes, owners).
Together they make the unpacked tree safe to work in: no directory on the way to an entry is a
link, and every link resolves inside the tree, because a link only goes up from a real directory
and then only down, and any link it reaches obeys the same rule. Ordinary relative links inside a
tree (``foo -> ../bar/foo``) extract as they are. With ``strip_top``, a link that would point
above the single top-level directory (``pkg-1.0/x -> ../y``) is refused too, since that
directory becomes the tree.

Nothing is left behind on failure: the archive is unpacked into a scratch directory beside
``dest`` that is removed on any error. A full disk, a read-only or unwritable destination is
reported as such, naming the directory (the download is fine and is kept); only a damaged
archive is worth fetching again.
"""

from __future__ import annotations

import errno
import lzma
import os
import shutil
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from fwbuild.errors import UnpackError

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


def _check_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Python's ``data`` filter, after _Layout.admit: normalises modes and drops owners."""
    return tarfile.data_filter(member, dest)


def _why(exc: tarfile.TarError) -> str:
    member = getattr(exc, "tarinfo", None)
    entry = f"entry {member.name!r}" if member is not None else "an entry"
    reasons = {
        tarfile.AbsolutePathError: "has an absolute path",
        tarfile.OutsideDestinationError: "would land outside the tree",
        tarfile.SpecialFileError: "is a device file or FIFO",
        tarfile.AbsoluteLinkError: "is a link to an absolute path",
        tarfile.LinkOutsideDestinationError: "is a link pointing outside the tree",
    }
    for kind, reason in reasons.items():
        if isinstance(exc, kind):
            return f"{entry} {reason}"
    return f"{entry} is unsafe ({exc})"


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
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(staging, members=_checked(tar, layout), filter=_check_member)
            # tarfile stops at the end-of-archive blocks, before the end of the compressed
            # stream, whose checksum (gzip's CRC, bz2's, xz's) is therefore never verified:
            # read the rest so a damaged archive is an error, not a silently altered tree.
            while tar.fileobj is not None and tar.fileobj.read(1 << 20):
                pass
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
    except tarfile.FilterError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnpackError(
            f"refusing to unpack {archive}: {_why(exc)}. A source archive must only hold regular "
            "files, directories and links that stay inside its tree; check where it came from",
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


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a local source tree (an override) into ``dest``, leaving VCS metadata behind."""
    shutil.copytree(
        src,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".hg", ".svn"),
    )
