"""The engine's promises one by one: bad input ends in a named error and loses nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

from fwbuild.config import load_board
from fwbuild.errors import ConfigError, UnpackError
from fwbuild.manifest import parse_permissions
from fwbuild.tarmembers import extract_as_given
from fwbuild.unpack import extract_tarball


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return raw.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.unit
@pytest.mark.parametrize(
    ("member", "why"),
    [
        ((_info("pkg/../../evil"), b"x"), "outside"),
        ((_info("/etc/evil"), b"x"), "absolute"),
        ((_info("pkg/link", tarfile.SYMTYPE, "../../../etc/passwd"), None), "outside"),
        ((_info("pkg/abs", tarfile.SYMTYPE, "/etc/passwd"), None), "absolute"),
        ((_info("pkg/dev", tarfile.CHRTYPE), None), "device"),
    ],
)
def test_unpack_refuses_entries_escaping_the_tree(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], why: str
) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar([(_info("pkg/ok.c"), b"int x;\n"), member]))
    dest = tmp_path / "work" / "src"
    dest.parent.mkdir()
    with pytest.raises(UnpackError) as err:
        extract_tarball(archive, dest, package="evil")
    message = str(err.value)
    assert message.startswith("evil:") and str(archive) in message and member[0].name in message
    assert why in message.lower()
    assert list(dest.parent.iterdir()) == []  # nothing half-extracted is left behind
    assert not (tmp_path / "evil").exists()


@pytest.mark.unit
def test_unpack_truncated_archive_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(_tar([(_info("pkg/a.c"), os.urandom(100_000))])[:5000])
    with pytest.raises(UnpackError, match=r"cut\.tar\.gz"):
        extract_tarball(archive, tmp_path / "src", package="cut")
    assert not (tmp_path / "src").exists()


@pytest.mark.unit
def test_unpack_strips_the_top_directory(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(_tar([(_info("pkg-1.0/a/b.c"), b"b\n")]))
    extract_tarball(archive, tmp_path / "src", package="ok")
    assert (tmp_path / "src" / "a" / "b.c").read_bytes() == b"b\n"


@pytest.mark.unit
def test_permissions_table(tmp_path: Path) -> None:
    table = tmp_path / "perm.txt"
    table.write_text("# comment\n/dev/ptyp{0..3} c 0666 0 0 2 0\n/sbin/init l 0777 0 0 ../bin/bb\n")
    entries = parse_permissions(table)
    assert [(e.path, e.minor) for e in entries[:4]] == [
        ("/dev/ptyp0", 0),
        ("/dev/ptyp1", 1),
        ("/dev/ptyp2", 2),
        ("/dev/ptyp3", 3),
    ]
    assert entries[4].target == "../bin/bb"
    table.write_text("/dev/null c 0666 0 0\n")
    with pytest.raises(ConfigError, match=r"perm.txt:1: device /dev/null needs `major minor`"):
        parse_permissions(table)


@pytest.mark.unit
def test_board_errors_name_the_file_and_key(tmp_path: Path) -> None:
    board = tmp_path / "configs" / "b.toml"
    board.parent.mkdir()
    board.write_text("[board]\nname = 'x'\n[target]\narch = 'x86'\n")
    with pytest.raises(ConfigError, match=r"b.toml: \[target\] cpu is missing"):
        load_board(board)
    board.write_text("[board\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_board(board)


def _project(tmp_path: Path, srv: FaultServer, dist: Dist) -> Path:
    return make_project(tmp_path / "proj", dist, srv.url)


def test_missing_recipe_is_named(tmp_path: Path, server: FaultServer, dist: Dist) -> None:
    proj = _project(tmp_path, server, dist)
    (proj / "recipes" / "libgreet.py").unlink()
    run = run_doit(proj, "list")
    assert run.returncode != 0
    assert "no recipe for package 'libgreet'" in run.output and "needed by hello" in run.output
    assert "Traceback" not in run.output


def test_offline_build_with_warm_cache_makes_no_requests(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = _project(tmp_path, server, dist)
    warm = run_doit(proj, "source")
    assert warm.returncode == 0, warm.output
    assert {"fetch:hello", "fetch:libgreet"} <= warm.ran
    assert not (proj / "build" / "hello" / "src").exists()  # source only downloads
    before = len(server.requests)
    offline = run_doit(proj, "rootfs", env=doit_env(FWBUILD_OFFLINE="1"))
    assert offline.returncode == 0, offline.output
    assert len(server.requests) == before


def test_offline_with_a_missing_file_fails_at_once(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = _project(tmp_path, server, dist)
    run = run_doit(proj, "fetch:hello", env=doit_env(FWBUILD_OFFLINE="1"))
    assert run.returncode != 0
    assert "hello-1.0.tar.gz" in run.output and "offline" in run.output.lower()
    assert server.requests == []


def test_unpinned_file_is_refused_until_pinned(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = _project(tmp_path, server, dist)
    recipe = proj / "recipes" / "hello.py"
    sha = dist.sha256("hello-1.0-extra.patch.gz")
    recipe.write_text(recipe.read_text().replace(f'sha256="{sha}",', ""))
    refused = run_doit(proj, "fetch:hello")
    assert refused.returncode != 0
    assert "hello-1.0-extra.patch.gz" in refused.output and "pin:hello" in refused.output
    assert not any(p.endswith("extra.patch.gz") for _, p, _ in server.requests)
    pinned = run_doit(proj, "pin:hello")
    assert pinned.returncode == 0, pinned.output
    assert sha in pinned.output
    lock = json.loads((proj / "configs" / "pins.lock").read_text())
    assert lock["files"]["hello-1.0-extra.patch.gz"]["sha256"] == sha
    built = run_doit(proj, "rootfs")
    assert built.returncode == 0, built.output


def test_digest_mismatch_everywhere_is_fatal_and_clear(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = _project(tmp_path, server, dist)
    for mirror in ("primary", "upstream", "backup"):
        server.fault(f"/{mirror}/libgreet-1.0.tar.gz", "wrong_bytes")
    run = run_doit(proj, "fetch:libgreet")
    assert run.returncode != 0
    expected = dist.sha256("libgreet-1.0.tar.gz")
    assert expected in run.output
    for mirror in ("upstream", "backup"):
        assert f"{server.url}/{mirror}/libgreet-1.0.tar.gz" in run.output
    assert not (proj / "dl" / "libgreet-1.0.tar.gz").exists()


def test_local_overrides(tmp_path: Path, server: FaultServer, dist: Dist) -> None:
    proj = _project(tmp_path, server, dist)
    # a source directory for hello, a tarball of our own for libgreet
    srcdir = tmp_path / "hello-src"
    with tarfile.open(fileobj=io.BytesIO(dist.files["hello-1.0.tar.gz"])) as tar:
        extract_as_given(tar, tmp_path / "x", tar)  # our own test tarball
    (tmp_path / "x" / "hello-1.0").rename(srcdir)
    (srcdir / "LOCAL").write_text("from the override tree\n")
    tarball = tmp_path / "libgreet-local.tar.gz"
    tarball.write_bytes(dist.files["libgreet-1.0.tar.gz"])
    overrides = tmp_path / "local.toml"
    sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    overrides.write_text(
        f'[packages.hello]\nsrcdir = "{srcdir}"\n'
        f'[packages.libgreet]\ntarball = "{tarball}"\nsha256 = "{sha}"\n'
    )
    env = doit_env(FWBUILD_OVERRIDES=str(overrides))
    run = run_doit(proj, "rootfs", env=env)
    assert run.returncode == 0, run.output
    assert not any("tar.gz" in p for _, p, _ in server.requests)  # no tarball downloaded
    hello = proj / "build" / "rootfs" / "usr" / "bin" / "hello"
    out = subprocess.run(["qemu-i386", "-cpu", "pentium", str(hello)], capture_output=True)
    assert out.stdout.decode().splitlines()[-1] == "hello: patched"  # our patch, over the copy
    assert (proj / "build" / "hello" / "src" / "LOCAL").is_file()
    # editing the override tree reruns hello from its patch stage, nothing else
    (srcdir / "NEWS").write_text("edited\n")
    again = run_doit(proj, "rootfs", env=env)
    assert again.stages("hello") == {"patch", "configure", "build", "install"}
    assert again.stages("libgreet") == set()
    # a wrong digest in the overrides file is named
    overrides.write_text(overrides.read_text().replace(sha, "0" * 64))
    bad = run_doit(proj, "fetch:libgreet", env=env)
    assert bad.returncode != 0 and str(tarball) in bad.output and "0" * 64 in bad.output


def test_two_packages_installing_one_path(tmp_path: Path, server: FaultServer, dist: Dist) -> None:
    proj = _project(tmp_path, server, dist)
    recipe = proj / "recipes" / "libgreet.py"
    recipe.write_text(
        recipe.read_text()
        .replace(
            'target_files = {"usr/bin/greet": 0o755}',
            'target_files = {"usr/bin/greet": 0o755}\n\n'
            "    def install(self, ctx):\n"
            "        super().install(ctx)\n"
            '        (ctx.staging / "usr/bin/hello").write_text("clash")\n',
        )
        .replace(
            '{"usr/bin/greet": 0o755}\n', '{"usr/bin/greet": 0o755, "usr/bin/hello": 0o755}\n', 1
        )
    )
    run = run_doit(proj, "rootfs")
    assert run.returncode != 0
    assert "both install /usr/bin/hello" in run.output
    assert not (proj / "build" / "rootfs").exists()  # nothing half-installed


def test_foreign_rootfs_dir_is_not_replaced(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = _project(tmp_path, server, dist)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious").write_text("keep me\n")
    run = run_doit(proj, "rootfs", env=doit_env(ROOTFS_DIR=str(foreign)))
    assert run.returncode != 0 and "ROOTFS_DIR" in run.output and str(foreign) in run.output
    assert (foreign / "precious").read_text() == "keep me\n"
    fresh = tmp_path / "fresh-rootfs"
    ok = run_doit(proj, "rootfs", env=doit_env(ROOTFS_DIR=str(fresh)))
    assert ok.returncode == 0, ok.output
    assert (fresh / "usr" / "bin" / "hello").is_file()


def test_parallel_build(tmp_path: Path, server: FaultServer, dist: Dist) -> None:
    proj = _project(tmp_path, server, dist)
    run = run_doit(proj, "-n", "2", "rootfs")
    assert run.returncode == 0, run.output
    assert (proj / "build" / "rootfs" / "usr" / "bin" / "hello").is_file()
