"""The engine's benchmarks, measured in one run on the generated packages.

    python bench/run.py --json      one JSON object with every figure

- ``noop_ratio``: a no-change ``doit rootfs`` on the generated project against a trivial one-task
  dodo (both best of several runs; target ≤ 1.3), as a user repeats it (the shortcut of
  fwbuild.noop), and ``noop_full_ratio``, evaluated in full (``FWBUILD_FULL_CHECK=1``);
- ``incremental_s``: a ``doit rootfs`` after editing one overlay config file (target ≤ 1.0 s;
  only the rootfs task may run);
- ``download_ratio``: our downloader's throughput against curl from loopback (target ≥ 0.8);
- ``patch_ratio``: applying a patch series against GNU patch (target ≤ 2.0);
- ``scale_noop_ms_per_pkg``: a no-op's cost per package above the floor on generated boards of
  1000 trivial packages, the worse of a chain and a fan-in (bench/scale.py; target ≤ 1 ms), with
  ``scale_noop_rss_mb`` (the no-op's peak RSS, target ≤ 60) and ``scale_stamp_bytes_per_pkg``;
- ``clean_overhead_pct``: the share of a clean ``doit rootfs`` of the generated project spent in
  the engine's own work (stages minus the commands they run: unpacking, copying, images;
  bench/bench_build.py), and ``peak_rss_mb``, the build's peak RSS. Its two packages compile in
  about a second, so this mostly measures the rootfs images (stripping, gzip -9, ext2, SBOM), a
  fixed cost of any board, not the share of a firmware's build: see ``clean_real_overhead_pct``;
- ``clean_real_overhead_pct``: with FWBUILD_BENCH_REAL_BUILD_DIR (below), the engine's share of
  the real firmware's build, read from that tree (the bench builds nothing): every stage's
  seconds (its stamp) minus the seconds of the commands it ran (its log's ``# fwbuild: exit 0
  after … s`` lines) is the engine's work in that stage (unpacking with the tar and
  decompressor it starts, patching, copying, images, SBOM), summed over the packages' stages and
  the rootfs stages, over the sum of those stages' seconds (target ≤ 3). The denominator is
  the stages' own time rather than the build's wall time because a ``-n 2`` build runs stages
  side by side (the engine's work in one overlaps a compile in another, so over the wall time it
  would count twice), and because it stays defined when the tree's last build was not clean:
  each stage's stamp and log come from that stage's last run, so the figure is of the last run
  of every stage, a clean build's if the tree was last built clean (and an incremental
  rebuild's much shorter stages then weigh less, which only raises the share). With it come
  ``clean_real_in_process_s`` and ``clean_real_stage_s``, and, when the tree's report.json
  records a build in which every stage ran (a clean build), ``clean_real_wall_pct``: the
  same engine seconds over that build's wall time;
- ``cache_hit_s``: restoring a package from a warm local build cache (fwbuild.cache), with
  ``cache_build_s`` (building it) and ``cache_hit_ratio`` (the first over the second);
- ``noop_real_ratio`` / ``noop_real_kernel_ratio``: with FWBUILD_BENCH_REAL_BUILD_DIR naming an
  up-to-date build directory of the real board (configs/siso.toml; the other FWBUILD_*
  variables as that build had them), a no-op ``doit rootfs`` / ``doit kernel_mppc`` against the
  trivial dodo, median of paired runs (target ≤ 1.3). Left out when the variable is unset, and
  refused when the tree is not up to date (a bench never builds the firmware). These are the
  no-op a user repeats, which takes the shortcut of fwbuild.noop once a no-op has kept its
  record; ``noop_real_full_ratio`` / ``noop_real_kernel_full_ratio`` are the full evaluation
  (``FWBUILD_FULL_CHECK=1``, as the first no-op after a change evaluates). With valgrind
  installed, also ``…_instr_ratio`` of each: the same against the same floor in instructions
  executed (callgrind), which a loaded machine does not move (wall-time ratios of a 0.2 s
  command swing by ±0.15 here);

Absolute times on shared machines are noisy; compare ratios taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from support.doitrun import doit_env, run_doit  # noqa: E402
from support.genpkgs import make_dist, make_project  # noqa: E402
from support.httpserver import FaultServer  # noqa: E402

TRIVIAL_DODO = '''\
def task_only():
    """one task that is always up to date"""
    return {"actions": ["true"], "uptodate": [True]}
'''


def _bench_env() -> dict[str, str]:
    # As people run it: Python caches bytecode (a sandbox may switch that off for everything).
    env = doit_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _best_of_interleaved(n: int, runs: dict[str, tuple[list[str], Path]]) -> dict[str, float]:
    """Best wall time of each command, the commands taking turns (load changes hit both)."""
    best = dict.fromkeys(runs, float("inf"))
    env = _bench_env()
    for _ in range(n):
        for name, (argv, cwd) in runs.items():
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def measure_noop_and_incremental(work: Path) -> dict[str, float]:
    dist = make_dist(work / "dist")
    mirrors = work / "mirrors"
    dist.write(mirrors / "upstream")
    with FaultServer(mirrors) as srv:
        project = make_project(work / "project", dist, srv.url)
        first = run_doit(project, "rootfs")
        if first.returncode != 0:
            raise SystemExit(f"the generated project does not build:\n{first.output}")
        trivial = work / "trivial"
        trivial.mkdir()
        (trivial / "dodo.py").write_text(TRIVIAL_DODO)
        doit = [sys.executable, "-m", "doit"]
        from scale import settle

        settle(project, "rootfs", _bench_env())  # its no-op record (fwbuild.noop)
        best = _best_of_interleaved(
            15,
            {
                "noop": ([*doit, "rootfs"], project),
                "full": (["env", "FWBUILD_FULL_CHECK=1", *doit, "rootfs"], project),
                "base": ([*doit, "only"], trivial),
            },
        )
        noop, base = best["noop"], best["base"]
        conf = project / "configs" / "rootfs" / "etc" / "hello.conf"
        incremental = float("inf")
        for i in range(3):
            conf.write_text(f"greeting = edit {i}\n")
            start = time.perf_counter()
            run = run_doit(project, "rootfs")
            incremental = min(incremental, time.perf_counter() - start)
            if run.ran != {"rootfs"}:
                raise SystemExit(f"an overlay edit ran {sorted(run.ran)}, not just rootfs")
    return {
        "noop_s": round(noop, 4),
        "trivial_dodo_s": round(base, 4),
        "noop_ratio": round(noop / base, 3),
        "noop_full_ratio": round(best["full"] / base, 3),
        "incremental_s": round(incremental, 4),
    }


def _wait(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a command that must succeed (scale.py's timer)."""
    from scale import timed

    wall, rss, _ = timed(argv, cwd, env)
    return wall, rss


def measure_scale(work: Path) -> dict[str, float]:
    import scale

    rows = [scale.measure(work, 1000, shape, runs=5) for shape in ("chain", "fanin")]
    return {
        "scale_noop_ms_per_pkg": max(float(r["ms_per_pkg"]) for r in rows),
        "scale_noop_rss_mb": max(float(r["peak_rss_mib"]) for r in rows),
        "scale_full_ms_per_pkg": max(float(r["full_ms_per_pkg"]) for r in rows),
        "scale_full_rss_mb": max(float(r["full_rss_mib"]) for r in rows),
        "scale_stamp_bytes_per_pkg": max(int(r["stamp_bytes"]) // 1000 for r in rows),
    }


def measure_clean(work: Path) -> dict[str, float]:
    """One clean ``doit rootfs`` of the generated project (downloads warm, toolchain ready)."""
    import bench_build

    dist = make_dist(work / "dist")
    dist.write(work / "mirrors" / "upstream")
    with FaultServer(work / "mirrors") as srv:
        project = make_project(work / "project", dist, srv.url)
        env = {**_bench_env(), "FWBUILD_OFFLINE": "1"}
        for warm in ("source", "toolchain"):
            if run_doit(project, warm).returncode != 0:
                raise SystemExit(f"the generated project cannot {warm}")
        shutil.rmtree(project / "build" / "hello", ignore_errors=True)
        shutil.rmtree(project / "build" / "libgreet", ignore_errors=True)
        wall, rss = _wait([sys.executable, "-m", "doit", "-n", "1", "rootfs"], project, env)
    build = project / "build"
    in_process = bench_build.stage_seconds(build) - bench_build.command_seconds(build)
    return {"clean_overhead_pct": round(100 * in_process / wall, 2), "peak_rss_mb": round(rss, 1)}


def measure_cache(work: Path) -> dict[str, float]:
    """``cache_hit_s``: restoring the generated ``hello`` package from a warm local build cache
    (its install task's seconds in build/report.json, best of 3, the work tree removed before
    each), against ``cache_build_s``, building it from its sources (its five stages' seconds,
    the cache filled by that build); ``cache_hit_ratio`` is the first over the second."""
    dist = make_dist(work / "dist")
    dist.write(work / "mirrors" / "upstream")
    with FaultServer(work / "mirrors") as srv:
        project = make_project(work / "project", dist, srv.url)
        env = {**_bench_env(), "FWBUILD_CACHE_DIR": str(work / "cache")}
        first = run_doit(project, "rootfs", env=env)
        if first.returncode != 0:
            raise SystemExit(f"the generated project does not build:\n{first.output}")

        def seconds() -> dict[str, float]:
            report = json.loads((project / "build" / "report.json").read_text())
            return {t["task"]: t["seconds"] or 0.0 for t in report["tasks"]}

        built = sum(s for task, s in seconds().items() if task.endswith(":hello"))
        hits = []
        for _ in range(3):
            shutil.rmtree(project / "build" / "hello")
            run = run_doit(project, "install:hello", env=env)
            if run.returncode != 0 or run.ran != {"install:hello"}:
                raise SystemExit(f"hello was not restored from the cache:\n{run.output}")
            hits.append(seconds()["install:hello"])
    return {
        "cache_hit_s": round(min(hits), 4),
        "cache_build_s": round(built, 4),
        "cache_hit_ratio": round(min(hits) / built, 4),
    }


def measure_clean_real(build_dir: str) -> dict[str, float]:
    """``clean_real_overhead_pct`` and its parts from a built tree of the real board (see the
    module docstring): stamps, logs and report.json are read, nothing is built."""
    import bench_build

    build = Path(build_dir)
    stages = bench_build.stage_seconds(build)
    if stages <= 0:
        print(f"bench: clean_real_overhead_pct left out: {build_dir} has no stage stamps",
              file=sys.stderr)  # fmt: skip
        return {}
    in_process = stages - bench_build.command_seconds(build)
    results = {
        "clean_real_overhead_pct": round(100 * in_process / stages, 2),
        "clean_real_in_process_s": round(in_process, 2),
        "clean_real_stage_s": round(stages, 2),
    }
    try:
        report = json.loads((build / "report.json").read_text())
    except (OSError, ValueError):
        return results
    staged = [t for t in report.get("tasks", []) if t.get("package") or t.get("stage") == "rootfs"]
    if staged and all(t.get("result") == "ran" for t in staged) and report.get("seconds"):
        results["clean_real_wall_pct"] = round(100 * in_process / float(report["seconds"]), 2)
    return results


def real_is_current(env: dict[str, str], task: str) -> str | None:
    """Why the real tree is not a no-op for ``task`` (None: it is); read, never built."""
    code = (
        "import sys; from pathlib import Path\n"
        "from fwbuild.project import Project, STAGES, stamp_matches\n"
        "p = Project.load(Path('configs/siso.toml'))\n"
        "names = list(p.packages) if sys.argv[1] == 'rootfs' else ['linux']\n"
        "stale = [f'{s}:{n}' for n in names for s in STAGES\n"
        "         if not stamp_matches(p.stamp_path(n, s), p.key(n, s))]\n"
        "if sys.argv[1] == 'rootfs' and not stamp_matches(p.rootfs_stamp, p.rootfs_key):\n"
        "    stale.append('rootfs')\n"
        "print(' '.join(stale))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, task], cwd=HERE.parent, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode:
        return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
    return f"not up to date: {proc.stdout.strip()}" if proc.stdout.strip() else None


def measure_real(work: Path, build_dir: str, pairs: int = 9) -> dict[str, float]:
    """No-op ``doit rootfs`` and ``doit kernel_mppc`` on a built tree of the real board, each
    paired with the trivial dodo (median of the pairs' ratios: load hits both alike)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["FWBUILD_BUILD_DIR"] = build_dir
    env["PYTHONPATH"] = str(HERE.parent)
    trivial = work / "trivial-real"
    trivial.mkdir()
    (trivial / "dodo.py").write_text(TRIVIAL_DODO)
    doit = [sys.executable, "-m", "doit"]
    from scale import settle

    results: dict[str, float] = {}
    floor = instructions([*doit, "only"], trivial, env) if shutil.which("valgrind") else 0
    for task, name in (("rootfs", "noop_real"), ("kernel_mppc", "noop_real_kernel")):
        why = real_is_current(env, task)
        if why:
            print(f"bench: {name}_ratio left out: {build_dir}: {why}", file=sys.stderr)
            continue
        # As a user repeats it (the shortcut, fwbuild.noop), and evaluated in full.
        settle(HERE.parent, task, env, Path(build_dir))
        for key, run_env in ((name, env), (f"{name}_full", {**env, "FWBUILD_FULL_CHECK": "1"})):
            ratios, noops = [], []
            for _ in range(pairs):
                noop = _wait([*doit, task], HERE.parent, run_env)[0]
                base = _wait([*doit, "only"], trivial, env)[0]
                ratios.append(noop / base)
                noops.append(noop)
            results[f"{key}_ratio"] = round(statistics.median(ratios), 3)
            results[f"{key}_s"] = round(statistics.median(noops), 4)
            if floor:
                ratio = instructions([*doit, task], HERE.parent, run_env) / floor
                results[f"{key}_instr_ratio"] = round(ratio, 3)
    return results


def instructions(argv: list[str], cwd: Path, env: dict[str, str], runs: int = 3) -> int:
    """Instructions a command executes (valgrind's callgrind; the same count on a busy machine):
    the last of ``runs`` runs under it, so that Python's bytecode caches are warm and a no-op's
    record (fwbuild.noop: kept for this environment, valgrind's included) is made."""
    count = 0
    for _ in range(runs):
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
            cwd=cwd,
            env={**env, "PYTHONHASHSEED": "0"},  # the same dict layouts, run after run
            capture_output=True,
            text=True,
            check=True,
        )
        match = re.search(r"Collected : (\d+)", proc.stderr)
        if match is None:
            raise SystemExit(f"callgrind printed no instruction count:\n{proc.stderr[-2000:]}")
        count = int(match[1])
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["download", "patch", "scale", "clean", "real", "cache"],
    )
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fwbuild-bench-") as tmp:
        work = Path(tmp)
        (work / "noop").mkdir()
        results.update(measure_noop_and_incremental(work / "noop"))
        real = os.environ.get("FWBUILD_BENCH_REAL_BUILD_DIR")
        if real and "real" not in args.skip:
            results.update(measure_real(work, real))
            results.update(measure_clean_real(real))
        if "scale" not in args.skip:
            (work / "scale").mkdir()
            results.update(measure_scale(work / "scale"))
        if "cache" not in args.skip:
            (work / "cache").mkdir()
            results.update(measure_cache(work / "cache"))
        if "clean" not in args.skip:
            (work / "clean").mkdir()
            results.update(measure_clean(work / "clean"))
        # patching before the 200 MiB download: its dirty pages would slow the file writes
        if "patch" not in args.skip:
            import bench_patch

            (work / "patch").mkdir()
            results.update(bench_patch.measure(work / "patch"))
        if "download" not in args.skip:
            import bench_download

            (work / "download").mkdir()
            results.update(bench_download.measure(work / "download"))
    if args.json:
        print(json.dumps(results, sort_keys=True))
    else:
        for key, value in sorted(results.items()):
            print(f"{key:>20}  {value}")


if __name__ == "__main__":
    main()
