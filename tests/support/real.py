"""Tests on the real 2005 sources.

They run whenever the board's pinned sources can be had without a network: every source and
patch of ``configs/siso.toml`` already verified in the download cache (``FWBUILD_DL_DIR``, default
the checkout's ``dl/``), whichever mirror kind brought it (upstream tarball, a git fallback, a
primary mirror), or an overrides file named by ``FWBUILD_REAL_OVERRIDES`` (README, "Building
from your own sources") that points the packages at local copies. The check is the build's own:
``doit source`` with downloads disabled, so a file that is missing or does not match its pinned
digest skips them with the build's message as the reason.

``FWBUILD_REAL_BUILD_DIR`` keeps the build between runs (default: a temporary directory, so a
run builds from scratch); the nightly workflow points it at the build directory of the firmware
it has just built, so the tests boot that firmware's kernel and binaries (see test_real_vpn.py).
``FWBUILD_REAL_LOG_DIR`` keeps the VMs' consoles and captures there (the nightly uploads them).
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pytest

from support.doitrun import DoitRun, doit_env, run_doit

REPO = Path(__file__).resolve().parents[2]

# A clean firmware build on a cold zig cache took 844 s on a busy 2-core machine, about 190 s on
# an idle one with the cache warm; a VPN module builds four boards. Margin: about 4x.
BUILD_TIMEOUT = 3600


def download_dir() -> Path:
    return Path(os.environ.get("FWBUILD_DL_DIR") or REPO / "dl").resolve()


def _source_env(build_dir: Path, **extra: str) -> dict[str, str]:
    overrides = os.environ.get("FWBUILD_REAL_OVERRIDES")
    if overrides:
        extra.setdefault("FWBUILD_OVERRIDES", overrides)
    return doit_env(FWBUILD_DL_DIR=str(download_dir()), FWBUILD_BUILD_DIR=str(build_dir), **extra)


@functools.cache
def _sources_missing() -> str | None:
    """None when every pinned source is at hand offline; otherwise why not (the build's words)."""
    overrides = os.environ.get("FWBUILD_REAL_OVERRIDES")
    if overrides and not Path(overrides).is_file():
        return f"FWBUILD_REAL_OVERRIDES={overrides} does not exist"
    if not download_dir().is_dir() and not overrides:
        return (
            f"no download cache at {download_dir()}: run `doit source` on a connected machine "
            "(or set FWBUILD_DL_DIR / FWBUILD_REAL_OVERRIDES); the generated-package tests "
            "cover the engine"
        )
    with tempfile.TemporaryDirectory(prefix="fwbuild-real-check-") as tmp:
        run = run_doit(REPO, "source", env=_source_env(Path(tmp), FWBUILD_OFFLINE="1"), timeout=600)
    if run.returncode == 0:
        return None
    lines = [line.strip() for line in run.output.splitlines() if line.strip()]
    why = [line for line in lines if line.startswith(("FAILED", "fwbuild:"))] or lines[-3:]
    return (
        f"the board's pinned sources are not all in {download_dir()} (run `doit source` on a "
        "connected machine, or set FWBUILD_REAL_OVERRIDES): " + " / ".join(why)
    )


def require_real_sources() -> None:
    missing = _sources_missing()
    if missing:
        if os.environ.get("FWBUILD_REAL_OVERRIDES") and "does not exist" in missing:
            pytest.fail(missing)
        pytest.skip(missing)


def real_env(build_dir: Path, **extra: str) -> dict[str, str]:
    require_real_sources()
    build = Path(os.environ.get("FWBUILD_REAL_BUILD_DIR", build_dir))
    return _source_env(
        build,
        FWBUILD_OUTPUT_DIR=str(build / "output"),
        FWBUILD_PKI_DIR=os.environ.get("FWBUILD_REAL_PKI_DIR", str(build / "pki")),
        FWBUILD_SECRETS=os.environ.get("FWBUILD_REAL_SECRETS", str(build / "secrets.toml")),
        **extra,
    )


def real_doit(env: dict[str, str], *args: str) -> DoitRun:
    return run_doit(REPO, *args, env=env, timeout=BUILD_TIMEOUT)


def log_dir(default: Path) -> Path:
    """Where the VMs' consoles and captures go: FWBUILD_REAL_LOG_DIR (kept) or the test's tmp."""
    raw = os.environ.get("FWBUILD_REAL_LOG_DIR")
    if not raw:
        return default
    path = Path(raw) / default.name
    path.mkdir(parents=True, exist_ok=True)
    return path
