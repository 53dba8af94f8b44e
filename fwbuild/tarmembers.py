"""Writing tar members that the caller has already checked, alike on every Python 3.11.

Python gained extraction filters (PEP 706: ``extractall(filter=...)``, ``tarfile.data_filter``)
in 3.11.4; Debian 12's own ``python3`` is 3.11.2 and has neither, so code that relies on them
fails there with a TypeError or an AttributeError. The engine does not need them: its callers
check every member by name before it is written (``fwbuild.unpack``'s rules, the build cache's),
and what they still want from ``tarfile`` is only "write these members, with the modes and
owners given here". So the members are rewritten here, as copies, and ``tarfile`` takes them as
they are: ``filter="fully_trusted"`` where filters exist, its only behaviour where they do not.
One path on every version, so what the suite proves on one holds on the other.
"""

from __future__ import annotations

import copy
import os
import tarfile
from collections.abc import Iterable, Iterator

HAS_FILTERS = hasattr(tarfile, "data_filter")


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def data_mode(member: tarfile.TarInfo, umask: int) -> int:
    """The mode ``tarfile``'s ``data`` filter gives an entry: no set-id or sticky bits, no group
    or other write, owner read-write for files (and executable by nobody unless by the owner),
    directories the mode a new directory gets, links 0777 (never applied to a symbolic link)."""
    if member.isreg() or member.islnk():
        mode = member.mode & 0o755
        if not mode & 0o100:
            mode &= ~0o111
        return mode | 0o600
    if member.isdir():
        return 0o777 & ~umask
    return 0o777


def owned_here(member: tarfile.TarInfo, mode: int | None = None) -> tarfile.TarInfo:
    """A copy of ``member`` owned by this process's user and group (so root extracting chowns to
    itself, not to the archive's owners), with ``mode`` if given. Names are emptied: ``tarfile``
    would look them up before the numbers."""
    owned = copy.copy(member)
    owned.uid, owned.gid = os.geteuid(), os.getegid()
    owned.uname = owned.gname = ""
    if mode is not None:
        owned.mode = mode
    return owned


def with_data_modes(members: Iterable[tarfile.TarInfo]) -> Iterator[tarfile.TarInfo]:
    """``members`` with the ``data`` filter's modes, owned by the user extracting them."""
    umask = current_umask()
    for member in members:
        yield owned_here(member, data_mode(member, umask))


def extract_as_given(tar: tarfile.TarFile, dest: os.PathLike[str] | str,
                     members: Iterable[tarfile.TarInfo]) -> None:  # fmt: skip
    """Write ``members`` (checked and rewritten by the caller) into ``dest`` exactly as given."""
    if HAS_FILTERS:
        tar.extractall(dest, members=members, filter="fully_trusted")
    else:
        tar.extractall(dest, members=members)
