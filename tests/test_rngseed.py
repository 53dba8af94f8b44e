"""rngseed (src/rngseed/), our boot helper, built with the board's zig toolchain for the i586 and
run under ``qemu-i386 -cpu pentium``: a usage message instead of writing a file named after an
option, and a non-zero exit when it could not credit or save a seed (the boot script goes on).

qemu-user does not pass the RNDADDENTROPY ioctl on to the host (it answers ENOSYS), so crediting
always fails here: the test never changes the host's entropy accounting, and it is exactly the
failure path whose exit status the boot script sees.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import need

from fwbuild.toolchain import ZigToolchain

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rngseed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("rngseed")
    toolchain = ZigToolchain(
        arch="x86", cpu="i586", libc="musl", triplet="i586-linux-musl", bindir=tmp / "bin"
    )
    env = {**os.environ, **toolchain.env()}
    out = tmp / "rngseed"
    subprocess.run(
        [env["CC"], *env["CFLAGS"].split(), *env["LDFLAGS"].split(), "-o", str(out),
         str(REPO / "src" / "rngseed" / "rngseed.c")],
        env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return out


def run(binary: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("qemu-i386"), "-cpu", "pentium", str(binary), *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_prints_usage_and_writes_nothing(rngseed: Path, tmp_path: Path, option: str) -> None:
    result = run(rngseed, option, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: rngseed [SEED_FILE]")
    assert "Illegal instruction" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no seed file named "--help" or "-h"


@pytest.mark.parametrize("args", [["--seed", "x"], ["-x"], ["a", "b"], [""]])
def test_bad_arguments_are_a_usage_error(rngseed: Path, tmp_path: Path, args: list[str]) -> None:
    result = run(rngseed, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Usage: rngseed" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_seed_that_cannot_be_saved_is_a_failure(rngseed: Path, tmp_path: Path) -> None:
    result = run(rngseed, str(tmp_path / "missing-dir" / "seed"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot write" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_failed_crediting_is_a_failure_but_the_next_seed_is_saved(
    rngseed: Path, tmp_path: Path
) -> None:
    seed = tmp_path / "seed"
    seed.write_bytes(os.urandom(512))
    result = run(rngseed, str(seed), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"rngseed: crediting {seed}:" in result.stderr
    assert "crediting CPU timing jitter:" in result.stderr  # the fallback was tried too
    assert "credited" not in result.stdout
    assert seed.stat().st_size == 512 and seed.stat().st_mode & 0o777 == 0o600
