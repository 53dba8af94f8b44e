"""Same inputs, byte-identical images: two builds of the generated project in two directories."""

from __future__ import annotations

import hashlib
from pathlib import Path

from support.doitrun import run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

IMAGES = ("rootfs.tar", "rootfs.cpio.gz", "rootfs.ext2", "manifest.json", "sha256sums")


def digests(output: Path) -> dict[str, str]:
    return {n: hashlib.sha256((output / n).read_bytes()).hexdigest() for n in IMAGES}


def test_two_builds_in_different_directories_are_identical(
    tmp_path: Path, mirror_root: Path, dist: Dist
) -> None:
    outputs = []
    with FaultServer(mirror_root) as srv:
        for name in ("first", "second-dir-with-a-longer-name"):
            project = make_project(tmp_path / name, dist, srv.url)
            run = run_doit(project, "rootfs")
            assert run.returncode == 0, run.output
            outputs.append(project / "output")
    first, second = (digests(o) for o in outputs)
    assert first == second
    for output in outputs:  # no build path in any image
        for name in IMAGES:
            data = (output / name).read_bytes()
            assert str(tmp_path).encode() not in data, name
    listed = (outputs[0] / "sha256sums").read_text()
    assert f"{first['rootfs.cpio.gz']}  rootfs.cpio.gz" in listed
