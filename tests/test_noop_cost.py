"""What a no-op build does not pay for (issue 15): modules it does not need are not imported, and
per-package tasks nobody asked for are not made. Structural checks, never timings (bench/ has
those): each would fail if an import moved back to the top of a module or a task creator lost
its delayed creation."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from support.doitrun import doit_env, run_doit
from support.scalepkgs import make_scale_project, name_of

REPO = Path(__file__).resolve().parents[1]

# What only other tasks (pictures, CVE and source checks, dirclean), other stages (downloads,
# patching, unpacking, images) or a recipe's own steps need.
NOT_FOR_A_NOOP = (
    "fwbuild.cve",
    "fwbuild.graphs",
    "fwbuild.sizes",
    "fwbuild.sourcecheck",
    "fwbuild.fetch",
    "fwbuild.patching",
    "fwbuild.unpack",
    "fwbuild.images",
    "fwbuild.legal",
    "fwbuild.sbom",
    "concurrent.futures",
    "argparse",
    "http.client",  # the build cache's remote backend (fwbuild.cache), when one is set
    "tarfile",
)

# Runs doit in this process and prints the modules it imported, and how many doit tasks it made.
PROBE = """
import json, sys
import doit.control
made = []
real_init = doit.control.TaskControl.__init__
def init(self, task_list, *args, **kwargs):
    made.append(len(task_list))
    real_init(self, task_list, *args, **kwargs)
doit.control.TaskControl.__init__ = init
from doit.doit_cmd import DoitMain
from doit.cmd_base import DodoTaskLoader
code = DoitMain(DodoTaskLoader()).run(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules), "tasks": made}))
"""


def _probe(project: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=project,
        env=env or doit_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return result


def test_a_noop_imports_and_makes_only_what_it_needs(tmp_path: Path) -> None:
    n = 40
    root = make_scale_project(tmp_path / "chain", n, "chain")
    assert run_doit(root, "rootfs").returncode == 0
    noop = _probe(root, "rootfs")
    imported = set(noop["modules"])  # type: ignore[arg-type]
    assert "fwbuild.tasks" in imported and "fwbuild.report" in imported  # the probe works
    assert not imported & set(NOT_FOR_A_NOOP), sorted(imported & set(NOT_FOR_A_NOOP))
    # the five stages of each package, no dirclean:<pkg> or graph-depends:<pkg> made up front
    (tasks,) = noop["tasks"]  # type: ignore[misc]
    assert 5 * n <= tasks < 5 * n + 20, tasks

    # made when asked for, and `doit list` shows them as before
    top = name_of(n - 1)
    listed = run_doit(root, "list", "--all")
    assert f"dirclean:{top}" in listed.output and f"graph-depends:{top}" in listed.output
    assert "cve-check" in listed.output and "source-check" in listed.output
    # with worker processes too: doit sends a task made late to a worker whole (pickled)
    clean = run_doit(root, "-n", "2", f"dirclean:{top}")
    assert clean.returncode == 0 and clean.ran == {f"dirclean:{top}"}, clean.output
    assert not (root / "build" / top).exists()


def test_the_real_board_loads_and_keys_without_what_a_noop_does_not_need(
    tmp_path: Path,
) -> None:
    """The firmware board's recipes import helpers for their steps (patching, client
    profiles): loading the board and computing every stage key must not import them."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from fwbuild.project import STAGES, Project\n"
        "p = Project.load(Path('configs/siso.toml'))\n"
        "keys = [p.key(n, s) for n in p.packages for s in STAGES]\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = doit_env(
        FWBUILD_BUILD_DIR=str(tmp_path / "build"),
        FWBUILD_PKI_DIR=str(tmp_path / "pki"),
        FWBUILD_SECRETS=str(tmp_path / "secrets.toml"),
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    imported = set(json.loads(run.stdout.strip().splitlines()[-1]))
    assert "fwbuild.project" in imported
    unwanted = set(NOT_FOR_A_NOOP) | {"_profiles", "plistlib"}
    assert not imported & unwanted, sorted(imported & unwanted)


def test_a_noop_writes_neither_doits_record_nor_the_code_digests(tmp_path: Path) -> None:
    """doit's dependency file is rewritten by a run that ran something, never by a no-op (at a
    thousand packages it is 400 KB), and the code digests are read, not written again."""
    root = make_scale_project(tmp_path / "fanin", 6, "fanin")
    build = root / "build"
    assert run_doit(root, "rootfs").returncode == 0
    record, digests = build / ".doit.db", build / ".code-digests.json"
    # a file read within two seconds of its last change is not stored: let the recipes settle
    for recipe in (root / "recipes").glob("*.py"):
        recipe.write_bytes(recipe.read_bytes())
    time.sleep(2.1)
    assert run_doit(root, "rootfs").ran == set()  # stores the now settled digests
    assert digests.is_file()
    before = {p: p.stat().st_mtime_ns for p in (record, digests)}
    again = run_doit(root, "rootfs")
    assert again.returncode == 0 and again.ran == set(), again.output
    assert {p: p.stat().st_mtime_ns for p in (record, digests)} == before
    # a group task (no actions: doit "runs" it every time and records it, as for an alias
    # like the firmware's kernel_mppc) records what the file already holds
    assert run_doit(root, "install").returncode == 0
    assert run_doit(root, "install").returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (record, digests)}
    assert run_doit(root, "install").returncode == 0
    assert {p: p.stat().st_mtime_ns for p in (record, digests)} == before

    # what changed is written: a record that is gone, an edit that runs stages (the entries
    # doit keeps for them are the same, so the file may stay as it is, but it stays whole)
    top = root / "recipes" / f"{name_of(5)}.py"
    top.write_text(top.read_text() + "# edited\n")
    edited = run_doit(root, "rootfs")
    assert edited.returncode == 0 and f"install:{name_of(5)}" in edited.ran, edited.output
    assert f"install:{name_of(5)}" in json.loads(record.read_text())
    record.unlink()
    assert run_doit(root, "rootfs").returncode == 0
    assert json.loads(record.read_text()) == {}  # written again; a no-op records no task
