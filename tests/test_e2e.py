"""End to end on generated packages: real HTTP with faults, the zig cross compiler, qemu-i386.

One project is built once per module (``doit rootfs``) through a mirror set with faults:
the primary mirror lacks libgreet (404) and serves corrupted bytes for hello; the upstream cuts
the hello tarball halfway once and lacks the patch; the backup mirror has the patch.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need
from elftools.elf.elffile import ELFFile
from support.doitrun import DoitRun, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

BINARIES = ("usr/bin/hello", "usr/bin/greet")


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, mirror_root: Path, dist: Dist
) -> Iterator[tuple[Path, DoitRun, FaultServer]]:
    with FaultServer(mirror_root) as srv:
        srv.fault("/primary/hello-1.0.tar.gz", "wrong_bytes")
        srv.fault("/upstream/hello-1.0.tar.gz", "cut", after=300, times=1)
        srv.fault("/upstream/hello-1.0-extra.patch.gz", "404")
        project = make_project(tmp_path_factory.mktemp("e2e"), dist, srv.url)
        run = run_doit(project, "rootfs")
        yield project, run, srv


def test_rootfs_builds(built: tuple[Path, DoitRun, FaultServer]) -> None:
    _, run, _ = built
    assert run.returncode == 0, run.output
    for stage in ("fetch", "patch", "configure", "build", "install"):
        assert f"{stage}:hello" in run.ran and f"{stage}:libgreet" in run.ran
    assert "rootfs" in run.ran


@pytest.mark.unit
def test_mirror_order_and_faults(built: tuple[Path, DoitRun, FaultServer]) -> None:
    project, _, srv = built
    gets = [(path, rng) for method, path, rng in srv.requests if method == "GET"]
    by_file: dict[str, list[tuple[str, str | None]]] = {}
    for path, rng in gets:
        by_file.setdefault(path.rsplit("/", 1)[1], []).append((path, rng))
    # libgreet: primary has no copy (404) -> the recipe's upstream URL
    assert [p for p, _ in by_file["libgreet-1.0.tar.gz"]] == [
        "/primary/libgreet-1.0.tar.gz",
        "/upstream/libgreet-1.0.tar.gz",
    ]
    # hello: primary's bytes are wrong -> upstream, cut after 300 bytes -> resumed with Range
    hello = by_file["hello-1.0.tar.gz"]
    assert hello[0] == ("/primary/hello-1.0.tar.gz", None)
    assert hello[1] == ("/upstream/hello-1.0.tar.gz", None)
    assert hello[2] == ("/upstream/hello-1.0.tar.gz", "bytes=300-")
    assert len(hello) == 3
    # the patch: 404 on primary and upstream -> backup mirror
    assert [p for p, _ in by_file["hello-1.0-extra.patch.gz"]] == [
        "/primary/hello-1.0-extra.patch.gz",
        "/upstream/hello-1.0-extra.patch.gz",
        "/backup/hello-1.0-extra.patch.gz",
    ]
    dl = project / "dl"
    rejected = list((dl / ".rejected").iterdir())
    assert [r.name.startswith("hello-1.0.tar.gz") for r in rejected] == [True]
    for name in ("libgreet-1.0.tar.gz", "hello-1.0.tar.gz", "hello-1.0-extra.patch.gz"):
        assert (dl / name).is_file()
    assert not list(dl.glob("*.part")) and not list((dl / ".partial").glob("*"))


@pytest.mark.unit
def test_binaries_are_static_i386_without_host_paths(
    built: tuple[Path, DoitRun, FaultServer],
) -> None:
    project, _, _ = built
    file_cmd = need("file")
    rootfs = project / "build" / "rootfs"
    for rel in BINARIES:
        path = rootfs / rel
        described = subprocess.run([file_cmd, "-b", str(path)], capture_output=True, text=True)
        assert "ELF 32-bit LSB executable, Intel 80386" in described.stdout
        assert "statically linked" in described.stdout
        with path.open("rb") as fh:
            elf = ELFFile(fh)
            assert elf.header.e_machine == "EM_386"
            assert elf.elfclass == 32
            assert not any(seg.header.p_type == "PT_INTERP" for seg in elf.iter_segments())
            assert elf.get_section_by_name(".dynamic") is None
            assert elf.get_section_by_name(".debug_info") is None  # stripped in the rootfs
        data = path.read_bytes()
        for leak in (str(project).encode(), b"/usr/include", b"/usr/lib/x86_64", b"/root/"):
            assert leak not in data, f"{rel} contains the host path {leak!r}"


def test_binaries_run_on_a_pentium(built: tuple[Path, DoitRun, FaultServer]) -> None:
    project, _, _ = built
    qemu = need("qemu-i386")
    rootfs = project / "build" / "rootfs"
    hello = subprocess.run(
        [qemu, "-cpu", "pentium", str(rootfs / "usr/bin/hello")], capture_output=True, text=True
    )
    assert hello.returncode == 0, hello.stderr
    # extra: from the downloaded diff -N patch; "patched": our own patch, applied after it
    assert hello.stdout.splitlines() == [
        "hello: extra",
        "Hello, SISO, from libgreet 1.0",
        "hello: patched",
    ]
    greet = subprocess.run(
        [qemu, "-cpu", "pentium", str(rootfs / "usr/bin/greet"), "XP"],
        capture_output=True,
        text=True,
    )
    assert greet.stdout == "Hello, XP, from libgreet 1.0\n"


@pytest.mark.unit
def test_rootfs_manifest(built: tuple[Path, DoitRun, FaultServer]) -> None:
    project, _, _ = built
    manifest = json.loads((project / "build" / "rootfs.manifest.json").read_text())
    entries = {e["path"]: e for e in manifest["entries"]}
    assert entries["/usr/bin/hello"]["package"] == "hello"
    assert entries["/usr/bin/greet"]["package"] == "libgreet"
    assert entries["/etc/hello.conf"]["package"] == "overlay"
    assert entries["/dev/console"]["type"] == "c"
    assert (entries["/dev/console"]["major"], entries["/dev/console"]["minor"]) == (5, 1)
    assert entries["/var/run"]["type"] == "d"
    rootfs = project / "build" / "rootfs"
    for path, entry in entries.items():
        if entry["type"] == "f":
            on_disk = rootfs / path.lstrip("/")
            assert on_disk.stat().st_mode & 0o7777 == entry["mode"]
            assert on_disk.stat().st_size == entry["size"]
            assert (entry["uid"], entry["gid"]) == (0, 0)
    # the library's headers and archive stay in staging: only declared files land in the rootfs
    assert not (rootfs / "usr" / "lib" / "libgreet.a").exists()
    assert not (rootfs / "usr" / "include").exists()


def test_noop_rebuild_runs_nothing(built: tuple[Path, DoitRun, FaultServer]) -> None:
    project, _, srv = built
    before = len(srv.requests)
    again = run_doit(project, "rootfs")
    assert again.returncode == 0, again.output
    assert again.ran == set(), again.output
    assert len(srv.requests) == before  # a verified cache is never asked about again


def test_doit_list_explains_public_tasks(built: tuple[Path, DoitRun, FaultServer]) -> None:
    project, _, _ = built
    listing = run_doit(project, "list")
    lines = {line.split()[0]: line for line in listing.output.splitlines() if line.strip()}
    for task in ("rootfs", "source", "toolchain", "fetch", "patch", "build", "install", "pin"):
        assert task in lines, listing.output
        assert len(lines[task].split()) > 2, f"{task} has no description"
