"""Running doit on a generated project as a user would, and reading what it did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_RAN = re.compile(r"^\.  (\S+)$")
_SKIPPED = re.compile(r"^-- (\S+)$")


@dataclass
class DoitRun:
    returncode: int
    output: str
    ran: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)

    def stages(self, package: str) -> set[str]:
        """The stages of one package that ran, e.g. {"configure", "build", "install"}."""
        return {t.split(":", 1)[0] for t in self.ran if t.endswith(f":{package}")}


def doit_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FWBUILD_")}
    env.pop("ROOTFS_DIR", None)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env.update(extra)
    return env


def run_doit(
    project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> DoitRun:
    proc = subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=project,
        env=env or doit_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    run = DoitRun(proc.returncode, out)
    for line in proc.stdout.splitlines():
        if m := _RAN.match(line):
            run.ran.add(m[1])
        elif m := _SKIPPED.match(line):
            run.skipped.add(m[1])
    return run


NOOP_SETTLE_S = 2.1  # fwbuild.noop keeps no record of inputs younger than 2 s


def run_until_recorded(
    project: Path,
    *args: str,
    env: dict[str, str] | None = None,
    build: Path | None = None,
    attempts: int = 2,
) -> tuple[DoitRun, str]:
    """No-ops, each once the inputs are settled, until one keeps its record (fwbuild.noop): the
    first no-op after a fresh build may still write the board's validation memo, which is not
    a no-op. The last run and why it kept no record ("" when it kept one)."""
    records = (build or project / "build") / ".noop"
    why = "no run"
    for _ in range(attempts):
        time.sleep(NOOP_SETTLE_S)
        started = time.time()
        run = run_doit(project, *args, env=env)
        if run.returncode:
            return run, f"exit {run.returncode}"
        why = "".join(p.read_text() for p in records.glob("*.why") if p.stat().st_mtime >= started)
        if not why:
            return run, ""
    return run, why
