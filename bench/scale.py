"""How a no-op build scales with the number of packages: generated boards of N trivial packages.

    python bench/scale.py                    N = 100, 300, 1000 for chain, fan-in and random DAG
    python bench/scale.py -n 1000 5000 --shapes chain --json

Each board (tests/support/scalepkgs.py) has N packages with ``toolchain = "none"`` whose install
writes one file, so a build is pure engine. After one full build, a no-change ``doit rootfs`` is
timed (best of ``--runs``) against the floor, a trivial one-task dodo timed in turns with it.
Columns: N, shape, no-op seconds, milliseconds per package above the floor, the bytes of every
stamp, and the no-op's peak RSS. Targets (issue 15): ≤ 1 ms/pkg above the floor at N = 1000 for a
chain and a fan-in, stamps linear in N, peak RSS ≤ 60 MiB.

The no-op timed is the one a user repeats: the inputs settled (2 s), a first no-op evaluates in
full and keeps its record (fwbuild.noop), the timed ones take the shortcut. The full evaluation
(the first no-op after a change, or ``FWBUILD_FULL_CHECK=1``) is timed too: the ``full`` columns.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from support.doitrun import doit_env, run_until_recorded  # noqa: E402
from support.scalepkgs import SHAPES, make_scale_project  # noqa: E402

TRIVIAL_DODO = '''\
def task_only():
    """one task that is always up to date"""
    return {"actions": ["true"], "uptodate": [True]}
'''


def _env() -> dict[str, str]:
    env = doit_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as people run it: bytecode cached
    return env


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and the exit status of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} in {cwd} failed:\n{err.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024, proc.returncode


def stamp_bytes(build: Path) -> int:
    return sum(p.stat().st_size for p in build.glob("*/stamps/*.json"))


def floor(work: Path, runs: int) -> Path:
    trivial = work / "trivial"
    trivial.mkdir(exist_ok=True)
    (trivial / "dodo.py").write_text(TRIVIAL_DODO)
    return trivial


def settle(cwd: Path, task: str, env: dict[str, str], build: Path | None = None) -> None:
    """No-ops until one keeps its record (fwbuild.noop), so that the timed ones take the
    shortcut; says so when none did."""
    _, why = run_until_recorded(cwd, task, env=env, build=build, attempts=3)
    if why:
        print(f"bench: doit {task} in {cwd} kept no no-op record: {why.strip()}", file=sys.stderr)


def measure(work: Path, n: int, shape: str, runs: int = 5) -> dict[str, float | int | str]:
    """Build an N-package board of one shape once, then time its no-op against the floor."""
    env = _env()
    doit = [sys.executable, "-m", "doit"]
    project = make_scale_project(work / f"{shape}-{n}", n, shape)
    build = subprocess.run([*doit, "rootfs"], cwd=project, env=env, capture_output=True, text=True)
    if build.returncode:
        raise SystemExit(
            f"{project}: the first build failed:\n{build.stdout[-3000:]}{build.stderr}"
        )
    trivial = floor(work, runs)
    full_env = {**env, "FWBUILD_FULL_CHECK": "1"}
    settle(project, "rootfs", env)
    best, full, base, rss, full_rss = (float("inf"),) * 3 + (0.0, 0.0)
    for _ in range(runs):  # in turns: load on the machine hits all alike
        wall, peak, _ = timed([*doit, "rootfs"], project, env)
        best, rss = min(best, wall), max(rss, peak)
        wall, peak, _ = timed([*doit, "rootfs"], project, full_env)
        full, full_rss = min(full, wall), max(full_rss, peak)
        base = min(base, timed([*doit, "only"], trivial, env)[0])
    return {
        "n": n,
        "shape": shape,
        "noop_s": round(best, 4),
        "floor_s": round(base, 4),
        "ms_per_pkg": round(max(best - base, 0.0) / n * 1000, 4),
        "stamp_bytes": stamp_bytes(project / "build"),
        "peak_rss_mib": round(rss, 1),
        "full_s": round(full, 4),
        "full_ms_per_pkg": round(max(full - base, 0.0) / n * 1000, 4),
        "full_rss_mib": round(full_rss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    if not args.json:
        print(
            f"{'N':>6} {'shape':<6} {'no-op s':>8} {'ms/pkg':>7} {'stamp bytes':>12} {'RSS MiB':>8}"
            f" {'full s':>7} {'ms/pkg':>7} {'RSS MiB':>8}"
        )
    with tempfile.TemporaryDirectory(prefix="fwbuild-scale-") as tmp:
        for shape in args.shapes:
            for n in args.n:
                row = measure(Path(tmp), n, shape, args.runs)
                if args.json:
                    print(json.dumps(row, sort_keys=True), flush=True)
                else:
                    print(
                        f"{row['n']:>6} {row['shape']:<6} {row['noop_s']:>8.3f} "
                        f"{row['ms_per_pkg']:>7.3f} {row['stamp_bytes']:>12} "
                        f"{row['peak_rss_mib']:>8.1f} {row['full_s']:>7.3f} "
                        f"{row['full_ms_per_pkg']:>7.3f} {row['full_rss_mib']:>8.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
