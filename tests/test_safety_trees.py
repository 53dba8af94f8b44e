"""Never destroy, never escape: the trees the build replaces, links in the rootfs, one build per
build directory, and no secret derivable from world-readable output.

Every attack is made for real and checked against a decoy directory's checksums (paths, modes,
contents, link targets) before and after: a refusal must leave it exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.doitrun import DoitRun, doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer
from test_vpn import board as vpn_board
from test_vpn import env_for as vpn_env

from fwbuild.errors import ConfigError
from fwbuild.trees import (
    MARKER,
    TreeConflict,
    claim,
    claim_build_dir,
    make_guard,
    read_file,
    refusal,
    remove_tree,
    replace_tree,
)

REPO = Path(__file__).resolve().parents[1]

# A recipe of the generated project that keeps something outside the build, the way vpn-pki
# keeps its PKI: the engine learns about it only through ``protected_paths``.
VAULT_RECIPE = """\
import os
from pathlib import Path

from fwbuild.recipe import Package


class Vault(Package):
    name = "vault"
    version = "1"
    license = "MIT"
    toolchain = "none"
    target_files = {"var/*": 0o644}
    dynamic = True

    def runtime_inputs(self):
        return os.environ.get("VAULT_LINK")

    def install(self, ctx):
        link = os.environ.get("VAULT_LINK")  # a package that installs a link to a directory
        if link:
            (ctx.staging / "var").mkdir()
            os.symlink(link, ctx.staging / "var" / "spool")

    def protected_paths(self):
        raw = os.environ.get("VAULT_DIR")
        return {Path(raw): "the vault (VAULT_DIR)"} if raw else {}
"""


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root`` (itself included): mode and content digest or link target."""
    found: dict[str, tuple[int, str]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            what = "link:" + os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        found[path.relative_to(root).as_posix()] = (info.st_mode, what)
    return found


def refused(run: DoitRun, *words: str) -> None:
    assert run.returncode != 0, run.output
    assert "Traceback" not in run.output, run.output
    for word in words:
        assert word in run.output, (word, run.output)


def _add_vault(proj: Path) -> None:
    (proj / "recipes" / "vault.py").write_text(VAULT_RECIPE)
    board = proj / "configs" / "board.toml"
    board.write_text(
        board.read_text().replace('packages = ["hello"]', 'packages = ["hello", "vault"]')
    )


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, mirror_root: Path, dist: Dist
) -> Iterator[Path]:
    """A generated project, built once: the attacks below then only rerun the rootfs stage."""
    with FaultServer(mirror_root) as srv:
        proj = make_project(tmp_path_factory.mktemp("safety") / "proj", dist, srv.url)
        _add_vault(proj)
        run = run_doit(proj, "rootfs")
        assert run.returncode == 0, run.output
        yield proj


# --- 1. the directories the build replaces ------------------------------------------------------
def _pki_decoy(where: Path) -> Path:
    pki = where / "pki"
    (pki / "certs").mkdir(parents=True)
    (pki / "ca.key").write_text("-----BEGIN PRIVATE KEY-----\ndecoy\n")
    (pki / "ca.key").chmod(0o600)
    (pki / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\ndecoy\n")
    (pki / "certs" / "alice.p12").write_bytes(b"\x30\x82decoy")
    pki.chmod(0o700)
    return pki


@pytest.mark.parametrize("declared", [False, True])
def test_output_dir_on_a_pki_directory_is_refused(
    built: Path, tmp_path: Path, declared: bool
) -> None:
    pki = _pki_decoy(tmp_path)
    if declared:  # known by name: refused even when someone copied a marker into it
        (pki / MARKER).write_text('{"made_by": "fwbuild"}\n')
    before = snapshot(pki)
    env = doit_env(FWBUILD_OUTPUT_DIR=str(pki), **({"VAULT_DIR": str(pki)} if declared else {}))
    run = run_doit(built, "rootfs", env=env)
    refused(run, "FWBUILD_OUTPUT_DIR", str(pki), *(["the vault (VAULT_DIR)"] if declared else []))
    assert snapshot(pki) == before


def test_output_dir_on_a_foreign_directory_is_refused(built: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "etc"
    (foreign / "ssh").mkdir(parents=True)
    (foreign / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (foreign / "ssh" / "sshd_config").write_text("PermitRootLogin no\n")
    before = snapshot(foreign)
    run = run_doit(built, "rootfs", env=doit_env(FWBUILD_OUTPUT_DIR=str(foreign)))
    refused(run, "FWBUILD_OUTPUT_DIR", str(foreign), MARKER)
    assert snapshot(foreign) == before
    assert not list(tmp_path.glob(".etc*"))  # no temporary tree was made beside it


def test_output_dir_on_home_is_refused(built: Path, tmp_path: Path) -> None:
    home = tmp_path / "home" / "user"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("decoy key\n")
    (home / "notes.txt").write_text("mine\n")
    before = snapshot(home.parent)
    for target in (home, home.parent):  # the home directory, and a directory holding it
        env = doit_env(HOME=str(home), FWBUILD_OUTPUT_DIR=str(target))
        run = run_doit(built, "rootfs", env=env)
        refused(run, "FWBUILD_OUTPUT_DIR", str(target), "home directory")
        assert snapshot(home.parent) == before


def test_output_dir_on_the_download_cache_is_refused(built: Path) -> None:
    dl = built / "dl"
    before = snapshot(dl)
    assert any(name.endswith(".tar.gz") for name in before)
    run = run_doit(built, "rootfs", env=doit_env(FWBUILD_OUTPUT_DIR=str(dl)))
    refused(run, "FWBUILD_OUTPUT_DIR", str(dl), "download cache")
    assert snapshot(dl) == before


def test_a_name_is_refused_before_the_disk_is_asked(built: Path) -> None:
    """A setting refused by name says so even where the disk would refuse the path as well (for
    a user, ROOTFS_DIR=/ is not writable; here, for any user, a path under a file cannot be
    made): the setting's fault is the one to fix, and "not writable" would invite trying root."""
    dl = built / "dl"
    tarball = next(dl.glob("*.tar.gz"))
    for setting in ("ROOTFS_DIR", "FWBUILD_OUTPUT_DIR", "FWBUILD_BUILD_DIR"):
        run = run_doit(built, "rootfs", env=doit_env(**{setting: str(tarball / "tree")}))
        refused(run, f"{setting}", str(tarball / "tree"), "inside the download cache")
        assert "is not a directory" not in run.output, run.output


def test_rootfs_dir_root_is_refused_by_name(built: Path) -> None:
    # The name alone is refused, before any tree is looked at (checked in-process first, so the
    # build below can never get to touch /).
    guard = make_guard(project_dir=built, build_dir=built / "build")
    assert refusal(Path("/"), guard) == "the root directory /"
    with pytest.raises(ConfigError, match="ROOTFS_DIR is /, which is the root directory"):
        claim(Path("/"), "ROOTFS_DIR", guard)
    run = run_doit(built, "rootfs", env=doit_env(ROOTFS_DIR="/"))
    refused(run, "ROOTFS_DIR is /, which is the root directory /")
    assert run.output.count("\n") <= 2  # one paragraph, not a traceback
    assert not run.ran
    # a profile's rootfs is a sibling of ROOTFS_DIR: / has none, and is refused the same way
    env = doit_env(
        ROOTFS_DIR="/",
        FWBUILD_BOARD=str(REPO / "configs" / "siso-client.toml"),
        FWBUILD_BUILD_DIR=str(built.parent / "client-build"),
        FWBUILD_PKI_DIR=str(built.parent / "client-pki"),
        FWBUILD_SECRETS=str(built.parent / "client-secrets.toml"),
    )
    refused(run_doit(REPO, "rootfs", env=env), "ROOTFS_DIR or FWBUILD_OUTPUT_DIR is /")


def test_project_and_build_dirs_are_refused(built: Path) -> None:
    before = snapshot(built / "recipes")
    for setting, target, why in (
        ("FWBUILD_OUTPUT_DIR", built, "project (repository) directory"),
        ("FWBUILD_OUTPUT_DIR", built.parent, "a directory holding the project"),
        ("ROOTFS_DIR", built / "build", "the build directory"),
    ):
        run = run_doit(built, "rootfs", env=doit_env(**{setting: str(target)}))
        refused(run, setting, str(target), why)
    assert snapshot(built / "recipes") == before


@pytest.mark.unit
def test_trees_rule(tmp_path: Path) -> None:
    project, build = tmp_path / "proj", tmp_path / "proj" / "build"
    project.mkdir()
    secrets, pki = tmp_path / "conf" / "secrets.toml", tmp_path / "pki"
    secrets.parent.mkdir()
    secrets.write_text("[users]\n")
    guard = make_guard(
        project_dir=project,
        build_dir=build,
        protected={secrets: "the secrets file", pki: "the PKI directory"},
    )
    assert refusal(secrets.parent, guard) == f"a directory holding the secrets file ({secrets})"
    assert refusal(tmp_path / "conf-beside", guard) is None  # beside the secrets file: fine
    assert refusal(pki / "certs", guard) == f"inside the PKI directory ({pki})"
    assert refusal(build / "rootfs", guard) is None
    claim_build_dir(build, guard)
    assert (build / MARKER).is_file()
    # the work trees are the build's by location: replaced, even without markers of their own
    (build / "pkg" / "src").mkdir(parents=True)
    (build / "pkg" / "src" / "a.c").write_text("int a;\n")
    new = build / "pkg" / "src.new"
    new.mkdir()
    replace_tree(new, build / "pkg" / "src", setting="src", guard=guard)
    assert not (build / "pkg" / "src" / "a.c").exists()
    # outside the build: empty is taken, foreign is refused, a link is refused
    empty, foreign, link = tmp_path / "empty", tmp_path / "foreign", tmp_path / "link"
    empty.mkdir()
    foreign.mkdir()
    (foreign / "keep").write_text("keep\n")
    link.symlink_to(foreign)
    claim(empty, "X", guard)
    before = snapshot(foreign)
    for target in (foreign, link):
        with pytest.raises(ConfigError, match="X is "):
            remove_tree(target, setting="X", guard=guard)
    assert snapshot(foreign) == before and link.is_symlink()
    # a build directory that is somebody else's is refused too
    with pytest.raises(ConfigError, match="FWBUILD_BUILD_DIR"):
        claim_build_dir(foreign, guard)
    assert snapshot(foreign) == before


@pytest.mark.unit
def test_trees_made_before_markers_are_adopted(tmp_path: Path) -> None:
    build = tmp_path / "build"
    (build / "stamps").mkdir(parents=True)
    (build / ".doit.db").write_text("{}")
    guard = make_guard(project_dir=tmp_path, build_dir=build, legacy=[tmp_path / "out"])
    claim_build_dir(build, guard)  # an old build directory: adopted and marked
    assert (build / MARKER).is_file()
    (tmp_path / "out" / "legal-info").mkdir(parents=True)
    (tmp_path / "out" / "rootfs.tar").write_text("old image\n")
    claim(tmp_path / "out", "FWBUILD_OUTPUT_DIR", guard)  # recorded by an old rootfs stamp
    claim(tmp_path / "out" / "legal-info", "legal-info", guard)


def test_old_rootfs_stamp_records_are_trusted(built: Path, tmp_path: Path) -> None:
    """A rootfs and output directory made before markers existed are replaced, not refused."""
    out = built / "output"
    (out / MARKER).unlink()  # as an older build left it
    (built / "build" / "rootfs" / MARKER).unlink()
    run = run_doit(built, "rootfs", env=doit_env(SOURCE_DATE_EPOCH="7"))
    assert run.returncode == 0, run.output
    assert (out / MARKER).is_file() and (built / "build" / "rootfs" / MARKER).is_file()


@pytest.mark.unit
def test_markers_stay_out_of_the_images(built: Path) -> None:
    import tarfile

    assert (built / "build" / "rootfs" / MARKER).is_file()
    assert (built / "output" / MARKER).is_file() and (built / "build" / MARKER).is_file()
    with tarfile.open(built / "output" / "rootfs.tar") as tar:
        names = tar.getnames()
    assert "./usr/bin/hello" in names and not [n for n in names if MARKER in n]
    manifest = (built / "output" / "manifest.json").read_text()
    sums = (built / "output" / "sha256sums").read_text()
    sbom = (built / "output" / "sbom.spdx.json").read_text()
    assert MARKER not in manifest + sums + sbom


def test_dirclean_never_removes_a_protected_directory(built: Path, tmp_path: Path) -> None:
    # the download cache where a package's work directory would be: dirclean:vault refuses
    dl = built / "build" / "vault"
    before = snapshot(dl)
    run = run_doit(built, "dirclean:vault", env=doit_env(FWBUILD_DL_DIR=str(dl)))
    refused(run, "the work directory of vault", "download cache")
    assert snapshot(dl) == before
    ok = run_doit(built, "dirclean:vault")
    assert ok.returncode == 0 and not dl.exists(), ok.output


# --- 2. assembling the rootfs never goes through a link ----------------------------------------
def test_permissions_line_on_an_overlay_link_is_refused(built: Path, tmp_path: Path) -> None:
    host = tmp_path / "host-run"
    host.mkdir(mode=0o700)
    host.chmod(0o700)
    (host / "daemon.pid").write_text("123\n")
    before = snapshot(host)
    link = built / "configs" / "rootfs" / "var" / "run"
    link.parent.mkdir()
    link.symlink_to(host)
    try:
        run = run_doit(built, "rootfs")  # permissions.txt line 3: /var/run d 0755 0 0
    finally:
        link.unlink()
        link.parent.rmdir()
    refused(
        run, f"{built / 'configs' / 'permissions.txt'}:3", "/var/run is a symbolic link", str(host)
    )
    assert snapshot(host) == before


def test_files_under_a_linked_directory_are_refused(built: Path, tmp_path: Path) -> None:
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "passwd").write_text("root:x:0:0\n")
    before = snapshot(host)
    overlay = built / "configs" / "rootfs"
    # an overlay link where the packages made a directory: refused, not merged or replaced
    (overlay / "usr").mkdir()
    (overlay / "usr" / "bin").symlink_to(host)
    try:
        run = run_doit(built, "rootfs")
    finally:
        (overlay / "usr" / "bin").unlink()
        (overlay / "usr").rmdir()
    refused(run, f"overlay file {overlay / 'usr' / 'bin'}", "/usr/bin is a directory")
    assert snapshot(host) == before
    # a package's link to a host directory, then an overlay file below it
    (overlay / "var" / "spool").mkdir(parents=True)
    (overlay / "var" / "spool" / "evil").write_text("written through the link\n")
    try:
        run = run_doit(built, "rootfs", env=doit_env(VAULT_LINK=str(host)))
    finally:
        (overlay / "var" / "spool" / "evil").unlink()
        (overlay / "var" / "spool").rmdir()
        (overlay / "var").rmdir()
    refused(run, "overlay file", f"/var/spool is a symbolic link (to {host}) from vault")
    assert snapshot(host) == before
    # an overlay link, then a device node of the permissions table below it
    (overlay / "dev").symlink_to(host)
    try:
        run = run_doit(built, "rootfs")
    finally:
        (overlay / "dev").unlink()
    table = built / "configs" / "permissions.txt"
    refused(
        run, f"{table}:2: /dev/console", f"/dev is a symbolic link (to {host}) from the overlay"
    )
    assert snapshot(host) == before
    ok = run_doit(built, "rootfs")  # and with the links gone the same project builds
    assert ok.returncode == 0, ok.output


@pytest.mark.unit
def test_tree_writes_refuse_links(tmp_path: Path) -> None:
    from fwbuild.rootfs import Entry, _Tree

    host = tmp_path / "host"
    host.mkdir()
    (host / "shadow").write_text("secret\n")
    before = snapshot(host)
    root = tmp_path / "root"
    (root / "var").mkdir(parents=True)
    (root / "var" / "run").symlink_to(host)
    src = tmp_path / "payload"
    src.write_text("payload\n")
    tree = _Tree(root)
    try:
        for attempt in (
            lambda: tree.put_file("var/run/x", src),
            lambda: tree.put_link("var/run/shadow", "/x"),
            lambda: tree.make_dir("var/run/sub"),
            lambda: tree.make_dir("var/run"),
            lambda: tree.finish(Entry("/var/run", "d", 0o777), 0),
            lambda: tree.finish(Entry("/var/run/shadow", "f", 0o666), 0),
        ):
            with pytest.raises(TreeConflict) as err:
                attempt()
            assert err.value.path == "var/run" and err.value.target == str(host)
    finally:
        tree.close()
    with pytest.raises(TreeConflict):
        read_file(root, "/var/run/shadow")
    assert snapshot(host) == before


# --- 3. one build per build directory -----------------------------------------------------------
def _popen(proj: Path, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "doit", *args],
        cwd=proj,
        env=env,
        stdout=fh,
        stderr=subprocess.STDOUT,
    )


def _wait_for(what: str, check: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def test_two_builds_in_one_build_directory(tmp_path: Path, server: FaultServer, dist: Dist) -> None:
    gate = tmp_path / "gate"
    gate.write_text("hold hello's link step until this file is gone\n")
    proj = make_project(tmp_path / "proj", dist, server.url, gate=gate)
    env = doit_env()
    first = _popen(proj, "-n", "2", "rootfs", env=env, log=tmp_path / "first.log")
    second = None
    try:
        _wait_for("hello's build at the gate", Path(f"{gate}.reached").exists)
        lock = proj / "build" / ".lock"
        assert lock.read_text().strip() == str(first.pid)
        refuse = run_doit(proj, "rootfs", env=doit_env(FWBUILD_NO_WAIT="1"))
        refused(
            refuse,
            f"another build is running in {proj / 'build'} (pid {first.pid}",
            "FWBUILD_NO_WAIT",
        )
        listing = run_doit(proj, "list")  # never waits behind a build
        assert listing.returncode == 0 and "rootfs" in listing.output
        second = _popen(proj, "rootfs", env=env, log=tmp_path / "second.log")
        waiting = f"waiting for the build in {proj / 'build'} (pid {first.pid}) to finish"
        _wait_for(
            "the second build waiting", lambda: waiting in (tmp_path / "second.log").read_text()
        )
        assert second.poll() is None and first.poll() is None
    finally:
        gate.unlink()
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()
        if second is not None:
            assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()
    out2 = (tmp_path / "second.log").read_text()
    assert ".  " not in out2.split("finished; this one starts now", 1)[1]  # nothing was left to do
    again = run_doit(proj, "rootfs")  # every stamp valid: nothing runs
    assert again.returncode == 0 and not again.ran, again.output
    # the patched tree is whole: the pristine tarball with the series applied by GNU patch
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["tar", "-xzf", str(proj / "dl" / "hello-1.0.tar.gz"), "-C", str(ref),
                    "--strip-components=1"], check=True)  # fmt: skip
    for patch in (proj / "dl" / "hello-1.0-extra.patch.gz",
                  proj / "patches" / "hello" / "1.0" / "0001-patched-greeting.patch"):  # fmt: skip
        text = subprocess.run(["zcat", "-f", str(patch)], capture_output=True, check=True).stdout
        subprocess.run(["patch", "-s", "-p1", "-d", str(ref)], input=text, check=True)
    src = proj / "build" / "hello" / "src"
    for f in ref.rglob("*"):
        if f.is_file() and not f.name.endswith(".orig"):
            assert (src / f.relative_to(ref)).read_bytes() == f.read_bytes(), f


# --- 4. nothing world-readable gives a secret away ----------------------------------------------
@pytest.fixture(scope="module")
def vpn_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("vpn-safety")
    env = vpn_env(tmp, vpn_board(tmp))
    first = run_doit(REPO, "rootfs", env=env)
    assert first.returncode == 0, first.output
    secrets = tmp / "secrets" / "siso.toml"  # a password changes: the report says why it ran
    secrets.write_text(secrets.read_text().replace('alice = "', 'alice = "x'))
    second = run_doit(REPO, "rootfs", env=env)
    assert second.returncode == 0 and "install:vpn-secrets" in second.ran, second.output
    assert "runtime inputs changed" in second.output
    return tmp, env


def _readable_files(tmp: Path) -> Iterator[Path]:
    """Files of the build and output directories that any user of the machine can read."""
    for top in (tmp / "build", tmp / "output"):
        for f in top.rglob("*"):
            if not f.is_file() or f.is_symlink() or not f.stat().st_mode & 0o004:
                continue
            if all(d.stat().st_mode & 0o001 for d in f.parents if d.is_relative_to(tmp)):
                yield f


def test_no_digest_of_a_secret_in_readable_files(vpn_built: tuple[Path, dict[str, str]]) -> None:
    tmp, _ = vpn_built
    rootfs = tmp / "build" / "rootfs"
    secret_files = [rootfs / "etc/sysconfig/ppp/chap-secrets", tmp / "secrets" / "siso.toml"]
    secret_files += sorted((rootfs / "etc/sysconfig/racoon").glob("*key*"))
    digests = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in secret_files}
    readable = list(_readable_files(tmp))
    assert tmp / "output" / "manifest.json" not in readable  # 0700 dir: its images are secrets
    checked = [*readable, *(tmp / "output").iterdir(), tmp / "build" / "rootfs.manifest.json"]
    for f in checked:
        data = f.read_text(errors="replace")
        for secret, digest in digests.items():
            assert digest[:16] not in data, (f, secret)
    manifest = json.loads((tmp / "output" / "manifest.json").read_text())["entries"]
    chap = next(e for e in manifest if e["path"] == "/etc/sysconfig/ppp/chap-secrets")
    assert chap["mode"] == 0o600 and chap["sha256"] == ""
    readable = [e for e in manifest if e["type"] == "f" and e["mode"] & 0o004]
    assert readable and all(len(e["sha256"]) == 64 for e in readable)  # these keep theirs
    sbom = (tmp / "output" / "sbom.spdx.json").read_text()
    assert all(d[:16] not in sbom for d in digests.values())


@pytest.mark.unit
def test_stamps_are_private(vpn_built: tuple[Path, dict[str, str]]) -> None:
    tmp, _ = vpn_built
    stamps = [p for p in (tmp / "build").rglob("stamps") if p.is_dir()]
    assert len(stamps) >= 4
    for directory in stamps:
        assert directory.stat().st_mode & 0o777 == 0o700, directory
        for stamp in directory.iterdir():  # the stages' stamps (their inputs) and the rootfs's
            if re.fullmatch(r"(fetch|patch|configure|build|install|rootfs-.*)\.json", stamp.name):
                assert stamp.stat().st_mode & 0o777 == 0o600, stamp


def test_output_dir_on_the_real_pki_is_refused(vpn_built: tuple[Path, dict[str, str]]) -> None:
    """The issue's attack: FWBUILD_OUTPUT_DIR at the PKI directory deleted the CA."""
    tmp, env = vpn_built
    pki = tmp / "pki"
    assert any(pki.rglob("*key*"))
    before = snapshot(pki)
    secrets_before = snapshot(tmp / "secrets")
    for target, why in ((pki, "the PKI directory"), (tmp / "secrets", "the secrets file")):
        run = run_doit(REPO, "rootfs", env={**env, "FWBUILD_OUTPUT_DIR": str(target)})
        refused(run, "FWBUILD_OUTPUT_DIR", str(target), why)
    assert snapshot(pki) == before and snapshot(tmp / "secrets") == secrets_before
    passwords = tomllib.loads((tmp / "secrets" / "siso.toml").read_text())["users"]
    assert passwords["alice"].startswith("x")
