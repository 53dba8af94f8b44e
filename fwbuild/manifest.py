"""The manifest: every entry of the image (path, type, mode, owner, digest), the truth the image
writers read, and the permissions table that adds to it.

The permissions table (Buildroot's device table, simplified) has one entry a line::

    # path                           type mode uid gid  major minor | link target
    /etc/sysconfig/ppp/chap-secrets  f    0600 0   0
    /var/run                         d    0755 0   0
    /dev/console                     c    0600 0   0    5 1
    /dev/ptyp0                       c    0666 0   0    2 0
    /sbin/init                       l    0777 0   0    ../bin/busybox

``f`` changes an existing file's mode and owner; ``d`` creates a directory; ``c``/``b`` add device
nodes; ``l`` adds a symbolic link. A ``{a..b}`` range in the path, e.g. ``/dev/ptyp{0..15}``,
makes one entry per number (the minor number counts up with it).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fwbuild.errors import ConfigError
from fwbuild.fsutil import atomic_write

if TYPE_CHECKING:
    from fwbuild.project import Project

_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


@dataclass
class Entry:
    path: str  # absolute inside the image, e.g. "/usr/sbin/pppd"
    type: str  # f, d, l, c, b
    mode: int
    uid: int = 0
    gid: int = 0
    package: str = ""
    sha256: str = ""
    size: int = 0
    target: str = ""  # symlink target
    major: int = 0
    minor: int = 0


def parse_permissions(file: Path) -> list[Entry]:
    return [entry for entry, _ in parse_permission_lines(file)]


def parse_permission_lines(file: Path) -> list[tuple[Entry, str]]:
    """The table's entries, each with ``file:line`` for messages."""
    entries: list[tuple[Entry, str]] = []
    for number, raw in enumerate(file.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f"{file}:{number}"
        if len(fields) < 5 or fields[1] not in {"f", "d", "c", "b", "l"}:
            raise ConfigError(
                f"{where}: expected `path type mode uid gid [major minor | target]` with type "
                f"f, d, c, b or l, got {raw.strip()!r}"
            )
        path, kind, mode, uid, gid, *rest = fields
        if not path.startswith("/") or ".." in path.split("/"):
            raise ConfigError(f"{where}: path {path!r} must be absolute and without '..'")
        try:
            numbers = (int(mode, 8), int(uid), int(gid))
        except ValueError:
            raise ConfigError(f"{where}: mode (octal), uid and gid must be numbers") from None
        major = minor = 0
        target = ""
        if kind in {"c", "b"}:
            if len(rest) != 2 or not all(r.isdigit() for r in rest):
                raise ConfigError(f"{where}: device {path} needs `major minor` numbers")
            major, minor = int(rest[0]), int(rest[1])
        elif kind == "l":
            if len(rest) != 1:
                raise ConfigError(f"{where}: link {path} needs exactly one target")
            target = rest[0]
        elif rest:
            raise ConfigError(f"{where}: unexpected fields {rest} for type {kind}")
        match = _RANGE.search(path)
        span = range(int(match[1]), int(match[2]) + 1) if match else [None]
        for offset, n in enumerate(span):
            entries.append(
                (
                    Entry(
                        path=path
                        if n is None or match is None
                        else path[: match.start()] + str(n) + path[match.end() :],
                        type=kind,
                        mode=numbers[0],
                        uid=numbers[1],
                        gid=numbers[2],
                        package="permissions",
                        target=target,
                        major=major,
                        minor=minor + offset,
                    ),
                    where,
                )
            )
    return entries


def manifest_path(project: Project) -> Path:
    rootfs = project.board.paths.rootfs
    return rootfs.with_name(f"{rootfs.name}.manifest.json")


def write_manifest(project: Project, manifest: list[Entry]) -> None:
    path = manifest_path(project)
    # The image's manifest holds no build paths (reproducible); which directories the build made
    # is told by their marker files (fwbuild.trees).
    data = {"entries": [asdict(e) for e in manifest]}
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
