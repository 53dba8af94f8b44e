"""The pin lock file: digests for files whose upstream publishes none.

A recipe may list a source without a digest (the kernel MPPE/MPPC patch has none published
anywhere). Such a file is never downloaded and trusted silently: ``doit pin:<package>`` downloads
it once, prints its digest and records it here; the user reviews and commits the lock file, and
from then on the file is verified like any other.

The file is JSON, sorted, one entry per file name::

    {"files": {"name.patch.gz": {"sha256": "…", "size": 1234, "url": "…", "pinned": "2026-12-01"}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwbuild.errors import ConfigError
from fwbuild.fsutil import atomic_write


@dataclass
class Pins:
    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Pins:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except ValueError as exc:
            raise ConfigError(f"pin lock file {path} is not valid JSON: {exc}") from None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            raise ConfigError(f'pin lock file {path} has no "files" object')
        return cls(path, files)

    def digests(self, filename: str) -> dict[str, str]:
        entry = self.files.get(filename, {})
        return {k: v for k, v in entry.items() if k in {"sha256", "sha512", "sha1", "md5"}}

    def size(self, filename: str) -> int | None:
        """The recorded size of ``filename`` in bytes (the downloader's cap for it), if any."""
        size = self.files.get(filename, {}).get("size")
        if size is None:
            return None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(
                f"pin lock file {self.path}: the size of {filename} must be a whole number of "
                f"bytes, not {size!r}; fix it or pin the file again with `doit pin:<package>`"
            )
        return size

    def record(self, filename: str, entry: dict[str, Any]) -> None:
        """Add or replace one entry and rewrite the file atomically."""
        current = Pins.load(self.path)  # another pin may have landed since we loaded
        current.files[filename] = entry
        self.files = current.files
        text = json.dumps({"files": dict(sorted(self.files.items()))}, indent=2) + "\n"
        atomic_write(self.path, text, mode=0o644)
