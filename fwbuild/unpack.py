"""Safe extraction of source tarballs (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz).

An archive entry that would land outside the tree (absolute path, ``..``, a link pointing out),
or a device file, is refused with the entry's name: a source tarball has no business holding
one, and extracting it could overwrite the build host's files. Python's ``data`` extraction
filter does the checking; we turn its verdict into a message that names the archive.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from fwbuild.errors import UnpackError


def _check_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Refuse what a source archive has no business holding; then Python's ``data`` filter."""
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        raise tarfile.AbsolutePathError(member)
    if ".." in Path(name).parts:
        raise tarfile.OutsideDestinationError(member, os.path.join(dest, name))
    if member.ischr() or member.isblk() or member.isfifo():
        raise tarfile.SpecialFileError(member)
    if member.issym() or member.islnk():
        if member.linkname.startswith("/"):
            raise tarfile.AbsoluteLinkError(member)
        base = os.path.dirname(name) if member.issym() else ""
        resolved = os.path.normpath(os.path.join(base, member.linkname))
        if resolved == ".." or resolved.startswith("../"):
            raise tarfile.LinkOutsideDestinationError(member, resolved)
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


def extract_tarball(archive: Path, dest: Path, *, package: str, strip_top: bool = True) -> None:
    """Extract ``archive`` into the new directory ``dest`` (which must not exist yet).

    With ``strip_top`` the archive's single top-level directory (``ppp-2.4.3/``) is removed, as
    with ``tar --strip-components=1``; an archive with several top-level entries is kept as is.
    """
    staging = dest.with_name(dest.name + ".unpack")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter=_check_member)
    except tarfile.FilterError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnpackError(
            f"refusing to unpack {archive}: {_why(exc)}. A source archive must only hold regular "
            "files, directories and links that stay inside its tree; check where it came from",
            package=package,
        ) from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnpackError(
            f"cannot unpack {archive}: {exc}. The file may be truncated or not a tar archive; "
            "delete it from the download directory and fetch it again",
            package=package,
        ) from None
    top = list(staging.iterdir())
    if strip_top and len(top) == 1 and top[0].is_dir() and not top[0].is_symlink():
        top[0].rename(dest)
        staging.rmdir()
    else:
        staging.rename(dest)


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a local source tree (an override) into ``dest``, leaving VCS metadata behind."""
    shutil.copytree(
        src,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".hg", ".svn"),
    )


def remove_tree(path: Path) -> None:
    """Remove a directory quickly and safely: rename it aside first so a crash leaves no half."""
    if not path.exists() and not path.is_symlink():
        return
    trash = path.with_name(f".{path.name}.trash-{os.getpid()}")
    if trash.exists():
        shutil.rmtree(trash)
    path.rename(trash)
    shutil.rmtree(trash)


def replace_tree(new: Path, dest: Path) -> None:
    """Put the finished tree ``new`` where ``dest`` is: the old one is renamed aside first and
    removed last, so at no moment is a half-written tree under the real name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = dest.with_name(f".{dest.name}.old")
    remove_tree(old)
    if dest.exists() or dest.is_symlink():
        dest.rename(old)
    new.rename(dest)
    remove_tree(old)
