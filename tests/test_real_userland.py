"""The real userland from pristine sources: every binary is a static i386 ELF free of host
paths that runs on an emulated Pentium, and pppd's MS-CHAPv2 passes RFC 2759's test vector.

Runs when the pinned sources are at hand (see tests/support/real.py).
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import need
from elftools.elf.elffile import ELFFile
from support.real import REPO, real_doit, real_env

pytestmark = pytest.mark.real_sources

PACKAGES = ("busybox", "rngseed", "ipsec-tools", "ppp", "l2tpd")
# program, arguments, what it must print (stdout and stderr together)
RUNS = {
    "usr/sbin/pppd": (["--version"], "pppd version 2.4.3"),
    "usr/sbin/chat": (["-h"], "Usage:"),
    "usr/sbin/pppstats": (["-x"], "Usage: pppstats"),
    "usr/sbin/rngseed": (["/nonexistent/seed"], "no provisioned seed"),
    "usr/sbin/racoon": (["-V"], "OpenSSL 3.5.7"),
    "usr/sbin/setkey": (["-V"], "ipsec-tools 0.8.2"),
    "usr/sbin/racoonctl": ([], "usage"),
    "usr/sbin/l2tpd": (["-h"], "Usage: l2tpd"),
    "bin/busybox": (["sh", "-c", "echo ok $((6*7))"], "ok 42"),
}
HOST_PATHS = (b"/usr/include", b"/usr/lib/x86_64", b"/root/", b"/work/", b"site-packages")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    env = real_env(tmp_path_factory.mktemp("real-userland"))
    run = real_doit(env, *(f"install:{p}" for p in PACKAGES))
    assert run.returncode == 0, run.output
    return env, Path(env["FWBUILD_BUILD_DIR"])


def staged(build: Path, rel: str) -> Path:
    for pkg in PACKAGES:
        path = build / pkg / "staging" / rel
        if path.exists():
            return path
    raise AssertionError(f"{rel} is in no staging directory")


@pytest.mark.parametrize("rel", sorted(RUNS))
def test_binary_is_static_i386_and_runs_on_a_pentium(
    built: tuple[dict[str, str], Path], rel: str
) -> None:
    _, build = built
    path = staged(build, rel)
    described = subprocess.run([need("file"), "-b", str(path)], capture_output=True, text=True)
    assert "ELF 32-bit LSB executable, Intel 80386" in described.stdout
    assert "statically linked" in described.stdout
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        assert elf.header.e_machine == "EM_386"
        assert not any(s.header.p_type == "PT_INTERP" for s in elf.iter_segments())
    strings = subprocess.run(["strings", str(path)], capture_output=True).stdout
    for leak in HOST_PATHS:
        assert leak not in strings, f"{rel} carries the host path {leak!r}"
    args, expected = RUNS[rel]
    result = subprocess.run(
        [need("qemu-i386"), "-cpu", "pentium", str(path), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "Illegal instruction" not in result.stderr  # nothing beyond i586 (no CMOV/SSE)
    assert expected.lower() in (result.stdout + result.stderr).lower()


def test_pppd_mschapv2_passes_the_rfc2759_vector(
    built: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """Links tests/data/mschapv2_vector.c with pppd's own objects (main.o renamed)."""
    _, build = built
    pppd = build / "ppp" / "src" / "pppd"
    cc = build / "toolchain" / "bin" / "i586-linux-musl-cc"
    spec = importlib.util.spec_from_file_location("ppp_recipe", REPO / "recipes" / "ppp.py")
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)  # the same defines pppd was built with
    cflags = ["-Os", "-std=gnu89", "-I../include", "-I.", *shlex.split(recipe.PPPD_DEFINES)]
    objects = sorted(p.name for p in pppd.glob("*.o") if p.name != "main.o")
    out = tmp_path / "mschapv2_vector"
    subprocess.run([str(cc), *cflags, "-Dmain=pppd_main", "-c", "main.c", "-o",
                    str(tmp_path / "main.o")], cwd=pppd, check=True)  # fmt: skip
    subprocess.run([str(cc), *cflags, "-c", str(REPO / "tests/data/mschapv2_vector.c"), "-o",
                    str(tmp_path / "vector.o")], cwd=pppd, check=True)  # fmt: skip
    subprocess.run([str(cc), "-Os", "-static", "-o", str(out), str(tmp_path / "vector.o"),
                    str(tmp_path / "main.o"), *objects], cwd=pppd, check=True)  # fmt: skip
    result = subprocess.run([need("qemu-i386"), "-cpu", "pentium", str(out)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF" in result.stdout
    assert "S=407A5589115FD0D6209F510FE9C04566932CDA56" in result.stdout
    assert result.stdout.rstrip().endswith("PASS")


def _pppd_cflags() -> list[str]:
    spec = importlib.util.spec_from_file_location("ppp_recipe", REPO / "recipes" / "ppp.py")
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)  # the same defines pppd was built with
    return ["-Os", "-std=gnu89", "-I../include", "-I.", "-w", *shlex.split(recipe.PPPD_DEFINES)]


def _eap_harness(pppd: Path, cc: Path, out: Path, eap_object: Path | None = None) -> Path:
    """tests/data/eap_rhostname.c linked with pppd's objects (main.o renamed; eap.o replaced
    by ``eap_object`` when given)."""
    cflags = _pppd_cflags()
    work = out.parent
    if not (work / "main.o").exists():
        subprocess.run([str(cc), *cflags, "-Dmain=pppd_main", "-c", "main.c", "-o",
                        str(work / "main.o")], cwd=pppd, check=True)  # fmt: skip
        subprocess.run([str(cc), *cflags, "-c", str(REPO / "tests/data/eap_rhostname.c"), "-o",
                        str(work / "harness.o")], cwd=pppd, check=True)  # fmt: skip
    skip = {"main.o"} | ({"eap.o"} if eap_object else set())
    objects = sorted(p.name for p in pppd.glob("*.o") if p.name not in skip)
    extra = [str(eap_object)] if eap_object else []
    subprocess.run([str(cc), "-Os", "-static", "-o", str(out), str(work / "harness.o"),
                    str(work / "main.o"), *extra, *objects], cwd=pppd, check=True)  # fmt: skip
    return out


def test_pppd_drops_the_cve_2020_8597_eap_packet(
    built: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """CVE-2020-8597: an EAP MD5-Challenge Request / MD5-Response whose peer name is longer
    than rhostname[256] overflows pppd's stack. The packet goes to pppd's own EAP code
    (eap_protent.input, as pppd's main loop hands it a 0xc227 frame) once eap.c is in the
    state LCP's agreement on EAP puts it in (tests/data/eap_rhostname.c), under
    ``qemu-i386 -cpu pentium``. Ours logs and drops it and carries on; the same code without
    our patch 0002 (reverse-applied to a copy of the built eap.c) dies of it.

    Why not the whole pppd binary: before LCP, pppd puts its tty into the kernel's PPP line
    discipline (/dev/ppp, ppp_async), which neither qemu-user nor a container provides; the
    booted firmware does (the two-VM session), but a packet injector there is a test of its
    own. This runs with the real-source tests because the objects are the real pppd's."""
    _, build = built
    pppd = build / "ppp" / "src" / "pppd"
    cc = build / "toolchain" / "bin" / "i586-linux-musl-cc"
    ours = _eap_harness(pppd, cc, tmp_path / "eap_ours")

    def run(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([need("qemu-i386"), "-cpu", "pentium", str(binary), *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    for side in ("request", "response"):
        attack = run(ours, side, "negotiated", "1000")
        assert attack.returncode == 0, attack.stdout + attack.stderr
        assert "EAP: peer name of 1000 bytes is too long (max 255); packet dropped" in (
            attack.stdout
        )
        assert attack.stdout.rstrip().endswith("survived")
        # the longest name that fits is still taken (and, with no secret for it, refused)
        legal = run(ours, side, "negotiated", "255")
        assert legal.returncode == 0 and "too long" not in legal.stdout
        assert "no MD5 secret" in legal.stdout and "A" * 255 in legal.stdout
        # EAP not negotiated (the VPN uses MS-CHAPv2): not even parsed
        idle = run(ours, side, "idle", "1000")
        assert idle.returncode == 0 and "discarded: not authenticating" in idle.stdout

    # the same packet at the same code without our patch
    unpatched = tmp_path / "unpatched" / "pppd"
    unpatched.mkdir(parents=True)
    shutil.copy(pppd / "eap.c", unpatched / "eap.c")
    patch = REPO / "patches/ppp/2.4.3/0002-eap-drop-over-long-peer-name-CVE-2020-8597.patch"
    subprocess.run([need("patch"), "-R", "-p1", "-s", "-i", str(patch)], cwd=unpatched.parent,
                   check=True)  # fmt: skip
    subprocess.run([str(cc), *_pppd_cflags(), "-c", str(unpatched / "eap.c"), "-o",
                    str(tmp_path / "eap_unpatched.o")], cwd=pppd, check=True)  # fmt: skip
    theirs = _eap_harness(pppd, cc, tmp_path / "eap_unpatched", tmp_path / "eap_unpatched.o")
    for side in ("request", "response"):
        crash = run(theirs, side, "negotiated", "1000")
        assert crash.returncode != 0, crash.stdout
        assert "survived" not in crash.stdout
        assert "signal 11" in crash.stderr or "stack smashing" in crash.stderr, crash.stderr
