"""Where a package came from and what was applied to it: the provenance the SBOM
(``fwbuild.sbom``) and the licence bundle (``fwbuild.legal``) both report, computed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fwbuild.fsutil import file_digests
from fwbuild.recipe import Package, Source
from fwbuild.stamps import digest_json

if TYPE_CHECKING:
    from fwbuild.project import Project

NOASSERTION = "NOASSERTION"  # SPDX's word for "not known / not said", also in legal's manifest


@dataclass(frozen=True)
class Origin:
    """Where a package's source came from."""

    filename: str | None  # the source archive; None for our own code or no source at all
    url: str  # the first URL of its first source, or NOASSERTION
    digests: dict[str, str]  # the archive's digests (recipe, pins lock or overrides file)
    note: str  # what else a reader should know ("a local source tree", …), or ""
    tree_sha256: str | None = None  # our own code (local_source): a digest of its file list


@dataclass(frozen=True)
class AppliedPatch:
    """One patch of a package's series, in the order it is applied."""

    filename: str
    ours: bool  # from patches/<pkg>/<version>/ (else downloaded)
    url: str | None
    digests: dict[str, str]
    strip: int
    path: Path  # where it is on this machine (the download directory, or patches/)
    note: str = ""  # a fallback or an override standing for the recipe's file (alternatives)


def origin(project: Project, pkg: Package) -> Origin:
    override = project.overrides.packages.get(pkg.name)
    if override and override.srcdir:
        return Origin(None, NOASSERTION, {}, "built from a local source tree (overrides file)")
    if override and override.tarball:
        from fwbuild.alternatives import local_note

        return Origin(
            override.tarball.path.name,
            NOASSERTION,
            override.tarball.digests,
            local_note(project, "the package's source archive", override.tarball.path),
        )
    if pkg.local_source is not None:
        tree = project.local_source_digest(pkg) or []
        return Origin(
            None,
            NOASSERTION,
            {},
            f"our own code, kept in the project under {pkg.local_source}",
            tree_sha256=digest_json(tree),
        )
    sources = pkg.active_sources()
    if not sources:
        return Origin(None, NOASSERTION, {}, "no source: the recipe makes its files itself")
    first, (url, note) = used(project, sources[0])
    local = project.overrides.files.get(first.filename)
    return Origin(
        first.filename,
        url,
        local.digests if local else project.remote_digests(first),
        note,
    )


def used(project: Project, source: Source) -> tuple[Source, tuple[str, str]]:
    """The file that stands for ``source`` (the recipe's, an override or a fallback: see
    fwbuild.alternatives), with its downloadLocation and a note saying which it is."""
    from fwbuild.alternatives import chosen, download_location

    return chosen(project, source), download_location(project, source)


def patch_series(project: Project, pkg: Package) -> list[AppliedPatch]:
    """Downloaded patches in declaration order, then ours in name order (as the patch stage)."""
    series: list[AppliedPatch] = []
    for declared in pkg.active_patches():
        p, (url, note) = used(project, declared)
        local = project.overrides.files.get(p.filename)
        series.append(
            AppliedPatch(
                p.filename,
                ours=False,
                url=None if url == NOASSERTION else url,
                digests=local.digests if local else project.remote_digests(p),
                strip=declared.strip,
                path=project.local_file(declared),
                note=note,
            )
        )
    for path in pkg.own_patches:
        series.append(
            AppliedPatch(path.name, True, None, file_digests(path, "sha1", "sha256"), 1, path)
        )
    return series


def project_relative(project: Project, path: Path) -> str:
    """A path as the project names it (no build paths in anything reproducible)."""
    try:
        return path.resolve().relative_to(project.board.paths.project).as_posix()
    except ValueError:
        return path.name
