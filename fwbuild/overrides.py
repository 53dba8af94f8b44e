"""Local overrides: build a package from a tree or tarball the user has, not from the mirrors.

The file is TOML, outside the repository, named by ``FWBUILD_OVERRIDES`` (Buildroot's
``local.mk`` / ``<PKG>_OVERRIDE_SRCDIR`` is the model):

    [packages.ppp]
    srcdir = "/src/ppp"                  # a source tree, copied fresh for every patch stage

    [packages.l2tpd]
    tarball = "/src/l2tpd-0.69.tar.gz"   # a tarball of your own …
    sha256 = "…"                         # … with the digest you vouch for

    [files."linux-2.6.11-mppe-mppc-1.3.patch.gz"]
    path = "/src/mppe-mppc.patch.gz"     # any single download (a patch, a second tarball)
    sha256 = "…"

Unknown sections and keys (``tarbal``, ``sah256``) and digests of the wrong length are errors
naming the file and the nearest known key (``fwbuild.schema.OverridesFile``).

A directory override is fingerprinted by its files' paths, sizes and modification times, so
editing a file there re-runs the package from its patch stage.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fwbuild.config import _schema_code, validation_key
from fwbuild.errors import ConfigError
from fwbuild.recipe import DIGEST_ALGOS


@dataclass(frozen=True)
class LocalFile:
    path: Path
    digests: dict[str, str]


@dataclass(frozen=True)
class PackageOverride:
    srcdir: Path | None = None
    tarball: LocalFile | None = None


@dataclass(frozen=True)
class Overrides:
    file: Path | None
    packages: dict[str, PackageOverride]
    files: dict[str, LocalFile]
    # The digest of the file's contents that passed the schema (remembered like the board's).
    key: str | None = None

    @classmethod
    def none(cls) -> Overrides:
        return cls(None, {}, {})


def _digests(table: dict[str, Any], where: str, file: Path) -> dict[str, str]:
    found = {a: str(table[a]).lower() for a in DIGEST_ALGOS if a in table}
    if not found:
        raise ConfigError(
            f'{file}: {where} names a local file but no digest; add sha256 = "…" '
            "(the digest you vouch for, e.g. from `sha256sum`)"
        )
    return found


def _existing(raw: Any, where: str, file: Path) -> Path:
    if not isinstance(raw, str):
        raise ConfigError(f"{file}: {where} must be a path string")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (file.parent / path).resolve()
    if not path.exists():
        raise ConfigError(f"{file}: {where} = {raw!r} does not exist; fix the path or remove it")
    return path


def load_overrides(
    file: Path | None, checked: set[str] | frozenset[str] = frozenset()
) -> Overrides:
    """The overrides file, checked against its schema unless these contents passed before."""
    if file is None:
        return Overrides.none()
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"FWBUILD_OVERRIDES names {file}, which does not exist; create it or unset the variable"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"overrides file {file} is not valid TOML: {exc}") from None
    key = validation_key("overrides", _schema_code(), data)
    if key not in checked:
        from fwbuild.schema import OverridesFile, validate

        validate(
            OverridesFile,
            data,
            [(file, data)],
            what="overrides file",
            hint=(
                'Known: [packages.NAME] srcdir or tarball (+ sha256), [files."FILENAME"] path '
                "(+ sha256)."
            ),
        )
    packages: dict[str, PackageOverride] = {}
    for name, table in data.get("packages", {}).items():
        where = f"[packages.{name}]"
        if ("srcdir" in table) == ("tarball" in table):
            raise ConfigError(f"{file}: {where} needs exactly one of srcdir or tarball")
        if "srcdir" in table:
            srcdir = _existing(table["srcdir"], f"{where} srcdir", file)
            if not srcdir.is_dir():
                raise ConfigError(f"{file}: {where} srcdir {srcdir} is not a directory")
            packages[name] = PackageOverride(srcdir=srcdir)
        else:
            tarball = _existing(table["tarball"], f"{where} tarball", file)
            packages[name] = PackageOverride(
                tarball=LocalFile(tarball, _digests(table, where, file))
            )
    files = {
        name: LocalFile(
            _existing(table.get("path"), f'[files."{name}"] path', file),
            _digests(table, f'[files."{name}"]', file),
        )
        for name, table in data.get("files", {}).items()
    }
    return Overrides(file, packages, files, key)


def tree_fingerprint(root: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every file below root, sorted; VCS directories left out."""
    entries: list[tuple[str, int, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in {".git", ".hg", ".svn"})
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *links]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            entries.append((os.path.relpath(path, root), st.st_size, st.st_mtime_ns))
    entries.sort()
    return entries
