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
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fwbuild.fsutil import atomic_write, file_digests, source_date_epoch
from fwbuild.project import Project
from fwbuild.provenance import (
    NOASSERTION,
    AppliedPatch,
    origin,
    patch_series,
    project_relative,
    used,
)
from fwbuild.recipe import Package
from fwbuild.trees import MARKER

FILE_NAME = "sbom.spdx.json"
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


class _Document:
    """An SPDX document being assembled: its packages, files and relationships, in order."""

    def __init__(self) -> None:
        self.ids = _Ids()
        self.packages: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.relationships: list[dict[str, str]] = []
        self.license_refs: list[str] = []

    def relate(self, a: str, kind: str, b: str) -> None:
        self.relationships.append(_relationship(a, kind, b))

    def image(self, project: Project, out_files: list[Path]) -> dict[str, Any]:
        """The firmware image itself, which the document describes."""
        board, target = project.board, project.board.target
        variants = ", ".join(
            f"{k}={'on' if v else 'off'}" for k, v in sorted(board.variants.items())
        )
        entry: dict[str, Any] = {
            "SPDXID": self.ids.make("Image", board.name),
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
        self.packages.append(entry)
        self.relate("SPDXRef-DOCUMENT", "DESCRIBES", entry["SPDXID"])
        return entry

    def toolchains(self, project: Project) -> dict[str, str]:
        """The toolchains that compiled something, as packages; their ids by toolchain name."""
        found: dict[str, str] = {}
        for tname, toolchain in sorted(project.used_toolchains().items()):
            identity = toolchain.identity()
            if identity.get("kind") == "none":
                continue  # nothing was compiled
            found[tname] = self.ids.make("Toolchain", tname)
            self.packages.append(_toolchain_package(found[tname], identity))
        return found

    def package(self, project: Project, pkg: Package, pid: str, series: list[AppliedPatch]) -> None:
        """A package of the board: where it came from, its licence and patches."""
        lic, refs = spdx_license(pkg.license)
        self.license_refs += [r for r in refs if r not in self.license_refs]
        where = origin(project, pkg)
        entry: dict[str, Any] = {
            "SPDXID": pid,
            "name": pkg.name,
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
        self.packages.append(entry)

    def extra_sources(self, project: Project, pkg: Package, pid: str) -> None:
        """The sources after the first, each a package the package is generated from."""
        for declared in pkg.active_sources()[1:]:
            extra, (extra_url, _) = used(project, declared)
            sid = self.ids.make("Source", f"{pkg.name}-{extra.filename}")
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
            self.packages.append(source)
            self.relate(pid, "GENERATED_FROM", sid)

    def patches(self, project: Project, pkg: Package, pid: str, series: list[AppliedPatch]) -> None:
        """The patch series: ours as files, downloaded ones as packages of their own."""
        for number, patch in enumerate(series, 1):
            sid = self.ids.make("Patch", f"{pkg.name}-{patch.filename}")
            comment = f"patch {number} of {len(series)} applied to {pkg.label} (-p{patch.strip})"
            if patch.ours:
                self.files.append(
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
                self.packages.append(downloaded)
            self.relate(sid, "PATCH_APPLIED", pid)

    def outputs(self, image: dict[str, Any], out_files: list[Path]) -> None:
        """The image's files (rootfs.tar, bzImage, …), and SPDX's verification code of them."""
        sha1s = []
        for path in out_files:
            fid = self.ids.make("Output", path.name)
            digests = file_digests(path, "sha1", "sha256")
            sha1s.append(digests["sha1"])
            self.files.append(
                {"SPDXID": fid, "fileName": f"./{path.name}", "checksums": _checksums(digests)}
            )
            self.relate(image["SPDXID"], "CONTAINS", fid)
        if out_files:  # SPDX's verification code: the SHA-1 of the sorted SHA-1s of its files
            code = hashlib.sha1("".join(sorted(sha1s)).encode()).hexdigest()
            image["packageVerificationCode"] = {"packageVerificationCodeValue": code}

    def finish(self, board_name: str) -> dict[str, Any]:
        """The whole document, its namespace derived from its content (no random UUID)."""
        created = datetime.datetime.fromtimestamp(source_date_epoch(), datetime.UTC)
        document: dict[str, Any] = {
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": f"{board_name}-firmware",
            "documentNamespace": "",
            "creationInfo": {
                "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "creators": [f"Tool: fwbuild-{_tool_version()}"],
            },
            "packages": self.packages,
            "files": self.files,
            "relationships": self.relationships,
        }
        if self.license_refs:
            document["hasExtractedLicensingInfos"] = [
                {
                    "licenseId": ref,
                    "name": ref.removeprefix("LicenseRef-"),
                    "extractedText": UNLISTED_LICENSES.get(
                        ref.removeprefix("LicenseRef-"),
                        "Named by a recipe; see the package's licence files (doit legal-info).",
                    ),
                }
                for ref in self.license_refs
            ]
        # Unique per content, identical for identical content.
        digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).digest()
        name = _ID_CHARS.sub("-", board_name)
        document["documentNamespace"] = (
            f"https://spdx.org/spdxdocs/{name}-firmware-{uuid.UUID(bytes=digest[:16], version=5)}"
        )
        return document


def sbom_document(project: Project, outputs: Path | None = None) -> dict[str, Any]:
    """The SPDX document of the board's image; ``outputs``: the directory of its image files."""
    doc = _Document()
    out_files = (
        sorted(p for p in outputs.iterdir() if p.is_file() and p.name not in NOT_DESCRIBED)
        if outputs
        else []
    )
    image = doc.image(project, out_files)
    toolchain_ids = doc.toolchains(project)
    package_ids = {name: doc.ids.make("Package", name) for name in project.packages}
    for name, pkg in project.packages.items():
        pid = package_ids[name]
        series = patch_series(project, pkg)
        doc.package(project, pkg, pid, series)
        contains = bool(pkg.target_files or pkg.image_files)
        doc.relate(image["SPDXID"], "CONTAINS" if contains else "DEPENDS_ON", pid)
        for dep in pkg.depends:
            doc.relate(pid, "DEPENDS_ON", package_ids[dep])
        if pkg.toolchain in toolchain_ids:
            doc.relate(toolchain_ids[pkg.toolchain], "BUILD_TOOL_OF", pid)
        doc.extra_sources(project, pkg, pid)
        doc.patches(project, pkg, pid, series)
    doc.outputs(image, out_files)
    return doc.finish(project.board.name)


def write_sbom(project: Project, directory: Path) -> str:
    """Write ``sbom.spdx.json`` describing the image files in ``directory``; returns its name."""
    document = sbom_document(project, directory)
    atomic_write(directory / FILE_NAME, json.dumps(document, indent=2) + "\n")
    return FILE_NAME
