"""The real userland from pristine sources for the second boards, with the same recipes as the
SISO board and no edit: configs/mipsel.toml (little-endian MIPS32r2, musl via zig) and
configs/armv5te.toml (ARM926EJ-S, musl via zig). Every binary is a static ELF for the board's
machine that runs under qemu-user (``qemu-mipsel``; ``qemu-arm -cpu arm926``, which has no
instruction newer than ARMv5TE), and pppd's own MS-CHAPv2 code passes RFC 2759's test vector
there.

Runs when the pinned sources are at hand (see tests/support/real.py). Each board builds in a
directory of its own: a temporary one, or ``$FWBUILD_REAL_BUILD_DIR-<board>`` when that is set
(the SISO board's build keeps ``$FWBUILD_REAL_BUILD_DIR`` itself).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import need
from elftools.elf.elffile import ELFFile
from support.real import REPO, real_doit, real_env
from test_real_userland import HOST_PATHS, RUNS, _pppd_cflags

pytestmark = pytest.mark.real_sources

PACKAGES = ("busybox", "rngseed", "ipsec-tools", "ppp", "l2tpd")
# board -> (ELF machine, how to run one of its programs)
BOARDS = {
    "mipsel": ("EM_MIPS", ["qemu-mipsel", "-cpu", "24Kc"]),
    "armv5te": ("EM_ARM", ["qemu-arm", "-cpu", "arm926"]),
}


@pytest.fixture(scope="module", params=sorted(BOARDS))
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    board: str = request.param
    base = os.environ.get("FWBUILD_REAL_BUILD_DIR")
    build = Path(f"{base}-{board}") if base else tmp_path_factory.mktemp(f"real-{board}")
    env = real_env(build, FWBUILD_BOARD=str(REPO / "configs" / f"{board}.toml"))
    env.update(
        FWBUILD_BUILD_DIR=str(build),
        FWBUILD_OUTPUT_DIR=str(build / "output"),
    )
    run = real_doit(env, *(f"install:{p}" for p in PACKAGES))
    assert run.returncode == 0, run.output
    return board, build


def staged(build: Path, rel: str) -> Path:
    for pkg in PACKAGES:
        path = build / pkg / "staging" / rel
        if path.exists():
            return path
    raise AssertionError(f"{rel} is in no staging directory")


def qemu(board: str, *argv: str) -> subprocess.CompletedProcess[str]:
    runner = BOARDS[board][1]
    return subprocess.run([need(runner[0]), *runner[1:], *argv], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


@pytest.mark.parametrize("rel", sorted(RUNS))
def test_binary_is_static_for_the_board_and_runs_under_qemu(
    built: tuple[str, Path], rel: str
) -> None:
    board, build = built
    path = staged(build, rel)
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        assert elf.header.e_machine == BOARDS[board][0]
        assert elf.little_endian and elf.elfclass == 32
        assert not any(s.header.p_type == "PT_INTERP" for s in elf.iter_segments())
    strings = subprocess.run(["strings", str(path)], capture_output=True).stdout
    for leak in HOST_PATHS:
        assert leak not in strings, f"{rel} carries the host path {leak!r}"
    args, expected = RUNS[rel]
    result = qemu(board, str(path), *args)
    assert "Illegal instruction" not in result.stderr
    assert "Bus error" not in result.stderr
    assert expected.lower() in (result.stdout + result.stderr).lower(), result


def test_pppd_mschapv2_passes_the_rfc2759_vector(built: tuple[str, Path], tmp_path: Path) -> None:
    """tests/data/mschapv2_vector.c linked with the board's pppd objects (main.o renamed), as
    tests/test_real_userland.py does for the i586. On MIPS it died of SIGBUS before our patch
    0003 (pppd's SHA-1 read the caller's bytes as 32-bit words, in place)."""
    board, build = built
    pppd = build / "ppp" / "src" / "pppd"
    triplet = {"mipsel": "mipsel-linux-musl", "armv5te": "arm-linux-musleabi"}[board]
    cc = build / "toolchain" / "bin" / f"{triplet}-cc"
    cflags = _pppd_cflags()
    objects = sorted(p.name for p in pppd.glob("*.o") if p.name != "main.o")
    out = tmp_path / "mschapv2_vector"
    subprocess.run([str(cc), *cflags, "-Dmain=pppd_main", "-c", "main.c", "-o",
                    str(tmp_path / "main.o")], cwd=pppd, check=True)  # fmt: skip
    subprocess.run([str(cc), *cflags, "-c", str(REPO / "tests/data/mschapv2_vector.c"), "-o",
                    str(tmp_path / "vector.o")], cwd=pppd, check=True)  # fmt: skip
    subprocess.run([str(cc), "-Os", "-static", "-o", str(out), str(tmp_path / "vector.o"),
                    str(tmp_path / "main.o"), *objects], cwd=pppd, check=True)  # fmt: skip
    result = qemu(board, str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF" in result.stdout
    assert "S=407A5589115FD0D6209F510FE9C04566932CDA56" in result.stdout
    assert result.stdout.rstrip().endswith("PASS")
