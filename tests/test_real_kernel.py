"""The real Linux 2.6.11 (+MPPE/MPPC): `doit kernel_mppc`, then a boot on an emulated Pentium.

The boot initramfs holds one static program (tests/data/boot_probe.c) that prints a marker, the
kernel's crypto algorithms, whether the MPPE/MPPC driver registered, opens /dev/ppp and a PF_KEY
socket, and reboots (which -no-reboot turns into QEMU's exit).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import need
from support.real import REPO, real_doit, real_env

from fwbuild.images import write_cpio
from fwbuild.rootfs import Entry

pytestmark = pytest.mark.real_sources


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    env = real_env(tmp_path_factory.mktemp("real-kernel"))
    run = real_doit(env, "kernel_mppc")
    assert run.returncode == 0, run.output
    build = Path(env["FWBUILD_BUILD_DIR"])
    return build / "linux" / "staging" / "boot" / "bzImage", env


def test_kernel_config_has_what_the_seed_asks(kernel: tuple[Path, dict[str, str]]) -> None:
    bzimage, _ = kernel
    config = (bzimage.parent / "config").read_text().splitlines()
    for symbol in ("CONFIG_CRYPTO_ARC4=y", "CONFIG_CRYPTO_SHA1=y", "CONFIG_PPP_MPPE_MPPC=y",
                   "CONFIG_M586=y", "CONFIG_NET_KEY=y", "CONFIG_INET_ESP=y",
                   "CONFIG_LEGACY_PTYS=y"):  # fmt: skip
        assert symbol in config


def test_noop_kernel_mppc_runs_nothing(kernel: tuple[Path, dict[str, str]]) -> None:
    _, env = kernel
    again = real_doit(env, "kernel_mppc")
    assert again.returncode == 0 and again.ran == set(), again.output


def test_kernel_boots_on_a_pentium(kernel: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    bzimage, env = kernel
    qemu = need("qemu-system-i386")
    cc = Path(env["FWBUILD_BUILD_DIR"]) / "toolchain" / "bin" / "i586-linux-musl-cc"
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run([str(cc), "-static", "-Os", "-o", str(root / "init"),
                    str(REPO / "tests" / "data" / "boot_probe.c")], check=True)  # fmt: skip
    entries = [
        Entry("/dev", "d", 0o755),
        Entry("/dev/console", "c", 0o600, major=5, minor=1),
        Entry("/init", "f", 0o755),
        Entry("/proc", "d", 0o755),
    ]
    (root / "dev").mkdir()
    (root / "proc").mkdir()
    initrd = tmp_path / "probe.cpio.gz"
    write_cpio(entries, root, initrd, 0)
    boot = subprocess.run(
        [qemu, "-cpu", "pentium", "-m", "64", "-nographic", "-no-reboot", "-kernel",
         str(bzimage), "-initrd", str(initrd), "-append", "console=ttyS0 panic=-1",
         "-netdev", "user,id=n0,restrict=on", "-device", "rtl8139,netdev=n0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    console = boot.stdout
    assert "Linux version 2.6.11" in console
    assert "MPPE/MPPC encryption/compression module registered" in console
    assert "PROBE: uname Linux 2.6.11 i586" in console
    assert "PROBE: RESULT PASS" in console, console[-3000:]
