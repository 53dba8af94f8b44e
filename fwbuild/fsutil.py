"""Small file-system helpers every part of the engine needs, written once.

- ``atomic_write``: a file appears whole or not at all (temporary file beside it, then rename);
- ``file_digest``: the hex digest of a file, read in chunks;
- ``staged_dir``: a directory built under a temporary name and removed if the work fails;
- ``source_date_epoch``: the one timestamp reproducible outputs carry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of the file at ``path`` (hashlib algorithm ``algo``), read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algo).hexdigest()
