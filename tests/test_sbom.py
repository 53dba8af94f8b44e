"""The image's SBOM, ``output/sbom.spdx.json``: valid SPDX 2.3 and complete.

Validated against the official SPDX 2.3 JSON schema (spdx-spec v2.3 ``schemas/spdx-schema.json``,
as the lib4sbom package ships it) and with SPDX's own validator (spdx-tools), on the generated
project (plus a package of our own code, which has no download) and on the real board's recipes.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Iterator
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from support.doitrun import run_doit
from support.genpkgs import Dist, add_own_code_package, make_project
from support.httpserver import FaultServer

from fwbuild.project import Project
from fwbuild.sbom import FILE_NAME, sbom_document

REPO = Path(__file__).resolve().parents[1]
OWN_PATCH = "patches/hello/1.0/0001-patched-greeting.patch"


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, mirror_root: Path, dist: Dist
) -> Iterator[tuple[Path, str]]:
    with FaultServer(mirror_root) as srv:
        project = make_project(tmp_path_factory.mktemp("sbom"), dist, srv.url)
        add_own_code_package(project)
        run = run_doit(project, "rootfs")
        assert run.returncode == 0, run.output
        yield project, srv.url


@pytest.fixture(scope="module")
def sbom(built: tuple[Path, str]) -> dict[str, Any]:
    project, _ = built
    return json.loads((project / "output" / FILE_NAME).read_text())


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment doit ran with (support.doitrun.doit_env): no FWBUILD_* settings."""
    for name in list(os.environ):
        if name.startswith("FWBUILD_") or name == "ROOTFS_DIR":
            monkeypatch.delenv(name)
    return monkeypatch


def spdx_schema() -> dict[str, Any]:
    text = (resources.files("lib4sbom") / "schemas" / "spdx" / "2.3-schema.json").read_text()
    schema = json.loads(text)
    assert schema["$id"] == "http://spdx.org/rdf/terms/2.3" and schema["title"] == "SPDX 2.3"
    return schema


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(
        spdx_schema(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def spdx_tools_messages(text: str, where: Path) -> list[str]:
    where.write_text(text)
    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(where)))]


def sha(path: Path, algo: str) -> str:
    return hashlib.new(algo, path.read_bytes()).hexdigest()


def checksums(entry: dict[str, Any]) -> dict[str, str]:
    return {c["algorithm"]: c["checksumValue"] for c in entry.get("checksums", [])}


def relationships(sbom: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
        for r in sbom["relationships"]
    }


def by_name(sbom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in sbom["packages"]}


def test_valid_against_the_official_spdx_schema(sbom: dict[str, Any]) -> None:
    assert sbom["spdxVersion"] == "SPDX-2.3"
    assert schema_errors(sbom) == []


@pytest.mark.unit
def test_valid_for_spdx_tools(built: tuple[Path, str], tmp_path: Path) -> None:
    project, url = built
    text = (project / "output" / FILE_NAME).read_text()
    # spdx-tools' URL pattern wants a host name with a top-level domain; ours is 127.0.0.1:port
    assert (
        spdx_tools_messages(text.replace(url, "https://mirror.example.org"), tmp_path / "s.json")
        == []
    )


@pytest.mark.unit
def test_every_package_with_version_licence_url_and_digest(
    built: tuple[Path, str], sbom: dict[str, Any], dist: Dist
) -> None:
    _, url = built
    packages = by_name(sbom)
    for name in ("hello", "libgreet"):
        tarball = f"{name}-1.0.tar.gz"
        pkg = packages[name]
        assert pkg["versionInfo"] == "1.0"
        assert pkg["licenseDeclared"] == pkg["licenseConcluded"] == "MIT"
        assert pkg["downloadLocation"] == f"{url}/upstream/{tarball}"  # the recipe's first URL
        assert pkg["packageFileName"] == tarball
        assert checksums(pkg) == {"SHA256": dist.sha256(tarball)}
    notes = packages["notes"]  # our own code: no download, no archive digest
    assert notes["versionInfo"] == "2" and notes["licenseDeclared"] == "MIT"
    assert notes["downloadLocation"] == "NOASSERTION" and "checksums" not in notes
    assert "src/notes" in notes["sourceInfo"]
    described = {p["name"] for p in sbom["packages"] if p["SPDXID"].startswith("SPDXRef-Package-")}
    assert described == {"hello", "libgreet", "notes"}


@pytest.mark.unit
def test_relationships_of_image_and_packages(sbom: dict[str, Any]) -> None:
    ids = {name: p["SPDXID"] for name, p in by_name(sbom).items()}
    rels = relationships(sbom)
    image = ids["testboard-firmware"]
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", image) in rels
    assert (image, "CONTAINS", ids["hello"]) in rels
    assert (image, "CONTAINS", ids["libgreet"]) in rels
    assert (image, "DEPENDS_ON", ids["notes"]) in rels  # it puts no file into the image
    assert (ids["hello"], "DEPENDS_ON", ids["libgreet"]) in rels


@pytest.mark.unit
def test_patches_in_order_with_their_digests(
    built: tuple[Path, str], sbom: dict[str, Any], dist: Dist
) -> None:
    project, url = built
    packages = by_name(sbom)
    hello = packages["hello"]["SPDXID"]
    applied = {a for a, kind, b in relationships(sbom) if kind == "PATCH_APPLIED" and b == hello}
    # the downloaded patch: its URL and the digest the recipe pins
    downloaded = packages["hello-1.0-extra.patch.gz"]
    assert downloaded["downloadLocation"] == f"{url}/upstream/hello-1.0-extra.patch.gz"
    assert checksums(downloaded) == {"SHA256": dist.sha256("hello-1.0-extra.patch.gz")}
    assert "patch 1 of 2" in downloaded["comment"]
    # ours: named as in the project, with its SHA-256 (and the SHA-1 SPDX requires of a file)
    own = project / OWN_PATCH
    files = {f["fileName"]: f for f in sbom["files"]}
    ours = files[f"./{OWN_PATCH}"]
    assert checksums(ours) == {"SHA1": sha(own, "sha1"), "SHA256": sha(own, "sha256")}
    assert "patch 2 of 2" in ours["comment"]
    assert applied == {downloaded["SPDXID"], ours["SPDXID"]}
    assert not any(kind == "PATCH_APPLIED" and b != hello for _, kind, b in relationships(sbom))


@pytest.mark.unit
def test_toolchain_identity(
    built: tuple[Path, str], sbom: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    project, _ = built
    toolchains = [p for p in sbom["packages"] if p["SPDXID"].startswith("SPDXRef-Toolchain-")]
    assert len(toolchains) == 1
    zig = toolchains[0]
    assert zig["name"] == "zig" and zig["versionInfo"] == metadata.version("ziglang")
    identity = json.loads(zig["comment"].removeprefix("fwbuild toolchain identity: "))
    loaded = Project.load(project / "configs" / "board.toml")
    assert identity == loaded.toolchain.identity()  # the same identity the stamps hold
    assert identity["cpu"] == "i586" and identity["target"] == "x86-linux-musl"
    rels = relationships(sbom)
    for name in ("hello", "libgreet", "notes"):
        assert (zig["SPDXID"], "BUILD_TOOL_OF", by_name(sbom)[name]["SPDXID"]) in rels


@pytest.mark.unit
def test_describes_the_output_files_and_is_in_sha256sums(
    built: tuple[Path, str], sbom: dict[str, Any]
) -> None:
    project, _ = built
    output = project / "output"
    image = by_name(sbom)["testboard-firmware"]["SPDXID"]
    files = {f["fileName"]: f for f in sbom["files"]}
    rels = relationships(sbom)
    for name in ("rootfs.tar", "rootfs.cpio.gz", "manifest.json"):
        entry = files[f"./{name}"]
        assert checksums(entry) == {
            "SHA1": sha(output / name, "sha1"),
            "SHA256": sha(output / name, "sha256"),
        }
        assert (image, "CONTAINS", entry["SPDXID"]) in rels
    assert "./sbom.spdx.json" not in files and "./sha256sums" not in files
    sums = (output / "sha256sums").read_text().splitlines()
    assert f"{sha(output / FILE_NAME, 'sha256')}  {FILE_NAME}" in sums


@pytest.mark.unit
def test_reproducible(
    built: tuple[Path, str], sbom: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    project, _ = built
    text = (project / "output" / FILE_NAME).read_text()
    assert str(project.parent) not in text  # no build path
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sbom["creationInfo"]["created"] == created  # no wall clock
    # made again from the same inputs: the same bytes
    loaded = Project.load(project / "configs" / "board.toml")
    assert json.dumps(sbom_document(loaded, project / "output"), indent=2) + "\n" == text
    # SOURCE_DATE_EPOCH is its only time; the namespace follows the content
    clean_env.setenv("SOURCE_DATE_EPOCH", "1100000000")
    later = sbom_document(loaded, project / "output")
    assert later["creationInfo"]["created"] == "2004-11-09T11:33:20Z"
    assert later["documentNamespace"] != sbom["documentNamespace"]


def test_real_board_recipes_make_a_valid_sbom(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """Every real recipe's licence is an SPDX expression (names not on the list: LicenseRef-)."""
    for name, sub in (
        ("FWBUILD_BUILD_DIR", "build"),
        ("FWBUILD_DL_DIR", "dl"),
        ("FWBUILD_OUTPUT_DIR", "output"),
        ("FWBUILD_PKI_DIR", "pki"),
        ("FWBUILD_SECRETS", "secrets.toml"),
        ("ROOTFS_DIR", "rootfs"),
    ):
        clean_env.setenv(name, str(tmp_path / sub))
    project = Project.load(REPO / "configs" / "siso.toml", REPO)
    document = sbom_document(project)
    assert schema_errors(document) == []
    assert spdx_tools_messages(json.dumps(document), tmp_path / "real.spdx.json") == []
    packages = by_name(document)
    for name, pkg in project.packages.items():
        assert packages[name]["versionInfo"] == pkg.version
        first = pkg.active_sources()[:1]
        if first and first[0].urls and pkg.local_source is None:
            assert packages[name]["downloadLocation"] == first[0].urls[0]
        else:
            assert packages[name]["downloadLocation"] == "NOASSERTION"
    assert str(tmp_path) not in json.dumps(document)
