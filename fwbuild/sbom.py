"""The image's software bill of materials: SPDX 2.3 JSON, ``<output>/sbom.spdx.json``.

The rootfs stage writes it beside the images it describes. For every package of the board it
gives the name, version and licence (the recipe's SPDX expression), where the source came from
(the first URL of its first source; NOASSERTION for our own code and packages without sources),
the source's digests, the patches applied in order (downloaded ones as packages of their own with
their URL and digests, ours as files with their SHA-1 and SHA-256) and the toolchain that built it
(its identity, the same one that goes into the stamps)::

    DOCUMENT  DESCRIBES      Image
    Image     CONTAINS       <package>        (it puts files into the image)
    Image     DEPENDS_ON     <package>        (build-time only: a library linked statically)
    <package> DEPENDS_ON     <dependency>
    <patch>   PATCH_APPLIED  <package>
    <toolchain> BUILD_TOOL_OF <package>
    <package> GENERATED_FROM <extra source>   (sources after the first)
    Image     CONTAINS       <output file>    (rootfs.tar, bzImage, …: SHA-1 and SHA-256)

Reproducible: the same inputs give the same bytes. There is no wall clock (``created`` is
SOURCE_DATE_EPOCH, default 0), no build path (files are named relative to the project or the
output directory) and the document namespace is derived from the content.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fwbuild.fsutil import file_digests, source_date_epoch
from fwbuild.project import Project, digest_json
from fwbuild.recipe import Package, Source
from fwbuild.trees import MARKER

FILE_NAME = "sbom.spdx.json"
NOASSERTION = "NOASSERTION"
SPDX_ALGOS = {"sha1": "SHA1", "sha256": "SHA256", "sha512": "SHA512", "md5": "MD5"}
# Licence names recipes use that are not on the SPDX licence list: written as LicenseRef-<name>,
# explained by this text (SPDX requires every LicenseRef to be explained in the document).
UNLISTED_LICENSES = {
    "Public-Domain": "Public domain: the authors of these files claim no copyright on them.",
}
# Files of the output directory that are not described: the SBOM itself, the checksums of all
# and the build's ownership marker (fwbuild.trees).
NOT_DESCRIBED = frozenset({FILE_NAME, "sha256sums", MARKER})
_TOKEN = re.compile(r"[()]|[^\s()]+")
_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")


# --- what a package was made from (shared with fwbuild.legal) ---------------------------------
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
        series.append(AppliedPatch(path.name, True, None, _hashes(path), 1, path))
    return series


def project_relative(project: Project, path: Path) -> str:
    """A path as the project names it (no build paths in anything reproducible)."""
    try:
        return path.resolve().relative_to(project.board.paths.project).as_posix()
    except ValueError:
        return path.name


def spdx_license(expression: str) -> tuple[str, list[str]]:
    """The recipe's licence as an SPDX expression, and the LicenseRef-s it uses."""
    if expression.strip().lower() in {"", "unknown", "noassertion"}:
        return NOASSERTION, []
    tokens: list[str] = []
    refs: list[str] = []
    for token in _TOKEN.findall(expression):
        if token in UNLISTED_LICENSES:
            token = f"LicenseRef-{token}"
        if token.startswith("LicenseRef-") and token not in refs:
            refs.append(token)
        tokens.append(token)
    return " ".join(tokens).replace("( ", "(").replace(" )", ")"), refs


# --- the document ----------------------------------------------------------------------------
def _hashes(path: Path) -> dict[str, str]:
    return file_digests(path, "sha1", "sha256")


def _checksums(digests: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"algorithm": SPDX_ALGOS[a], "checksumValue": digests[a].lower()}
        for a in sorted(digests)
        if a in SPDX_ALGOS
    ]


def _relationship(a: str, kind: str, b: str) -> dict[str, str]:
    return {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}


class _Ids:
    """SPDX identifiers: ``SPDXRef-<kind>-<name>`` with only the characters SPDX allows."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, kind: str, name: str) -> str:
        base = f"SPDXRef-{kind}-{_ID_CHARS.sub('-', name).strip('-') or 'x'}"
        spdx_id, n = base, 1
        while spdx_id in self.used:
            n += 1
            spdx_id = f"{base}-{n}"
        self.used.add(spdx_id)
        return spdx_id


def _tool_version() -> str:
    try:
        return metadata.version("fwbuild")
    except metadata.PackageNotFoundError:
        return "unknown"


def _toolchain_package(spdx_id: str, identity: dict[str, object]) -> dict[str, Any]:
    kind = str(identity.get("kind", "unknown"))
    name = {"zig": "zig", "gcc": f"{identity.get('prefix', '')}gcc"}.get(kind, kind)
    version = identity.get("zig") if kind == "zig" else None
    if kind == "gcc" and isinstance(identity.get("gcc"), str):
        words = str(identity["gcc"]).split()
        version = words[-1] if words and words[-1][:1].isdigit() else None
    entry: dict[str, Any] = {"SPDXID": spdx_id, "name": name}
    if version:
        entry["versionInfo"] = str(version)
    entry.update(
        downloadLocation=NOASSERTION,
        filesAnalyzed=False,
        primaryPackagePurpose="APPLICATION",
        licenseConcluded=NOASSERTION,
        licenseDeclared=NOASSERTION,
        copyrightText=NOASSERTION,
        comment="fwbuild toolchain identity: " + json.dumps(identity, sort_keys=True),
    )
    return entry


def external_refs(pkg: Package, url: str) -> list[dict[str, str]]:
    """The package's CPEs (SECURITY ``cpe23Type``, what vulnerability scanners match on: see
    fwbuild.cve) and its purl (``pkg:generic``, with the download URL when it has one)."""
    from fwbuild.cve import package_cpes

    refs = [
        {"referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": c}
        for c in dict.fromkeys(cpe.formatted() for cpe in package_cpes(pkg))
    ]
    purl = f"pkg:generic/{quote(pkg.name, safe='')}@{quote(pkg.version, safe='')}"
    if url != NOASSERTION:
        purl += f"?download_url={quote(url, safe='')}"
    refs.append(
        {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}
    )
    return refs


def sbom_document(project: Project, outputs: Path | None = None) -> dict[str, Any]:
    """The SPDX document of the board's image; ``outputs``: the directory of its image files."""
    board = project.board
    ids = _Ids()
    packages: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    relationships: list[dict[str, str]] = []
    license_refs: list[str] = []

    image = ids.make("Image", board.name)
    out_files = (
        sorted(p for p in outputs.iterdir() if p.is_file() and p.name not in NOT_DESCRIBED)
        if outputs
        else []
    )
    target = board.target
    variants = ", ".join(f"{k}={'on' if v else 'off'}" for k, v in sorted(board.variants.items()))
    image_entry: dict[str, Any] = {
        "SPDXID": image,
        "name": f"{board.name}-firmware",
        "downloadLocation": NOASSERTION,
        "primaryPackagePurpose": "FIRMWARE",
        "filesAnalyzed": bool(out_files),
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "comment": f"firmware of board {board.name}: {target.triplet}, CPU {target.cpu}, "
        f"libc {target.libc}; variants: {variants or 'none'}",
    }
    packages.append(image_entry)
    relationships.append(_relationship("SPDXRef-DOCUMENT", "DESCRIBES", image))

    toolchain_ids: dict[str, str] = {}
    for tname, toolchain in sorted(project.used_toolchains().items()):
        identity = toolchain.identity()
        if identity.get("kind") == "none":
            continue  # nothing was compiled
        toolchain_ids[tname] = ids.make("Toolchain", tname)
        packages.append(_toolchain_package(toolchain_ids[tname], identity))

    package_ids = {name: ids.make("Package", name) for name in project.packages}
    for name, pkg in project.packages.items():
        pid = package_ids[name]
        lic, refs = spdx_license(pkg.license)
        license_refs += [r for r in refs if r not in license_refs]
        where = origin(project, pkg)
        series = patch_series(project, pkg)
        entry: dict[str, Any] = {
            "SPDXID": pid,
            "name": name,
            "versionInfo": pkg.version,
            "downloadLocation": where.url,
            "filesAnalyzed": False,
            "licenseConcluded": lic,
            "licenseDeclared": lic,
            "copyrightText": NOASSERTION,
        }
        if where.filename:
            entry["packageFileName"] = where.filename
        if where.digests:
            entry["checksums"] = _checksums(where.digests)
        if pkg.homepage:
            entry["homepage"] = pkg.homepage
        info = [where.filename or where.note]
        if where.filename and where.note:
            info.append(where.note)
        if where.tree_sha256:
            info.append(f"file list sha256 {where.tree_sha256}")
        if series:
            info.append(
                f"{len(series)} patch(es) applied in order: "
                + ", ".join(f"{p.filename} ({'ours' if p.ours else 'downloaded'})" for p in series)
            )
        entry["sourceInfo"] = "; ".join(info)
        entry["externalRefs"] = external_refs(pkg, where.url)
        packages.append(entry)
        contains = bool(pkg.target_files or pkg.image_files)
        relationships.append(_relationship(image, "CONTAINS" if contains else "DEPENDS_ON", pid))
        relationships += [_relationship(pid, "DEPENDS_ON", package_ids[d]) for d in pkg.depends]
        if pkg.toolchain in toolchain_ids:
            relationships.append(_relationship(toolchain_ids[pkg.toolchain], "BUILD_TOOL_OF", pid))

        for declared in pkg.active_sources()[1:]:
            extra, (extra_url, _) = used(project, declared)
            sid = ids.make("Source", f"{name}-{extra.filename}")
            local = project.overrides.files.get(extra.filename)
            source: dict[str, Any] = {
                "SPDXID": sid,
                "name": extra.filename,
                "downloadLocation": extra_url,
                "filesAnalyzed": False,
                "primaryPackagePurpose": "SOURCE",
                "packageFileName": extra.filename,
                "licenseConcluded": NOASSERTION,
                "licenseDeclared": NOASSERTION,
                "copyrightText": NOASSERTION,
                "comment": f"a further source of {pkg.label}",
            }
            if digests := (local.digests if local else project.remote_digests(extra)):
                source["checksums"] = _checksums(digests)
            packages.append(source)
            relationships.append(_relationship(pid, "GENERATED_FROM", sid))

        for number, patch in enumerate(series, 1):
            sid = ids.make("Patch", f"{name}-{patch.filename}")
            comment = f"patch {number} of {len(series)} applied to {pkg.label} (-p{patch.strip})"
            if patch.ours:
                files.append(
                    {
                        "SPDXID": sid,
                        "fileName": "./" + project_relative(project, patch.path),
                        "checksums": _checksums(patch.digests),
                        "licenseConcluded": NOASSERTION,
                        "copyrightText": NOASSERTION,
                        "comment": f"our {comment}",
                    }
                )
            else:
                downloaded: dict[str, Any] = {
                    "SPDXID": sid,
                    "name": patch.filename,
                    "downloadLocation": patch.url or NOASSERTION,
                    "filesAnalyzed": False,
                    "primaryPackagePurpose": "SOURCE",
                    "packageFileName": patch.filename,
                    "licenseConcluded": NOASSERTION,
                    "licenseDeclared": NOASSERTION,
                    "copyrightText": NOASSERTION,
                    "comment": f"{comment}; {patch.note}"
                    if patch.note
                    else f"downloaded {comment}",
                }
                if patch.digests:
                    downloaded["checksums"] = _checksums(patch.digests)
                packages.append(downloaded)
            relationships.append(_relationship(sid, "PATCH_APPLIED", pid))

    sha1s = []
    for path in out_files:
        fid = ids.make("Output", path.name)
        digests = _hashes(path)
        sha1s.append(digests["sha1"])
        files.append(
            {"SPDXID": fid, "fileName": f"./{path.name}", "checksums": _checksums(digests)}
        )
        relationships.append(_relationship(image, "CONTAINS", fid))
    if out_files:  # SPDX's verification code: the SHA-1 of the sorted SHA-1s of its files
        code = hashlib.sha1("".join(sorted(sha1s)).encode()).hexdigest()
        image_entry["packageVerificationCode"] = {"packageVerificationCodeValue": code}

    created = datetime.datetime.fromtimestamp(source_date_epoch(), datetime.UTC)
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{board.name}-firmware",
        "documentNamespace": "",
        "creationInfo": {
            "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: fwbuild-{_tool_version()}"],
        },
        "packages": packages,
        "files": files,
        "relationships": relationships,
    }
    if license_refs:
        document["hasExtractedLicensingInfos"] = [
            {
                "licenseId": ref,
                "name": ref.removeprefix("LicenseRef-"),
                "extractedText": UNLISTED_LICENSES.get(
                    ref.removeprefix("LicenseRef-"),
                    "Named by a recipe; see the package's licence files (doit legal-info).",
                ),
            }
            for ref in license_refs
        ]
    # Unique per content, identical for identical content (no random UUID).
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).digest()
    name = _ID_CHARS.sub("-", board.name)
    document["documentNamespace"] = (
        f"https://spdx.org/spdxdocs/{name}-firmware-{uuid.UUID(bytes=digest[:16], version=5)}"
    )
    return document


def write_sbom(project: Project, directory: Path) -> str:
    """Write ``sbom.spdx.json`` describing the image files in ``directory``; returns its name."""
    document = sbom_document(project, directory)
    (directory / FILE_NAME).write_text(json.dumps(document, indent=2) + "\n")
    return FILE_NAME
