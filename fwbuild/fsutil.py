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
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fwbuild.errors import ConfigError


def file_digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of the file at ``path`` (hashlib algorithm ``algo``), read in blocks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algo).hexdigest()


@contextlib.contextmanager
def atomic_file(path: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary file written beside ``path`` and renamed over it once complete.

    ``mode``: the file's permissions (default: a new file's, from the umask). The temporary
    name is unique to the process, so two writers never write into one temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            yield fh
        if mode is not None:
            os.chmod(tmp, mode)
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
