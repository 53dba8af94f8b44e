"""Full clean builds: the engine's overhead against its own commands, and ``-n 2`` against ``-n 1``.

    python bench/bench_build.py            the generated packages (always available)
    python bench/bench_build.py --real     the SISO firmware from the sources FWBUILD_REAL_OVERRIDES
                                           names (see tests/support/real.py), plus the kernel alone

Every command a stage runs logs its own duration (``# fwbuild: exit 0 after 1.234 s``) and every
stamp records its stage's. ``overhead_pct`` is the wall time of a clean ``doit rootfs`` (warm
download cache) not spent in those commands — unpacking, patching, staging and images included —
as a share of it; ``orchestration_pct`` only what lies outside every stage (doit, keys, stamps).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

from support.doitrun import doit_env, run_doit  # noqa: E402
from support.genpkgs import make_dist, make_project  # noqa: E402
from support.httpserver import FaultServer  # noqa: E402

_TOOK = re.compile(rb"^# fwbuild: exit \d+ after ([0-9.]+) s$", re.M)


def command_seconds(build: Path) -> float:
    return sum(
        float(m) for log in build.glob("*/logs/*.log") for m in _TOOK.findall(log.read_bytes())
    )


def stage_seconds(build: Path) -> float:
    """What the stages themselves took (each stamp records it), commands and in-process work."""
    stamps = [*build.glob("*/stamps/*.json"), *build.glob("stamps/rootfs-*.json")]
    return sum(float(json.loads(s.read_text()).get("seconds", 0)) for s in stamps)


def timed(project: Path, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    run = run_doit(project, *args, env=env)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"`doit {' '.join(args)}` failed:\n{run.output[-3000:]}")
    return seconds


def clean_builds(project: Path, env_for) -> dict[str, float]:
    results: dict[str, float] = {}
    for jobs in ("1", "2"):
        env = env_for(f"n{jobs}")
        build = Path(env["FWBUILD_BUILD_DIR"])
        shutil.rmtree(build, ignore_errors=True)
        timed(project, env, "toolchain")  # zig's libc cache is per machine, not per build
        wall = timed(project, env, "-n", jobs, "rootfs")
        results[f"clean_n{jobs}_s"] = round(wall, 2)
        if jobs == "1":
            commands = command_seconds(build)
            stages = stage_seconds(build)
            results["commands_s"] = round(commands, 2)
            # strict: everything that is not a configure/make command, unpacking included
            results["overhead_pct"] = round(100 * (wall - commands) / wall, 2)
            # unpacking, patching, copying override trees, staging, images: the engine's work
            results["in_process_s"] = round(stages - commands, 2)
            # doit, keys, stamps, start-up: time outside every stage
            results["orchestration_pct"] = round(100 * (wall - stages) / wall, 2)
        results["noop_s"] = round(timed(project, env, "rootfs"), 3)
    results["parallel_ratio"] = round(results["clean_n2_s"] / results["clean_n1_s"], 3)
    return results


def generated(work: Path) -> dict[str, float]:
    dist = make_dist(work / "dist")
    dist.write(work / "mirrors" / "upstream")
    with FaultServer(work / "mirrors") as srv:
        project = make_project(work / "project", dist, srv.url)
        assert run_doit(project, "source").returncode == 0  # warm download cache

        def env_for(tag: str) -> dict[str, str]:
            return doit_env(FWBUILD_BUILD_DIR=str(work / f"build-{tag}"), FWBUILD_OFFLINE="1")

        return clean_builds(project, env_for)


def real(work: Path) -> dict[str, float]:
    overrides = os.environ.get("FWBUILD_REAL_OVERRIDES")
    if not overrides:
        raise SystemExit("--real needs FWBUILD_REAL_OVERRIDES (see tests/support/real.py)")

    def env_for(tag: str) -> dict[str, str]:
        build = work / f"build-{tag}"
        return doit_env(
            FWBUILD_OVERRIDES=overrides,
            FWBUILD_BUILD_DIR=str(build),
            FWBUILD_OUTPUT_DIR=str(build / "output"),
            FWBUILD_PKI_DIR=str(work / "pki"),
            FWBUILD_SECRETS=str(work / "secrets.toml"),
            FWBUILD_DL_DIR=os.environ.get("FWBUILD_DL_DIR", str(REPO / "dl")),
            FWBUILD_OFFLINE="1",
        )

    results = {f"firmware_{k}": v for k, v in clean_builds(REPO, env_for).items()}
    env = env_for("kernel")
    shutil.rmtree(env["FWBUILD_BUILD_DIR"], ignore_errors=True)
    timed(REPO, env, "toolchain")
    results["kernel_clean_s"] = round(timed(REPO, env, "kernel_mppc"), 2)
    results["kernel_noop_s"] = round(min(timed(REPO, env, "kernel_mppc") for _ in range(3)), 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", action="store_true", help="the real firmware and kernel")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fwbuild-bench-build-") as tmp:
        results = real(Path(tmp)) if args.real else generated(Path(tmp))
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
