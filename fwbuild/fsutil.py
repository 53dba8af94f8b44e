"""Small file-system helpers every part of the engine needs, written once.

- ``atomic_write`` / ``atomic_file``: a file appears whole or not at all (written under a
  temporary name beside it, then renamed over it; the temporary file is removed on failure);
- ``file_digest``: the hex digest of a file, read in blocks (an image is not read whole);
- ``source_date_epoch``: the one timestamp reproducible outputs carry.

Directories built under a temporary name and swapped in are ``fwbuild.trees.staged_tree`` (they
need the build's ownership rule).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fwbuild.errors import ConfigError


def file_digest(path: Path | int, algo: str = "sha256") -> str:
    """Hex digest of the file at ``path`` (hashlib algorithm ``algo``), read in blocks.

    ``path`` may be an open descriptor (read from where it stands, left open): a file opened
    without following links is hashed without naming it again."""
    if isinstance(path, int):
        with os.fdopen(os.dup(path), "rb") as fh:
            return hashlib.file_digest(fh, algo).hexdigest()
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algo).hexdigest()


def file_digests(path: Path, *algos: str) -> dict[str, str]:
    """Several hex digests of one file, ``{algo: hex}``, in one read."""
    hashers = {algo: hashlib.new(algo) for algo in algos}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            for h in hashers.values():
                h.update(block)
    return {algo: h.hexdigest() for algo, h in hashers.items()}


def _umask() -> int:
    old = os.umask(0o022)  # reading the umask means setting it: done once, at import
    os.umask(old)
    return old


_UMASK = _umask()


@contextlib.contextmanager
def atomic_file(path: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file written beside ``path`` and renamed over it once complete.

    The temporary file has a new unique name (made with O_EXCL: never an existing file or a link
    someone put there) and is private until ``mode`` is set (default: a new file's mode under the
    umask), so a file meant to be 0600 is never readable by others, not even half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            os.fchmod(fh.fileno(), 0o666 & ~_UMASK if mode is None else mode)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` whole or not at all (see ``atomic_file``)."""
    with atomic_file(path, mode) as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` (default 0): every time stamp a reproducible output carries."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not raw.isdigit():
        raise ConfigError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds")
    return int(raw)


# Less free space than this where a command failed or the build starts: the disk is full.
LOW_SPACE = 1 << 20


def free_bytes(path: Path) -> int | None:
    """Space a write under ``path`` may still use (root may use the blocks kept for root)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    if st.f_blocks == 0:  # a file system that does not count its space (/proc, some FUSE)
        return None
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize
