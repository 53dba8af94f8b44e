"""Which file stands for a declared source: the recipe's own, an override, or a fallback.

A recipe's ``Source`` (or ``Patch``) may list ``fallbacks``: other files that can take its place
when it cannot be had, such as the tree of a public git copy at a pinned commit
(``GitSource``, fwbuild.gitsource) when the 2005 host of a tarball is gone. A fallback that
yields different bytes than the upstream file is a *different source*: it has its own file name
in the download directory and its own digest, and the SBOM and the build report name the one
that was used.

The alternatives of a source are the source itself followed by its fallbacks, in order. The one
a build uses is, first match wins:

1. one named in the overrides file (``[files."<name>"]``): the user vouches for it;
2. one already in the download directory and verified (its sidecar matches), so a build with a
   complete ``dl/`` never touches the network and never changes its mind;
3. one in the download directory whose sidecar is stale (hashed again when fetched);
4. else the first *pinned* one, in order: that is what a download starts with, and the next is
   tried only when every mirror of the one before failed.

An alternative without a digest (the original kernel MPPE/MPPC patch, which nobody published a
digest of) is skipped until it is pinned (``doit pin:<package>`` or an override); once pinned it
comes first again, so the recipe prefers it. The choice is a function of the overrides, the pins
and the download directory, so ``fetch``, ``patch``, the SBOM and the report agree on it without
passing it around; the fetch stage's key covers every alternative's name and digests, so
changing any of them re-runs the package from its fetch stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fwbuild.errors import ConfigError, DownloadError
from fwbuild.recipe import Package, Source

if TYPE_CHECKING:
    from fwbuild.fetch import FetchSettings
    from fwbuild.project import Project

NOASSERTION = "NOASSERTION"


def alternatives(source: Source) -> list[Source]:
    return [source, *source.fallbacks]


def chosen(project: Project, source: Source) -> Source:
    """The alternative of ``source`` the build uses (see the module docstring)."""
    alts = alternatives(source)
    if len(alts) == 1:
        return source
    from fwbuild.fetch import is_verified

    for alt in alts:
        if alt.filename in project.overrides.files:
            return alt
    dl = project.board.paths.downloads
    pinned = [a for a in alts if project.remote_digests(a)]
    for alt in pinned:
        if is_verified(dl / alt.filename, project.remote_digests(alt)):
            return alt
    for alt in pinned:
        if (dl / alt.filename).is_file():
            return alt
    return pinned[0] if pinned else source


def is_pinned(project: Project, source: Source) -> bool:
    """Whether some alternative of ``source`` can be verified (a digest or an override)."""
    return any(
        a.filename in project.overrides.files or project.remote_digests(a)
        for a in alternatives(source)
    )


def fetch_inputs(project: Project, source: Source) -> list[Any]:
    """The fallbacks' part of the fetch stage's key: name, digests and override of each."""
    out: list[Any] = []
    for alt in source.fallbacks:
        local = project.overrides.files.get(alt.filename)
        out.append(
            [
                alt.filename,
                local.digests if local else project.remote_digests(alt),
                list(alt.urls),
                str(local.path) if local else None,
            ]
        )
    return out


def fetch_source(
    project: Project, source: Source, settings: FetchSettings, *, package: str, log: TextIO
) -> Source:
    """Fetch the alternative of ``source`` the build will use; return it.

    The caller has handled an override of ``source`` itself. Raises DownloadError: the
    downloader's own error when there is one alternative (or only one is pinned), else one
    naming every alternative and why each failed.
    """
    from fwbuild.fetch import RemoteFile, fetch

    alts = alternatives(source)
    pkg = project.packages[package]
    for alt in alts:
        local = project.overrides.files.get(alt.filename)
        if local:
            verify_local(project, pkg, local.path, local.digests)
            return alt

    def remote(alt: Source) -> RemoteFile:
        return RemoteFile(alt.filename, alt.urls, project.remote_digests(alt))

    pinned = [a for a in alts if project.remote_digests(a)]
    if not pinned:
        fetch(remote(source), settings, package=package, log=log)  # the unpinned error
        return source
    first = chosen(project, source)
    if first is not pinned[0]:
        pinned.remove(first)
        pinned.insert(0, first)  # already in the download directory: no network
    if source not in pinned:
        log.write(
            f"{package}: {source.filename} has no digest yet (pin it with `doit pin:{package}` "
            f"to use it); using its fallback {first.filename} ({where(first)})\n"
        )
    failures: list[tuple[Source, DownloadError]] = []
    for alt in pinned:
        try:
            fetch(remote(alt), settings, package=package, log=log)
        except DownloadError as exc:
            failures.append((alt, exc))
            if alt is not pinned[-1]:
                log.write(
                    f"{package}: {alt.filename} could not be had; trying the fallback "
                    f"{pinned[pinned.index(alt) + 1].filename}\n"
                )
            continue
        if alt is not source and failures:
            log.write(f"{package}: using the fallback {alt.filename} ({where(alt)})\n")
        return alt
    if len(failures) == 1:
        raise failures[0][1]
    lines = [
        f"none of the {len(failures)} alternatives of {source.filename} could be had (the "
        "recipe's file and its fallbacks, each a different file with its own digest):"
    ]
    for alt, error in failures:
        text = str(error).replace("\n", "\n    ")
        lines.append(f"  {alt.filename}: {text}")
    from fwbuild.errors import DigestMismatch

    cls = (
        DigestMismatch if any(isinstance(e, DigestMismatch) for _, e in failures) else DownloadError
    )
    raise cls("\n".join(lines), package=package)


def where(alt: Source) -> str:
    """How a source reads in a note: the repository and commit for the git method, else its URL."""
    if alt.urls and alt.urls[0].startswith("git+"):
        from fwbuild.gitsource import describe

        return describe(alt.urls[0])
    return alt.urls[0] if alt.urls else "no URL"


def download_location(project: Project, source: Source) -> tuple[str, str]:
    """(SPDX downloadLocation, note) of the alternative of ``source`` that is used.

    The recipe's first URL for a download (a git fallback's URL is already SPDX's VCS form,
    ``git+https://host/repo.git@<commit>#<path>``); NOASSERTION for an override, whose path the
    note gives and whose digest is the user's word.
    """
    alt = chosen(project, source)
    local = project.overrides.files.get(alt.filename)
    if local:
        # SPDX has no download location for a file on this machine (file:// is not one): say
        # NOASSERTION and where it is, as for a whole-package tarball override.
        return NOASSERTION, local_note(project, alt.filename, Path(local.path))
    url = alt.urls[0] if alt.urls else NOASSERTION
    if alt is source:
        return url, ""
    return url, f"fallback for {source.filename}: {where(alt)}"


def local_note(project: Project, what: str, path: Path) -> str:
    """How an override reads in the SBOM: the same words for a file and a package tarball."""
    return (
        f"{what}: the local file {path}, named in the overrides file {project.overrides.file}; "
        "its digest is the one vouched for there"
    )


def sources_used(project: Project) -> list[dict[str, str]]:
    """For the build report: every declared download of the board and the file that stood for
    it, with where that came from (``kind``: upstream, fallback or override)."""
    out: list[dict[str, str]] = []
    for name, pkg in project.packages.items():
        override = project.overrides.packages.get(name)
        for index, source in enumerate([*pkg.active_sources(), *pkg.active_patches()]):
            if index == 0 and override:
                local = override.tarball.path if override.tarball else override.srcdir
                out.append(
                    {
                        "package": name,
                        "declared": source.filename,
                        "used": str(local),
                        "kind": "override",
                        "location": NOASSERTION,
                    }
                )
                continue
            alt = chosen(project, source)
            location, _ = download_location(project, source)
            kind = (
                "override"
                if alt.filename in project.overrides.files
                else ("upstream" if alt is source else "fallback")
            )
            out.append(
                {
                    "package": name,
                    "declared": source.filename,
                    "used": alt.filename,
                    "kind": kind,
                    "location": location,
                }
            )
    return out


def verify_local(project: Project, pkg: Package, path: Path, digests: dict[str, str]) -> None:
    """A local file (an override) matches the digest its override gives, or a ConfigError."""
    from fwbuild.fetch import verify

    wrong = verify(path, digests)
    if wrong:
        expected = ", ".join(f"{a} {d}" for a, d in digests.items())
        actual = ", ".join(f"{a} {d}" for a, d in wrong.items())
        raise ConfigError(
            f"local file {path} (from {project.overrides.file}) does not match the digest given "
            f"there: expected {expected}, got {actual}; update the digest if you changed the file",
            package=pkg.name,
        )
