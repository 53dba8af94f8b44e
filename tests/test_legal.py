"""``doit legal-info``: the licence bundle (Buildroot's legal-info) of the generated project.

It needs only the patched sources (fetch and patch stages), never a build.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from support.doitrun import run_doit
from support.genpkgs import MIT_LICENSE, Dist, add_own_code_package, make_project
from support.httpserver import FaultServer

OWN_PATCH = "patches/hello/1.0/0001-patched-greeting.patch"


@pytest.fixture
def project(tmp_path: Path, server: FaultServer, dist: Dist) -> Path:
    proj = make_project(tmp_path / "proj", dist, server.url)
    add_own_code_package(proj)
    return proj


def test_bundle(project: Path, server: FaultServer, dist: Dist) -> None:
    lock = project / "configs" / "pins.lock"
    lock.write_text(json.dumps({"files": {"unused.patch": {"sha256": "0" * 64, "size": 1}}}))
    run = run_doit(project, "legal-info")
    assert run.returncode == 0, run.output
    assert {"patch:hello", "patch:libgreet", "patch:notes", "legal-info"} <= run.ran
    assert not any(t.startswith(("configure:", "build:", "install:")) for t in run.ran)
    info = project / "output" / "legal-info"

    # licence files, from the patched trees, at their paths there
    for name in ("hello", "libgreet"):
        assert (info / f"{name}-1.0" / "LICENSE").read_text() == MIT_LICENSE.format(name=name)
    # every patch of the series, and the order they are applied in
    patches = info / "hello-1.0" / "patches"
    assert (patches / "0001-patched-greeting.patch").read_bytes() == (
        project / OWN_PATCH
    ).read_bytes()
    downloaded = dist.files["hello-1.0-extra.patch.gz"]
    assert (patches / "hello-1.0-extra.patch.gz").read_bytes() == downloaded
    series = (patches / "series").read_text().splitlines()
    assert [line.split()[:2] for line in series] == [
        ["hello-1.0-extra.patch.gz", "-p1"],
        ["0001-patched-greeting.patch", "-p1"],
    ]
    assert f"sha256:{dist.sha256('hello-1.0-extra.patch.gz')}" in series[0]
    assert not (info / "libgreet-1.0" / "patches").exists()

    # the manifest
    with (info / "manifest.csv").open(newline="") as fh:
        rows = {r["package"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == ["hello", "libgreet", "notes"]
    for name in ("hello", "libgreet"):
        tarball = f"{name}-1.0.tar.gz"
        assert rows[name] | {"patches": ""} == {
            "package": name,
            "version": "1.0",
            "license": "MIT",
            "license_files": "LICENSE",
            "source": tarball,
            "source_url": f"{server.url}/upstream/{tarball}",
            "digest": f"sha256:{dist.sha256(tarball)}",
            "patches": "",
        }
    assert rows["hello"]["patches"] == "hello-1.0-extra.patch.gz 0001-patched-greeting.patch"
    notes = rows["notes"]  # our own code: no URL, a digest of its file list
    assert (notes["version"], notes["license"], notes["source"]) == ("2", "MIT", "src/notes")
    assert notes["source_url"] == "" and notes["digest"].startswith("tree-sha256:")
    assert "notes-2 (MIT) declares no license_files" in run.output  # a warning, not an error

    # the pin lock, and checksums of everything
    assert (info / "pins.lock").read_text() == lock.read_text()
    listed = {}
    for line in (info / "sha256sums").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(info).as_posix() for p in info.rglob("*") if p.is_file()}
    assert set(listed) == files - {"sha256sums"}
    for name, digest in listed.items():
        assert hashlib.sha256((info / name).read_bytes()).hexdigest() == digest

    # run again: replaced whole, nothing left over
    (info / "stray").write_text("x")
    again = run_doit(project, "legal-info")
    assert again.returncode == 0, again.output
    assert not (info / "stray").exists()


def test_missing_licence_file_is_named(project: Path) -> None:
    recipe = project / "recipes" / "hello.py"
    text = recipe.read_text()
    assert 'license_files = ("LICENSE",)' in text
    recipe.write_text(
        text.replace('license_files = ("LICENSE",)', 'license_files = ("LICENSE", "COPYING")')
    )
    run = run_doit(project, "legal-info")
    assert run.returncode != 0
    assert "hello-1.0: licence file COPYING" in run.output and str(recipe) in run.output
    assert "Traceback" not in run.output
    assert not (project / "output" / "legal-info").exists()  # all or nothing
    assert "FAILED legal-info: legal-info: missing licence files: hello-1.0:" in run.output
