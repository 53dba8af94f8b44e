"""The pictures (fwbuild.graphs) and the size budget (fwbuild.sizes), on the generated packages.

One project (hello, libgreet and a kernel-like package with a ``bzImage``) is built once with
``doit -n 2`` and drawn; each picture is checked as a person would look at it: the SVG parsed for
the expected nodes, edges, bars and labels, the PNG decoded and looked at for its colours. The
budget tests come last: they change the project's board and overlay.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread
from support.doitrun import DoitRun, doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

from fwbuild.errors import ConfigError
from fwbuild.sizes import parse_size

SVG = "{http://www.w3.org/2000/svg}"
KERNEL_RECIPE = '''\
import shutil

from fwbuild.recipe import Package


class Kernel(Package):
    """Stands in for a kernel: an image of its own beside the rootfs, nothing in it."""

    name = "kernel"
    version = "2.6"
    license = "GPL-2.0-only"
    local_source = "src/kernel"
    image_files = {"bzImage": "boot/bzImage"}

    def install(self, ctx):
        (ctx.staging / "boot").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ctx.srcdir / "bzImage", ctx.staging / "boot" / "bzImage")
'''


def add_kernel(root: Path) -> None:
    (root / "src" / "kernel").mkdir(parents=True)
    # incompressible, reproducible bytes: 40 KiB, so the kernel is a visible bar
    block = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(1280))
    (root / "src" / "kernel" / "bzImage").write_bytes(block)
    (root / "recipes" / "kernel.py").write_text(KERNEL_RECIPE)
    board = root / "configs" / "board.toml"
    board.write_text(
        board.read_text().replace('packages = ["hello"]', 'packages = ["hello", "kernel"]')
    )


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, mirror_root: Path, dist: Dist
) -> Iterator[tuple[Path, DoitRun]]:
    with FaultServer(mirror_root) as srv:
        project = make_project(tmp_path_factory.mktemp("graphs"), dist, srv.url)
        add_kernel(project)
        run = run_doit(project, "-n", "2", "rootfs")
        assert run.returncode == 0, run.output
        yield project, run


def graphs(project: Path) -> Path:
    return project / "build" / "graphs" / "testboard"


def svg_root(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return root


def dot_graph(path: Path) -> tuple[set[str], set[str], set[str]]:
    """A Graphviz SVG's node names, edges (``a->b``) and the words written in it."""
    root = svg_root(path)
    nodes, edges = set(), set()
    for group in root.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        if title is None:
            continue
        if group.get("class") == "node":
            nodes.add(title.text or "")
        elif group.get("class") == "edge":
            edges.add(title.text or "")
    words = {t.text for t in root.iter(f"{SVG}text") if t.text}
    return nodes, edges, words


def texts(path: Path) -> list[str]:
    return [t.text or "" for t in svg_root(path).iter(f"{SVG}text")]


def ids(path: Path, prefix: str) -> list[str]:
    return [
        g.get("id", "")[len(prefix) :]
        for g in svg_root(path).iter()
        if g.get("id", "").startswith(prefix)
    ]


def look_at_png(path: Path) -> np.ndarray[Any, Any]:
    """Decoded as a viewer would: a real picture, not a blank canvas."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 400
    assert pixels[..., :3].std() > 0.05  # not uniform
    return pixels


def has_colour(pixels: np.ndarray[Any, Any], hex_colour: str, at_least: int = 50) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    close = np.all(np.abs(pixels[..., :3] - rgb) < 0.02, axis=-1)
    return int(close.sum()) >= at_least


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.unit
def test_size_strings() -> None:
    file = Path("board.toml")
    assert parse_size(4096, "k", file) == 4096
    assert parse_size("512K", "k", file) == 512 * 1024
    assert parse_size("16M", "k", file) == 16 << 20
    assert parse_size("1.5 MiB", "k", file) == 3 << 19
    for bad in ("lots", "-1M", 0, True, 1.5, "16Q", ""):
        with pytest.raises(ConfigError, match=r"board.toml: \[rootfs\] max_size = .* not a size"):
            parse_size(bad, "[rootfs] max_size", file)


def test_graph_depends(built: tuple[Path, DoitRun]) -> None:
    project, _ = built
    run = run_doit(project, "graph-depends")
    assert run.returncode == 0, run.output
    assert run.ran == {"graph-depends:hello", "graph-depends:libgreet", "graph-depends:kernel"}
    out = graphs(project)
    nodes, edges, words = dot_graph(out / "depends.svg")
    assert nodes == {"testboard", "hello", "libgreet", "kernel"}
    assert edges == {"testboard->hello", "testboard->kernel", "hello->libgreet"}
    assert {"hello", "libgreet", "kernel", "1.0", "2.6"} <= words  # name and version
    assert "digraph depends" in (out / "depends.dot").read_text()
    # one package: what it needs and what needs it, nothing else
    nodes, edges, _ = dot_graph(out / "depends-libgreet.svg")
    assert nodes == {"hello", "libgreet"} and edges == {"hello->libgreet"}
    nodes, edges, _ = dot_graph(out / "depends-kernel.svg")
    assert nodes == {"kernel"} and edges == set()
    # beside the firmware too, byte for byte
    assert (project / "output" / "graphs" / "depends.svg").read_bytes() == (
        out / "depends.svg"
    ).read_bytes()
    assert not list(out.glob(".*"))  # no temporary files left

    one = run_doit(project, "graph-depends:hello", env=doit_env(FWBUILD_GRAPH_STAGES="1"))
    assert one.returncode == 0, one.output
    assert one.ran == {"graph-depends:hello"}
    nodes, edges, words = dot_graph(out / "stages-hello.svg")
    for stage in ("fetch", "patch", "configure", "build", "install"):
        assert f"{stage}:hello" in nodes and f"{stage}:libgreet" in nodes
    assert "kernel" not in " ".join(nodes)
    assert {"install:libgreet->configure:hello", "toolchain->configure:hello"} <= edges
    assert {"patch:hello->configure:hello", "install:hello->rootfs"} <= edges


def test_graph_build(built: tuple[Path, DoitRun]) -> None:
    project, build_run = built
    report_file = project / "build" / "report.json"
    before = report_file.read_bytes()
    report = json.loads(before)
    ran = {t["task"] for t in report["tasks"] if t["result"] == "ran"}
    assert {"fetch:hello", "build:libgreet", "install:kernel", "toolchain", "rootfs"} <= ran
    assert ran <= build_run.ran

    run = run_doit(project, "graph-build")
    assert run.returncode == 0, run.output
    assert report_file.read_bytes() == before  # drawing is not a build: the report stays
    out = graphs(project)
    table = rows(out / "build.csv")
    assert sorted(r["task"] for r in table) == sorted(ran)  # one row per task that ran
    for r in table:
        task = next(t for t in report["tasks"] if t["task"] == r["task"])
        assert float(r["start_s"]) == pytest.approx(task["offset"], abs=1e-3)
        assert float(r["seconds"]) == pytest.approx(task["seconds"], abs=1e-3)
        assert r["row"] == (task["package"] or task["task"])
    # -n 2: two lanes, and never more tasks at once than lanes
    assert {r["lane"] for r in table} == {"1", "2"}
    for lane in ("1", "2"):
        spans = sorted((float(r["start_s"]), float(r["end_s"])) for r in table if r["lane"] == lane)
        assert all(a[1] <= b[0] + 1e-3 for a, b in itertools.pairwise(spans))

    svg = out / "build.svg"
    assert sorted(ids(svg, "bar:")) == sorted(ran)  # one bar per stage, by package
    assert sorted(ids(svg, "lane:")) == sorted(ran)  # and again in its lane
    words = texts(svg)
    for label in ("hello", "libgreet", "kernel", "lane 1", "lane 2", "fetch", "build"):
        assert label in words, label
    pixels = look_at_png(out / "build.png")
    for colour in ("#56B4E9", "#D55E00", "#009E73"):  # fetch, build and install bars
        assert has_colour(pixels, colour), colour
    assert "build:hello" in (out / "build.txt").read_text()

    again = run_doit(project, "graph-build")  # the same build drawn again, not this run
    assert again.returncode == 0 and rows(out / "build.csv") == table


def test_graph_size(built: tuple[Path, DoitRun]) -> None:
    project, _ = built
    run = run_doit(project, "graph-size")
    assert run.returncode == 0, run.output
    out = graphs(project)
    manifest = json.loads((project / "output" / "manifest.json").read_text())["entries"]
    files = [e for e in manifest if e["type"] == "f"]
    expected: dict[str, int] = {}
    for e in files:
        expected[e["package"]] = expected.get(e["package"], 0) + e["size"]
    packages = {r["package"]: int(r["bytes"]) for r in rows(out / "size-packages.csv")}
    assert packages == expected and set(packages) == {"hello", "libgreet", "overlay"}
    assert list(packages.values()) == sorted(packages.values(), reverse=True)
    per_file = rows(out / "size-files.csv")
    assert sum(int(r["bytes"]) for r in per_file) == sum(e["size"] for e in files)
    assert len(per_file) == len(files)
    images = {r["image"]: r for r in rows(out / "size-images.csv")}
    for name in ("bzImage", "rootfs.cpio.gz", "rootfs.tar"):
        assert int(images[name]["bytes"]) == (project / "output" / name).stat().st_size
    assert images["bzImage"]["what"] == "image of kernel"
    assert images["rootfs.cpio.gz"]["what"] == "initramfs, compressed"

    words = " ".join(texts(out / "size.svg"))
    for label in ("hello", "libgreet", "overlay", "bzImage", "rootfs.cpio.gz", "initramfs"):
        assert label in words, label
    pixels = look_at_png(out / "size.png")
    assert has_colour(pixels, "#0072B2") and has_colour(pixels, "#E69F00")  # packages, kernel
    text = (out / "size.txt").read_text()
    assert "hello" in text and "bzImage" in text and "total" in text


def snapshot(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def set_budget(project: Path, rootfs: str = "", tables: str = "") -> None:
    """Budget keys into the board's [rootfs] table, and tables of their own after it."""
    board = project / "configs" / "board.toml"
    original = board.with_name("board.toml.orig")
    if not original.exists():
        shutil.copyfile(board, original)
    text = original.read_text()
    assert text.count("[rootfs]\n") == 1
    board.write_text(text.replace("[rootfs]\n", f"[rootfs]\n{rootfs}") + tables)


BIG = "configs/rootfs/etc/big.bin"


@pytest.mark.parametrize(
    ("budget", "named"),
    [
        ("max_size", "[rootfs] max_size = "),
        ("package_limits", "[rootfs.package_limits] overlay = "),
        ("max_initramfs", "[image] max_initramfs = "),
    ],
)
def test_budget_exceeded_keeps_the_last_good_output(
    built: tuple[Path, DoitRun], budget: str, named: str
) -> None:
    project, _ = built
    big = project / BIG
    # 64 KiB that do not compress: the overlay grows by more than the budget allows
    big.write_bytes(b"".join(hashlib.sha512(str(i).encode()).digest() for i in range(1024)))
    output, rootfs = project / "output", project / "build" / "rootfs"
    manifest = json.loads((output / "manifest.json").read_text())["entries"]
    total = sum(e["size"] for e in manifest if e["type"] == "f")
    cpio = (output / "rootfs.cpio.gz").stat().st_size
    if budget == "max_size":
        set_budget(project, f"max_size = {total + 1024}\n")
    elif budget == "package_limits":
        set_budget(project, tables='[rootfs.package_limits]\noverlay = "8K"\n')
    else:
        set_budget(project, tables=f"[image]\nmax_initramfs = {cpio + 1024}\n")
    kept_output, kept_rootfs = snapshot(output), snapshot(rootfs)
    try:
        run = run_doit(project, "rootfs")
    finally:
        big.unlink()
        set_budget(project)
    assert run.returncode != 0
    assert "Traceback" not in run.output
    assert any(line.startswith("FAILED rootfs") for line in run.output.splitlines())
    failure = next(line for line in run.output.splitlines() if "over its size budget" in line)
    assert named in failure
    assert "/etc/big.bin 64.0 KiB" in failure  # the biggest contributor, named
    assert "/etc/big.bin +64.0 KiB (new)" in failure  # what grew since the last build
    assert f"{output} still holds the last good build" in failure
    # nothing replaced, nothing half-written
    assert snapshot(output) == kept_output
    if budget != "max_initramfs":  # the rootfs checks run before the rootfs is swapped in
        assert snapshot(rootfs) == kept_rootfs
    assert not list(project.glob("build/.rootfs.new*")) and not list(project.glob(".output.new"))


def test_budget_met_builds_and_compares(built: tuple[Path, DoitRun], tmp_path: Path) -> None:
    project, _ = built
    old = tmp_path / "old-output"
    shutil.copytree(project / "output", old)
    big = project / BIG
    big.write_bytes(b"".join(hashlib.sha512(str(i).encode()).digest() for i in range(1024)))
    set_budget(
        project,
        'max_size = "4M"\n',
        '[rootfs.package_limits]\nhello = "1M"\noverlay = 131072\n[image]\nmax_initramfs = "2M"\n',
    )
    run = run_doit(project, "rootfs")
    assert run.returncode == 0, run.output
    entries = json.loads((project / "output" / "manifest.json").read_text())["entries"]
    assert "/etc/big.bin" in {e["path"] for e in entries}

    compare = subprocess.run(
        [sys.executable, "-m", "fwbuild.graphs", "size-compare", str(old), str(project / "output")],
        capture_output=True,
        text=True,
        env=doit_env(),
        check=False,
    )
    assert compare.returncode == 0, compare.stderr
    lines = compare.stdout.splitlines()
    overlay = next(line for line in lines if line.split()[-1:] == ["overlay"])
    assert overlay.split()[2] == "+65536"
    assert any(line.split()[-2:] == ["/etc/big.bin", "(new)"] for line in lines)
    assert any(line.split()[-1:] == ["rootfs.cpio.gz"] for line in lines)

    sized = run_doit(project, "graph-size", env=doit_env(FWBUILD_SIZE_COMPARE=str(old)))
    assert sized.returncode == 0, sized.output
    assert "/etc/big.bin (new)" in sized.output
    assert (graphs(project) / "size-compare.txt").read_text().strip() in sized.output
    assert "budget 4.0 MiB" in (graphs(project) / "size.txt").read_text()

    # the budget lowered below what is built: the rootfs task checks again and says why
    set_budget(project, tables='[rootfs.package_limits]\noverlay = "8K"\n')
    try:
        lowered = run_doit(project, "rootfs")
    finally:
        big.unlink()
        set_budget(project)
    assert lowered.returncode != 0 and "rootfs" in lowered.ran, lowered.output
    assert "Package overlay takes 64.0 KiB" in lowered.output


def test_bad_budget_and_nothing_to_draw(tmp_path: Path, server: FaultServer, dist: Dist) -> None:
    project = make_project(tmp_path / "proj", dist, server.url)
    board = project / "configs" / "board.toml"
    text = board.read_text()
    board.write_text(text + '\n[rootfs.package_limits]\nopenssl = "1M"\n')
    run = run_doit(project, "list")
    assert run.returncode != 0 and "Traceback" not in run.output
    assert "[rootfs.package_limits] openssl names no package of this board" in run.output

    board.write_text(text)
    for task, why in (
        ("graph-build", "there is no build to draw yet"),
        ("graph-size", "run `doit rootfs` first"),
    ):
        run = run_doit(project, task)
        assert run.returncode != 0 and why in run.output and "Traceback" not in run.output
    assert not (project / "output").exists()  # drawing never makes an output look built
    assert run_doit(project, "graph-depends").returncode == 0
    assert not (project / "output").exists()


@pytest.mark.unit
def test_size_compare_between_two_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fwbuild.graphs import main

    def manifest(name: str, files: dict[str, tuple[str, int]]) -> Path:
        entries = [{"path": "/etc", "type": "d", "package": "", "size": 0}]
        entries += [
            {"path": p, "type": "f", "package": k, "size": n} for p, (k, n) in files.items()
        ]
        path = tmp_path / name
        path.write_text(json.dumps({"entries": entries}))
        return path

    old = manifest("old.json", {"/bin/a": ("a", 1000), "/bin/b": ("b", 500), "/etc/x": ("b", 7)})
    new = manifest("new.json", {"/bin/a": ("a", 1300), "/bin/b": ("b", 500), "/bin/c": ("c", 3)})
    assert main(["size-compare", str(old), str(new)]) == 0
    lines = capsys.readouterr().out.splitlines()

    def row(name: str) -> list[str]:
        return next(line.split() for line in lines if line.split()[3:4] == [name])

    assert row("a")[:3] == ["1000", "1300", "+300"]
    assert row("b")[:3] == ["507", "500", "-7"] and row("c")[:3] == ["0", "3", "+3"]
    assert row("/etc/x")[2:] == ["-7", "/etc/x", "(gone)"]
    assert row("/bin/c")[2:] == ["+3", "/bin/c", "(new)"]
    assert main(["size-compare", "--threshold", "10", str(old), str(new)]) == 0
    shown = capsys.readouterr().out
    assert "/bin/a" in shown and "/bin/c" not in shown and "/etc/x" not in shown

    assert main(["size-compare", str(tmp_path / "missing"), str(new)]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "does not exist; run `doit rootfs` first" in err
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["size-compare", str(tmp_path / "broken.json"), str(new)]) == 2
    assert "is not a readable manifest" in capsys.readouterr().err
