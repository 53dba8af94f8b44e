"""Durable fallbacks (fwbuild.alternatives): a board builds from a local "internet" whose
upstream hosts are dead, with no overrides file and no pin step, and says which file it used.

The "internet" is an HTTP server (tests/support/httpserver.py) and a ``git daemon``
(tests/support/gitserver.py) on 127.0.0.1, holding the generated packages of
tests/support/genpkgs.py:

* libgreet's upstream URL answers 404 and no mirror has its tarball; its recipe lists a git
  fallback (the same files committed to a repository), as recipes/l2tpd.py does;
* hello's downloaded patch has no digest (like the original MPPE/MPPC kernel patch) and a
  pinned fallback that is one file of a repository at a commit, as recipes/linux.py does.

The recipes name ``https://git.example.invalid/…``; git's own insteadOf, in the environment
doit runs with, points that at the test server, the way a user points it at a local copy.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.doitrun import DoitRun, doit_env, run_doit
from support.genpkgs import LIBGREET_FILES, Dist, make_project
from support.gitserver import GitDaemon, make_repo, publish
from support.httpserver import FaultServer
from test_sbom import checksums, schema_errors, spdx_tools_messages

from fwbuild.gitsource import fetch_into, git_url
from fwbuild.project import Project
from fwbuild.sbom import FILE_NAME, sbom_document

BASE = "https://git.example.invalid/"
PATCH = "hello-1.0-extra.patch.gz"


@pytest.fixture(scope="module")
def internet(
    tmp_path_factory: pytest.TempPathFactory, dist: Dist
) -> Iterator[tuple[FaultServer, GitDaemon, dict[str, Any]]]:
    base = tmp_path_factory.mktemp("internet")
    web = base / "web"
    (web / "upstream").mkdir(parents=True)
    (web / "upstream" / "hello-1.0.tar.gz").write_bytes(dist.files["hello-1.0.tar.gz"])
    (web / "primary").mkdir()
    (web / "backup").mkdir()
    import gzip

    files: dict[str, str | bytes | tuple[str, str]] = dict(LIBGREET_FILES)
    files["configure"] = ("x", LIBGREET_FILES["configure"])  # executable, as in the tarball
    libgreet = make_repo(base / "libgreet", files)
    patch_text = gzip.decompress(dist.files[PATCH])
    patches = make_repo(base / "patches", {"README": "patches\n", "hello/extra.patch": patch_text})
    publish(base / "libgreet", base / "git", "libgreet.git")
    publish(base / "patches", base / "git", "patches.git")
    with FaultServer(web) as srv, GitDaemon(base / "git") as daemon:
        env = daemon.redirect(BASE)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            # The maintainer's step: export once and pin what it gives (as for recipes/).
            tree = git_url(BASE + "libgreet.git", libgreet)
            blob = git_url(BASE + "patches.git", patches, "hello/extra.patch")
            scratch = base / "pin"
            scratch.mkdir()
            name = f"libgreet-1.0-git-{libgreet[:8]}.tar"
            facts = {
                "tree": tree,
                "blob": blob,
                "tree_file": name,
                "blob_file": f"hello-extra-git-{patches[:8]}.patch",
                "tree_sha": fetch_into(
                    tree, scratch / f"{name}.part", algos=["sha256"], deadline=60
                )["sha256"],
                "blob_sha": fetch_into(blob, scratch / "p.part", algos=["sha256"], deadline=60)[
                    "sha256"
                ],
                "libgreet": libgreet,
                "patches": patches,
                "env": env,
                "web": web,
            }
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        yield srv, daemon, facts


def _fallback_project(root: Path, dist: Dist, srv: FaultServer, facts: dict[str, Any]) -> Path:
    project = make_project(root, dist, srv.url)
    recipes = project / "recipes"
    libgreet = (recipes / "libgreet.py").read_text()
    libgreet = libgreet.replace(
        "from fwbuild.recipe import AutotoolsPackage, Source",
        "from fwbuild.recipe import AutotoolsPackage, GitSource, Source",
    )
    libgreet = re.sub(
        r'Source\("libgreet-1.0.tar.gz", urls=\("[^"]+",\), sha256="([0-9a-f]+)"\),',
        lambda m: (
            f'Source("libgreet-1.0.tar.gz", urls=("{srv.url}/dead/libgreet-1.0.tar.gz",), '
            f'sha256="{m[1]}", fallbacks=(GitSource("{BASE}libgreet.git", "{facts["libgreet"]}", '
            f'filename="{facts["tree_file"]}", sha256="{facts["tree_sha"]}"),)),'
        ),
        libgreet,
    )
    (recipes / "libgreet.py").write_text(libgreet)
    hello = (recipes / "hello.py").read_text()
    hello = hello.replace(
        "from fwbuild.recipe import MakePackage, Patch, Source",
        "from fwbuild.recipe import GitSource, MakePackage, Patch, Source",
    )
    hello = re.sub(
        r'\n\s*sha256="[0-9a-f]+",\n(\s*)when="\+extra",',
        (
            f'\\n\\1when="+extra",\\n\\1fallbacks=(GitSource("{BASE}patches.git", '
            f'"{facts["patches"]}", path="hello/extra.patch", filename="{facts["blob_file"]}", '
            f'sha256="{facts["blob_sha"]}"),),'
        ),
        hello,
    )
    (recipes / "hello.py").write_text(hello)
    assert "fallbacks=" in libgreet and "fallbacks=" in hello
    return project


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
    dist: Dist,
    internet: tuple[FaultServer, GitDaemon, dict[str, Any]],
) -> tuple[Path, DoitRun, dict[str, Any]]:
    srv, _, facts = internet
    project = _fallback_project(tmp_path_factory.mktemp("fallbacks"), dist, srv, facts)
    run = run_doit(project, "rootfs", env=doit_env(**facts["env"]))
    assert run.returncode == 0, run.output
    return project, run, facts


def test_builds_from_fallbacks_without_overrides_or_pins(
    built: tuple[Path, DoitRun, dict[str, Any]],
) -> None:
    project, run, facts = built
    dl = project / "dl"
    assert (dl / facts["tree_file"]).is_file() and (dl / facts["blob_file"]).is_file()
    assert not (dl / "libgreet-1.0.tar.gz").exists() and not (dl / PATCH).exists()
    assert not (project / "configs" / "pins.lock").exists()
    assert "rootfs" in run.ran
    assert (project / "build" / "rootfs" / "usr" / "bin" / "hello").is_file()
    # the fallback patch was applied (it adds extra.c), and the build says what it used
    assert (project / "build" / "hello" / "src" / "extra.c").is_file()
    assert f"using its fallback {facts['blob_file']}" in run.output
    # the fetch stamp records which file stood for each declared one
    stamp = json.loads((project / "build" / "libgreet" / "stamps" / "fetch.json").read_text())
    assert stamp["used"] == {"libgreet-1.0.tar.gz": facts["tree_file"]}
    assert f"using the fallback {facts['tree_file']}" in run.output


@pytest.mark.unit
def test_sbom_and_report_name_the_fallback(
    built: tuple[Path, DoitRun, dict[str, Any]], tmp_path: Path
) -> None:
    project, _, facts = built
    sbom = json.loads((project / "output" / FILE_NAME).read_text())
    packages = {p["name"]: p for p in sbom["packages"]}
    libgreet = packages["libgreet"]
    assert libgreet["downloadLocation"] == facts["tree"]
    assert libgreet["packageFileName"] == facts["tree_file"]
    assert checksums(libgreet) == {"SHA256": facts["tree_sha"]}  # of the file actually used
    assert "fallback for libgreet-1.0.tar.gz" in libgreet["sourceInfo"]
    patch = packages[facts["blob_file"]]
    assert patch["downloadLocation"] == facts["blob"]
    assert checksums(patch) == {"SHA256": facts["blob_sha"]}
    assert schema_errors(sbom) == []
    text = json.dumps(sbom).replace(BASE, "https://git.example.org/")
    text = re.sub(r"http://127\.0\.0\.1:\d+", "https://mirror.example.org", text)
    assert spdx_tools_messages(text, tmp_path / "s.json") == []

    report = json.loads((project / "build" / "report.json").read_text())
    used = {(s["package"], s["declared"]): s for s in report["sources"]}
    assert used[("libgreet", "libgreet-1.0.tar.gz")] == {
        "package": "libgreet",
        "declared": "libgreet-1.0.tar.gz",
        "used": facts["tree_file"],
        "kind": "fallback",
        "location": facts["tree"],
    }
    assert used[("hello", PATCH)]["used"] == facts["blob_file"]
    assert used[("hello", "hello-1.0.tar.gz")]["kind"] == "upstream"


def test_second_run_is_a_noop_and_offline_works(
    built: tuple[Path, DoitRun, dict[str, Any]],
) -> None:
    project, _, _ = built
    again = run_doit(project, "rootfs", env=doit_env(FWBUILD_OFFLINE="1"))
    assert again.returncode == 0, again.output
    assert again.ran == set(), again.output


def test_pinning_the_original_makes_the_recipe_prefer_it(
    built: tuple[Path, DoitRun, dict[str, Any]],
    dist: Dist,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user who has the original (an override, or a pin) gets it, and exactly the package
    that uses it is fetched again."""
    project, _, facts = built
    for name in list(os.environ):
        if name.startswith("FWBUILD_"):
            monkeypatch.delenv(name)
    board = project / "configs" / "board.toml"
    before = Project.load(board, project)
    hello_patch = before.packages["hello"].active_patches()[0]
    assert before.local_file(hello_patch).name == facts["blob_file"]
    original = tmp_path / PATCH
    original.write_bytes(dist.files[PATCH])
    overrides = tmp_path / "overrides.toml"
    overrides.write_text(
        f'[files."{PATCH}"]\npath = "{original}"\nsha256 = "{dist.sha256(PATCH)}"\n'
    )
    monkeypatch.setenv("FWBUILD_OVERRIDES", str(overrides))
    after = Project.load(project / "configs" / "board.toml", project)
    assert after.local_file(after.packages["hello"].active_patches()[0]) == original
    assert after.key("hello", "fetch") != before.key("hello", "fetch")
    assert after.key("libgreet", "fetch") == before.key("libgreet", "fetch")
    # The SBOM states it as a local file with a vouched digest, like a package tarball override.
    tarball = tmp_path / "libgreet-own.tar.gz"
    tarball.write_bytes(dist.files["libgreet-1.0.tar.gz"])
    overrides.write_text(
        overrides.read_text()
        + f'[packages.libgreet]\ntarball = "{tarball}"\n'
        + f'sha256 = "{dist.sha256("libgreet-1.0.tar.gz")}"\n'
    )
    packages = {p["name"]: p for p in sbom_document(Project.load(board, project))["packages"]}
    patch = packages[PATCH]
    assert patch["downloadLocation"] == "NOASSERTION"
    assert checksums(patch) == {"SHA256": dist.sha256(PATCH)}
    assert f"the local file {original}, named in the overrides file {overrides}" in patch["comment"]
    assert "downloaded" not in patch["comment"]
    libgreet = packages["libgreet"]
    assert libgreet["downloadLocation"] == "NOASSERTION"
    assert (
        f"the local file {tarball}, named in the overrides file {overrides}"
        in (libgreet["sourceInfo"])
    )

    # Offline, with the original copied into dl/ and pinned by its digest: preferred too.
    monkeypatch.delenv("FWBUILD_OVERRIDES")
    shutil.copy(original, project / "dl" / PATCH)
    run = run_doit(project, "pin:hello", env=doit_env(FWBUILD_OFFLINE="1"))
    assert run.returncode == 0, run.output
    try:
        pinned = Project.load(project / "configs" / "board.toml", project)
        assert pinned.key("hello", "fetch") != before.key("hello", "fetch")
        fetched = run_doit(project, "fetch:hello", env=doit_env(FWBUILD_OFFLINE="1"))
        assert fetched.returncode == 0, fetched.output
        assert pinned.local_file(pinned.packages["hello"].active_patches()[0]).name == PATCH
    finally:
        (project / "configs" / "pins.lock").unlink(missing_ok=True)
        (project / "dl" / PATCH).unlink(missing_ok=True)


def test_every_alternative_failing_names_each(
    internet: tuple[FaultServer, GitDaemon, dict[str, Any]], dist: Dist, tmp_path: Path
) -> None:
    srv, _, facts = internet
    project = _fallback_project(tmp_path / "p", dist, srv, facts)
    # No git server reachable: insteadOf points nowhere useful (the real host does not exist).
    run = run_doit(project, "fetch:libgreet", env=doit_env())
    assert run.returncode != 0
    assert "none of the 2 alternatives of libgreet-1.0.tar.gz could be had" in run.output
    assert "/dead/libgreet-1.0.tar.gz" in run.output and facts["tree"] in run.output
    assert not list((project / "dl").glob("libgreet*"))


@pytest.mark.unit
def test_a_fallbacks_digest_is_part_of_the_fetch_key(
    internet: tuple[FaultServer, GitDaemon, dict[str, Any]],
    dist: Dist,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    srv, _, facts = internet
    for name in list(os.environ):
        if name.startswith("FWBUILD_"):
            monkeypatch.delenv(name)
    project = _fallback_project(tmp_path / "p", dist, srv, facts)
    board = project / "configs" / "board.toml"
    before = Project.load(board, project)
    recipe = project / "recipes" / "libgreet.py"
    recipe.write_text(recipe.read_text().replace(facts["tree_sha"], "0" * 64))
    after = Project.load(board, project)
    assert after.key("libgreet", "fetch") != before.key("libgreet", "fetch")
    assert after.key("hello", "fetch") == before.key("hello", "fetch")
    assert after.key("hello", "configure") != before.key("hello", "configure")  # links libgreet


@pytest.mark.unit
def test_unpinned_message_names_the_offline_ways(tmp_path: Path) -> None:
    from fwbuild.errors import DownloadError
    from fwbuild.fetch import FetchSettings, RemoteFile, fetch

    settings = FetchSettings(dl_dir=tmp_path / "dl", offline=True, progress="none")
    remote = RemoteFile("orig.patch.gz", ("http://gone.invalid/orig.patch.gz",), {})
    with pytest.raises(DownloadError) as info:
        fetch(remote, settings, package="linux", log=io.StringIO())
    text = str(info.value)
    assert "`doit pin:linux`" in text  # with the network
    assert '[files."orig.patch.gz"]' in text and "FWBUILD_OVERRIDES" in text  # without
    assert f"copy it to {tmp_path / 'dl' / 'orig.patch.gz'}" in text and "FWBUILD_OFFLINE=1" in text
