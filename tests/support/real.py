"""Tests on the real 2005 sources, which cannot be downloaded here.

They run when ``FWBUILD_REAL_OVERRIDES`` names a local overrides file (see README, "Building from
your own sources") that points every package of the board at real sources; they are skipped with
that reason otherwise. ``FWBUILD_REAL_BUILD_DIR`` keeps the build between runs (default: a
temporary directory, so a run builds from scratch); ``FWBUILD_DL_DIR``, when set, is the download
cache that holds the upstream tarballs one has (OpenSSL's and BusyBox's match their digests).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.doitrun import DoitRun, doit_env, run_doit

REPO = Path(__file__).resolve().parents[2]


def real_overrides() -> Path:
    raw = os.environ.get("FWBUILD_REAL_OVERRIDES")
    if not raw:
        pytest.skip(
            "FWBUILD_REAL_OVERRIDES is not set: no real upstream sources on this machine "
            "(the generated-package tests cover the engine)"
        )
    path = Path(raw)
    if not path.is_file():
        pytest.fail(f"FWBUILD_REAL_OVERRIDES={raw} does not exist")
    return path


def real_env(build_dir: Path, **extra: str) -> dict[str, str]:
    build = Path(os.environ.get("FWBUILD_REAL_BUILD_DIR", build_dir))
    if os.environ.get("FWBUILD_DL_DIR"):
        extra.setdefault("FWBUILD_DL_DIR", os.environ["FWBUILD_DL_DIR"])
    return doit_env(
        FWBUILD_OVERRIDES=str(real_overrides()),
        FWBUILD_BUILD_DIR=str(build),
        FWBUILD_OUTPUT_DIR=str(build / "output"),
        FWBUILD_PKI_DIR=str(build / "pki"),
        FWBUILD_SECRETS=str(build / "secrets.toml"),
        **extra,
    )


def real_doit(env: dict[str, str], *args: str) -> DoitRun:
    return run_doit(REPO, *args, env=env)
