"""Stamps: the small JSON files that say a stage (or the rootfs, or the toolchain check) finished
with a given key, and the digests keys are made of.

A stamp holds ``{"key": …, …}`` with the key first, so a current stamp is recognised from its
first bytes. doit writes its own database only when it exits; these files, written atomically
after the work succeeded, are what a build killed with SIGKILL resumes from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fwbuild.fsutil import atomic_write

# Bump when the engine changes what a stage produces, so every stamp made before is stale.
ENGINE_STAMP_VERSION = 1


def digest_json(value: Any) -> str:
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def read_stamp(path: Path | str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.loads(fh.read())
    except (FileNotFoundError, ValueError):
        return None


def write_stamp(path: Path, key: str, **extra: Any) -> None:
    """Write a stamp atomically, private to its owner: a stage's inputs may be digests of secrets
    (a passwords file), and a digest of a password is a password to a dictionary attack."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_mode & 0o077:
        path.parent.chmod(0o700)  # a stamps directory made before stamps were private
    atomic_write(path, json.dumps({"key": key, **extra}, indent=1), mode=0o600)


def stamp_matches(path: Path | str, key: str) -> bool:
    # write_stamp puts the key first: a current stamp is recognised from its first bytes, not
    # parsed whole (a no-op asks this of every stage of every package)
    head = f'{{\n "key": "{key}"'.encode()
    try:
        with open(path, "rb") as fh:
            if fh.read(len(head)) == head:
                return True
    except FileNotFoundError:
        return False
    stamp = read_stamp(path)  # any other layout (an older engine's): read it whole
    return stamp is not None and stamp.get("key") == key
