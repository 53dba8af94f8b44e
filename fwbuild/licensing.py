"""Licence files with digests (Buildroot's ``.hash`` lines for ``LICENSE``): a new upstream version
whose licence text changed stops the build until a person has read the text and recorded it.

A recipe writes ``license_files = {"COPYING": "sha256:<64 hex digits>"}``; the install stage and
``doit legal-info`` compare every file of the patched source tree with its digest. (A plain tuple
of paths is accepted and checks nothing; fwbuild.legal warns about it.)

Kept apart from fwbuild.legal, which needs the whole project: recipes are checked here when their
class is made, on every run, no-op ones included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fwbuild.errors import BuildError, ConfigError

if TYPE_CHECKING:
    from fwbuild.recipe import Package

# Algorithm -> hex digits. sha256 is what `sha256sum` prints and what Buildroot's .hash files use.
ALGORITHMS = {"sha256": 64, "sha512": 128}


def check_digest_syntax(cls: type[Package]) -> None:
    """Refuse, when the recipe loads, a licence digest that could never match."""
    files = cls.__dict__.get("license_files")
    if not isinstance(files, Mapping):
        return
    for rel, digest in files.items():
        algo, _, value = str(digest).partition(":")
        length = ALGORITHMS.get(algo)
        if length is None or len(value) != length or value.strip("0123456789abcdef"):
            raise ConfigError(
                f"recipe {cls.__module__}.{cls.__name__}: license_files[{rel!r}] = {digest!r} is "
                f"not 'sha256:<64 lower-case hex digits>' (or sha512:); write the digest "
                f"`sha256sum {rel}` prints for the file in the source tree, after reading it"
            )


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def license_problems(pkg: Package, srcdir: Path) -> list[str]:
    """Every licence file of ``pkg`` missing from ``srcdir`` or differing from its digest."""
    problems: list[str] = []
    files = pkg.license_files
    digests = files if isinstance(files, Mapping) else dict.fromkeys(files, "")
    for rel, digest in digests.items():
        path = srcdir / rel
        if not path.is_file():
            problems.append(
                f"{pkg.label}: licence file {rel} (license_files of {pkg.recipe_file}) is not in "
                f"its patched source tree {srcdir}; fix license_files or the patch series"
            )
            continue
        if not digest:
            continue
        algo, _, expected = digest.partition(":")
        actual = file_digest(path, algo)
        if actual != expected:
            problems.append(
                f"{pkg.label}: licence file {rel} has changed: license_files in "
                f"{pkg.recipe_file} expects {algo}:{expected}, the file {path} has "
                f"{algo}:{actual}. Read the new text: if the licence (`license = "
                f"{pkg.license!r}`) still holds, put {algo}:{actual} in license_files; if not, "
                "correct `license` too and review what the image may carry"
            )
    return problems


def verify_licenses(pkg: Package, srcdir: Path) -> None:
    """Raise one BuildError listing every licence file that is missing or has changed."""
    problems = license_problems(pkg, srcdir)
    if problems:
        raise BuildError("; ".join(problems), package=pkg.name)
