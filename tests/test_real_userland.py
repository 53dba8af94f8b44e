"""The real userland from pristine sources: every binary is a static i386 ELF free of host
paths that runs on an emulated Pentium, and pppd's MS-CHAPv2 passes RFC 2759's test vector.

Runs when the pinned sources are at hand (see tests/support/real.py).
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
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
    cflags = _pppd_cflags()  # the same defines pppd was built with
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
    # the recipe imports modules beside it (as the engine loads it: recipes/ on sys.path)
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        spec.loader.exec_module(recipe)  # the same defines pppd was built with
    finally:
        sys.path.remove(str(REPO / "recipes"))
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


# racoon's objects that are not part of racoon itself (other programs, libracoon's copies)
NOT_RACOON = {"main.o", "racoonctl.o", "eaytest.o", "crypto_openssl_test.o", "plainrsa-gen.o",
              "misc_noplog.o"}  # fmt: skip


def _racoon_harness(build: Path, out: Path, replace: dict[str, Path] | None = None) -> Path:
    """tests/data/racoon_frag_flood.c linked with racoon's objects (main.o renamed; objects in
    ``replace`` swapped for other builds of the same sources)."""
    racoon = build / "ipsec-tools" / "src" / "src" / "racoon"
    openssl = build / "openssl" / "staging" / "usr"
    cc = build / "toolchain" / "bin" / "i586-linux-musl-cc"
    flags = ["-DHAVE_CONFIG_H", "-I.", "-I../..", "-I../libipsec", f"-I{openssl / 'include'}",
             "-D_GNU_SOURCE", "-include", "../../src/include-glibc/glibc-bugs.h",
             "-I../../src/include-glibc", "-I../../src/racoon/missing", "-Os", "-w"]  # fmt: skip
    work = out.parent
    for name, source, extra in (
        ("main.o", "main.c", ["-Dmain=racoon_main"]),
        ("harness.o", str(REPO / "tests/data/racoon_frag_flood.c"), []),
    ):
        if not (work / name).exists():
            subprocess.run([str(cc), *flags, *extra, "-c", source, "-o", str(work / name)],
                           cwd=racoon, check=True)  # fmt: skip
    replace = replace or {}
    objects = sorted(
        str(replace.get(p.name, p))
        for p in racoon.glob("*.o")
        if p.name not in NOT_RACOON and not p.name.startswith("libracoon_la-")
    )
    subprocess.run([str(cc), "-Os", "-static", "-o", str(out), str(work / "harness.o"),
                    str(work / "main.o"), *objects, "../libipsec/.libs/libipsec.a",
                    f"-L{openssl / 'lib'}", "-lcrypto"], cwd=racoon, check=True)  # fmt: skip
    return out


def test_racoon_bounds_the_cve_2016_10396_fragment_flood(
    built: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """CVE-2016-10396: IKE fragments sent at racoon's own reassembly code (isakmp_frag.c, as
    frag_handler() hands them over for one phase 1 handle) under ``qemu-i386 -cpu pentium``,
    through tests/data/racoon_frag_flood.c linked with the built racoon's objects. Ours holds
    at most one fragment per index (the flood of 20,000 repeats leaves 254, then 255 with the
    last one) and still reassembles a message sent out of order with a duplicate; the same
    code with our patch 0009 reverse-applied keeps every fragment (40,001) and takes a
    duplicate for the missing piece.

    Not the flood at a running racoon: racoon needs PF_KEY from the kernel, which qemu-user
    does not give, and a flood against the booted server image is a VM test still to write."""
    _, build = built
    ours = _racoon_harness(build, tmp_path / "flood_ours")

    def run(binary: Path, *args: str, ok: bool = True) -> str:
        result = subprocess.run([need("qemu-i386"), "-cpu", "pentium", str(binary), *args],
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert (result.returncode == 0) == ok, result.stdout + result.stderr
        return result.stdout

    flood = run(ours, "flood", "20000")
    assert "before the last fragment: 254 held after 20000 sent" in flood
    assert "after the last fragment: 255 held after 20000 more sent" in flood
    message = run(ours, "message").splitlines()
    assert message[:4] == ["3 (last): 0", "1: 0", "1 again: 0", "2: 1"]
    assert "reassembled: IKE fragmented message" in message
    assert "held afterwards: 0" in message

    # the same fragments at the same code without our patch
    racoon = build / "ipsec-tools" / "src" / "src" / "racoon"
    old = tmp_path / "unpatched"
    (old / "src" / "racoon").mkdir(parents=True)
    for name in ("isakmp_frag.c", "isakmp_frag.h", "handler.c"):
        shutil.copy(racoon / name, old / "src" / "racoon" / name)
    patch = (
        REPO
        / "patches/ipsec-tools/0.8.2/0009-racoon-bounded-fragment-reassembly-CVE-2016-10396.patch"
    )
    subprocess.run([need("patch"), "-R", "-p1", "-s", "-i", str(patch)], cwd=old, check=True)
    cc = build / "toolchain" / "bin" / "i586-linux-musl-cc"
    openssl = build / "openssl" / "staging" / "usr" / "include"
    replaced = {}
    for name in ("isakmp_frag", "handler"):
        replaced[f"{name}.o"] = tmp_path / f"{name}_unpatched.o"
        subprocess.run([str(cc), "-DHAVE_CONFIG_H", f"-I{old / 'src' / 'racoon'}", "-I.",
                        "-I../..", "-I../libipsec", f"-I{openssl}", "-D_GNU_SOURCE", "-include",
                        "../../src/include-glibc/glibc-bugs.h", "-I../../src/include-glibc",
                        "-I../../src/racoon/missing", "-Os", "-w", "-c",
                        str(old / "src" / "racoon" / f"{name}.c"), "-o",
                        str(replaced[f"{name}.o"])], cwd=racoon, check=True)  # fmt: skip
    theirs = _racoon_harness(build, tmp_path / "flood_unpatched", replaced)
    flood = run(theirs, "flood", "20000")
    assert "before the last fragment: 20000 held after 20000 sent" in flood
    assert "after the last fragment: 40001 held after 20000 more sent" in flood
    message = run(theirs, "message", ok=False).splitlines()
    assert "1 again: 1" in message and "no message" in message


def _l2tp_avp(attr: int, value: bytes, mandatory: bool = True, length: int | None = None) -> bytes:
    size = 6 + len(value) if length is None else length
    return struct.pack("!HHH", (0x8000 if mandatory else 0) | size, 0, attr) + value


def _l2tp_control(*avps: bytes) -> bytes:
    """An L2TP control message (RFC 2661: T, L and S bits, version 2) to tunnel 0."""
    body = b"".join(avps)
    return struct.pack("!HHHHHH", 0xC802, 12 + len(body), 0, 0, 0, 0) + body


def _sccrp_to(port: int, timeout: float, tunnel: int) -> bytes | None:
    """Send a well-formed SCCRQ (our tunnel id ``tunnel``: l2tpd ignores a second request for
    a tunnel it has) to l2tpd on 127.0.0.1:port; its SCCRP, or None."""
    sccrq = _l2tp_control(
        _l2tp_avp(0, struct.pack("!H", 1)),  # Message Type: SCCRQ
        _l2tp_avp(2, struct.pack("!H", 0x0100)),  # Protocol Version 1.0
        _l2tp_avp(7, b"probe"),  # Host Name
        _l2tp_avp(3, struct.pack("!I", 3)),  # Framing Capabilities: async, sync
        _l2tp_avp(9, struct.pack("!H", tunnel)),  # Assigned Tunnel ID
    )
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        resend = 0.0
        while (left := deadline - time.monotonic()) > 0:
            if time.monotonic() >= resend:  # again each second: l2tpd may not be up yet
                sock.sendto(sccrq, ("127.0.0.1", port))
                resend = time.monotonic() + 1
            sock.settimeout(min(left, 1.0))
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            # a control message whose first AVP is Message Type 2 (SCCRP), to our tunnel
            if (
                len(data) >= 20
                and data[4:6] == struct.pack("!H", tunnel)
                and (data[18:20] == b"\x00\x02")
            ):
                return data
    return None


def test_l2tpd_survives_a_zero_length_avp(
    built: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """Our patch 0010: one datagram with an unknown, non-mandatory AVP whose length field is 0
    made l2tpd's handle_avps() loop forever (unauthenticated denial of service on UDP 1701).
    The real l2tpd runs under ``qemu-i386 -cpu pentium`` on a port of 127.0.0.1; after the
    malformed SCCRQ, ours logs "AVP with too small of size (0)", drops it, and answers a
    well-formed SCCRQ with an SCCRP. The same l2tpd with 0010 reverse-applied to avp.c spins
    and never answers. (0007-0009 bound the data path, which needs an established call and a
    pty: they are exercised by the two-VM session, not attacked here.)"""
    _, build = built
    src = build / "l2tpd" / "src"
    cc = build / "toolchain" / "bin" / "i586-linux-musl-cc"
    ours = build / "l2tpd" / "staging" / "usr" / "sbin" / "l2tpd"

    old = tmp_path / "unpatched"
    old.mkdir()
    shutil.copy(src / "avp.c", old / "avp.c")
    patch = REPO / "patches/l2tpd/0.69/0010-handle-avps-reject-zero-length-avp.patch"
    subprocess.run([need("patch"), "-R", "-p1", "-s", "-i", str(patch)], cwd=old, check=True)
    flags = ["-Os", "-std=gnu89", "-fcommon", "-fno-builtin-log", "-DDEBUG_PPPD",
             "-DDEBUG_CONTROL", "-DDEBUG_ENTROPY", "-DSANITY", "-DLINUX", "-DIP_ALLOCATION", "-w",
             "-I."]  # fmt: skip
    subprocess.run([str(cc), *flags, "-c", str(old / "avp.c"), "-o", str(old / "avp.o")],
                   cwd=src, check=True)  # fmt: skip
    objects = [str(old / "avp.o") if p == "avp.o" else p for p in
               ("l2tpd.o", "pty.o", "misc.o", "control.o", "avp.o", "call.o", "network.o",
                "avpsend.o", "scheduler.o", "file.o", "aaa.o", "md5.o")]  # fmt: skip
    theirs = old / "l2tpd"
    subprocess.run([str(cc), "-Os", "-static", "-o", str(theirs), *objects], cwd=src, check=True)

    malformed = _l2tp_control(
        _l2tp_avp(0, struct.pack("!H", 1)),
        _l2tp_avp(200, b"", mandatory=False, length=0),  # unknown, optional, length 0
        bytes(32),
    )
    for binary, fixed in ((ours, True), (theirs, False)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        conf = tmp_path / f"l2tpd-{port}.conf"
        conf.write_text(
            f"[global]\nport = {port}\n\n[lns default]\nip range = 10.9.0.2-10.9.0.9\n"
            "local ip = 10.9.0.1\nrequire authentication = no\nname = siso\n"
            "pppoptfile = /dev/null\nlength bit = yes\n"
        )
        (tmp_path / "secrets").write_text("")
        log = tmp_path / f"l2tpd-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [need("qemu-i386"), "-cpu", "pentium", str(binary), "-D", "-c", str(conf),
                 "-s", str(tmp_path / "secrets"), "-p", str(tmp_path / f"l2tpd-{port}.pid")],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                assert _sccrp_to(port, 20, 4242) is not None, log.read_bytes()[-2000:]  # up
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(malformed, ("127.0.0.1", port))
                answer = _sccrp_to(port, 5, 4343)
                text = log.read_bytes().replace(b"\0", b"").decode(errors="replace")
                if fixed:
                    assert answer is not None, text[-2000:]
                    assert "AVP with too small of size (0)" in text
                    assert proc.poll() is None
                else:
                    assert answer is None
                    assert text.count("dont know how to handle atribute") > 100
            finally:
                proc.kill()
                proc.wait(timeout=10)


def test_racoon_has_no_gssapi_code(built: tuple[dict[str, str], Path]) -> None:
    """What recipes/ipsec-tools.py's cve_status says of CVE-2015-4047 (a NULL dereference in
    racoon's GSS-API code): configure left HAVE_GSSAPI undefined, and no object racoon is
    linked from defines or calls a GSS-API function (racoon itself is stripped)."""
    _, build = built
    src = build / "ipsec-tools" / "src"
    assert "/* #undef HAVE_GSSAPI */" in (src / "config.h").read_text()
    symbols: set[str] = set()
    objects = [
        p
        for p in (src / "src" / "racoon").glob("*.o")
        if p.name not in NOT_RACOON and not p.name.startswith("libracoon_la-")
    ]
    for obj in objects:
        with obj.open("rb") as fh:
            for section in ELFFile(fh).iter_sections():
                if section.header.sh_type == "SHT_SYMTAB":
                    symbols.update(
                        s.name
                        for s in section.iter_symbols()
                        if s["st_info"]["type"] != "STT_FILE"  # not the source file names
                    )
    assert "isakmp_main" in symbols and "gssapi.o" in {p.name for p in objects}
    assert [s for s in symbols if "gss" in s.lower()] == ["__gssapi_dUmMy"]  # an empty file
