"""VMs made only from Debian's own packages: an independent L2TP/IPsec client (strongSwan or
libreswan, xl2tpd, pppd) and a NAT router, for tests/test_real_clients.py.

``apt-get download`` fetches Debian 12's kernel image and the packages with their dependencies
(the host's apt sources; nothing else is downloaded); ``dpkg -x`` unpacks them into a root with
a small busybox ``/init``, packed as an initramfs and kept in the download cache under
``debian-client/``, keyed by the exact package files (name, version, digest). A later run with
the same package versions only repacks the per-test part (the profile), which goes into a second
cpio archive appended to the first (the kernel unpacks both).

The kernel's modules are not all packed: only the ones named here and what they depend on (read
from each module's ``depends=``), loaded in that order by ``/init``. strongSwan needs ``drbg`` and
``jitterentropy_rng``: without a default RNG the kernel cannot make ESP SAs (echainiv).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from support.vm import VM

KERNEL_PACKAGE = "linux-image-amd64"  # Debian's meta package: the current bookworm kernel
COMMON = ("busybox-static", "iproute2")
STACKS = {
    "strongswan": ("strongswan-starter", "strongswan-charon", "xl2tpd", "ppp"),
    "libreswan": ("libreswan", "libnss3-tools", "xl2tpd", "ppp"),
    "router": ("iptables",),
}
# Packages the closure drags in that a VM without dpkg, debconf, PAM or perl never runs.
SKIP = re.compile(
    r"^(adduser|cdebconf|debconf|dpkg|install-info|usrmerge|usr-is-merged|passwd|tar|"
    r"init-system-helpers|lsb-base|sysvinit-utils|procps|readline-common|systemd|systemd-.*|"
    r"perl|perl-.*|lib.*-perl|libperl.*|python3.*|libpython3.*|libdebian-installer4|"
    r"libnewt0\.52|libslang2|libtextwrap1|libpam-.*|libsemanage.*|debianutils|dash|bash|"
    r"coreutils|sed|grep|gzip|util-linux.*|mount|login|base-files|base-passwd|tzdata|"
    r"logrotate|dmsetup|libdevmapper.*|libcryptsetup.*|kmod|initramfs-tools.*|linux-base|"
    r"apparmor|dracut.*|ucf|cpio|klibc-utils|libklibc|busybox|firmware-.*|"
    r"libelogind.*|bsdutils|bsdextrautils|e2fsprogs|findutils|diffutils|hostname|ncurses-.*)$"
)
# strongSwan and libreswan both install SAs through XFRM netlink; drbg after jitterentropy_rng,
# whose entropy its self-test needs.
_IPSEC_PPP = ("xfrm_user", "esp4", "authenc", "echainiv", "seqiv", "jitterentropy_rng", "drbg",
              "des_generic", "ppp_async", "ppp_mppe", "ppp_synctty")  # fmt: skip
MODULES = {
    "base": ("e1000", "af_packet"),
    "strongswan": _IPSEC_PPP,
    "libreswan": _IPSEC_PPP,
    # libcrc32c (for nf_conntrack) needs a crc32c implementation, which is no hard dependency
    "router": ("crc32c_generic", "iptable_nat", "xt_MASQUERADE", "nf_nat", "nf_conntrack"),
}

INIT = r"""#!/bin/busybox sh
# A Debian test VM: busybox for the basics, Debian's packages for the rest.
/bin/busybox mkdir -p /bb /proc /sys /dev /run /tmp /var/log /var/lib
/bin/busybox --install -s /bb
[ -e /bin/sh ] || /bin/busybox ln -s busybox /bin/sh  # dash is not packed: scripts use busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/bb
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
rm -rf /var/run /var/lock
ln -s /run /var/run
mkdir -p /run/lock /var/lib/ipsec/nss
ln -s /run/lock /var/lock
for m in $(cat /etc/vm-modules); do insmod /lib/vm-modules/$m.ko 2>/dev/null; done
arg() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
hostname "$(arg vmname)"
ip link set lo up
i=0
for a in $(arg addrs | tr , ' '); do
    ip addr add "$a" dev eth$i && ip link set eth$i up
    i=$((i + 1))
done
gw=$(arg gw)
[ -n "$gw" ] && ip route add default via "$gw"
syslogd -O /dev/console
echo 1 > /proc/sys/kernel/printk_ratelimit 2>/dev/null
[ -x /etc/vm-start ] && /etc/vm-start
echo "vm-init: ready ($(arg vmname))"
exec setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'
"""


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


def _closure(packages: tuple[str, ...]) -> list[str]:
    only_depends = ["--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
                    "--no-replaces", "--no-enhances"]  # fmt: skip
    run = _run(["apt-cache", "depends", "--recurse", *only_depends, *packages])
    if run.returncode != 0:
        pytest.skip(f"apt-cache cannot resolve {' '.join(packages)}: {run.stderr.strip()}")
    names = {line.strip() for line in run.stdout.splitlines() if line and not line[0].isspace()}
    return sorted(n for n in names if not n.startswith("<") and not SKIP.match(n))


def _uris(packages: list[str]) -> list[tuple[str, str, str]]:
    """(file name, size, sha256) of each package file apt would download (nothing fetched)."""
    run = _run(["apt-get", "download", "--print-uris", *packages])
    if run.returncode != 0:
        pytest.skip(f"apt-get cannot locate Debian packages: {run.stderr.strip()[-400:]}")
    out = []
    for line in run.stdout.splitlines():
        m = re.match(r"'[^']+' (\S+) (\d+) SHA256:([0-9a-f]{64})", line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
    return out


def fetch(cache: Path, packages: tuple[str, ...]) -> list[Path]:
    """The closure of ``packages`` as verified .deb files in ``cache`` (downloaded if missing)."""
    names = _closure(packages)
    wanted = _uris(names)
    cache.mkdir(parents=True, exist_ok=True)
    missing = [(f, s) for f, _, s in wanted if not (cache / f).exists()]
    if missing:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            # apt-get download takes package names; the file names carry name_version_arch
            specs = [
                f.split("_")[0] + "=" + f.split("_")[1].replace("%3a", ":") for f, _ in missing
            ]
            run = _run(["apt-get", "download", *specs], cwd=tmp)
            if run.returncode != 0:
                pytest.skip(f"apt-get download failed: {run.stderr.strip()[-400:]}")
            for f, digest in missing:
                got = Path(tmp) / f
                if hashlib.sha256(got.read_bytes()).hexdigest() != digest:
                    raise AssertionError(f"{f}: SHA-256 differs from the archive's index")
                got.rename(cache / f)
    return [cache / f for f, _, _ in wanted]


def _module_deps(ko: Path) -> list[str]:
    m = re.search(rb"depends=([\w,-]*)\x00", ko.read_bytes())
    return [d for d in (m.group(1).decode().split(",") if m else []) if d]


def _modules(root: Path, wanted: tuple[str, ...]) -> list[str]:
    """Copy ``wanted`` and their dependencies to /lib/vm-modules; return the load order."""
    tree = next((root / "usr" / "lib" / "modules").iterdir())
    index = {p.name[: -len(".ko")].replace("-", "_"): p for p in tree.rglob("*.ko")}
    order: list[str] = []

    def add(name: str) -> None:
        name = name.replace("-", "_")
        if name in order or name not in index:
            return  # built into the kernel, or already placed
        for dep in _module_deps(index[name]):
            add(dep)
        order.append(name)

    for name in wanted:
        add(name)
    out = root / "usr" / "lib" / "vm-modules"
    out.mkdir(parents=True)
    for name in order:
        shutil.copy2(index[name], out / f"{name}.ko")
    shutil.rmtree(tree)
    return order


def _usr_merge(root: Path) -> None:
    for d in ("bin", "sbin", "lib", "lib64"):
        src = root / d
        if src.is_symlink() or not src.exists():
            continue
        (root / "usr" / d).mkdir(parents=True, exist_ok=True)
        run = _run(["cp", "-a", "--remove-destination", f"{src}/.", str(root / "usr" / d)])
        assert run.returncode == 0, run.stderr
        shutil.rmtree(src)
        src.symlink_to(f"usr/{d}")


def cpio(root: Path, out: Path) -> None:
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    with out.open("wb") as fh:
        run = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"], cwd=root,
                             input="\n".join(files).encode(), stdout=fh, stderr=subprocess.PIPE,
                             check=False)  # fmt: skip
    if run.returncode != 0:
        raise AssertionError(f"cpio failed: {run.stderr.decode()}")


_lock = threading.Lock()


def image(dl: Path, kind: str) -> tuple[Path, Path]:
    """(kernel, base initramfs) of a ``kind`` VM ("strongswan", "libreswan", "router")."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("no apt-get/dpkg-deb on this host: the Debian client VMs need them")
    cache = dl / "debian-client"
    debs = fetch(cache / "debs", (KERNEL_PACKAGE, *COMMON, *STACKS[kind]))
    key = hashlib.sha256(
        "\n".join([INIT, repr(MODULES), *(d.name for d in debs)]).encode()
    ).hexdigest()[:16]
    out = cache / f"{kind}-{key}"
    kernel, initrd = out / "vmlinuz", out / "initrd.cpio"
    with _lock:
        if initrd.exists():
            return kernel, initrd
        build = Path(tempfile.mkdtemp(dir=cache, prefix=f".{kind}-"))
        try:
            root = build / "root"
            for deb in debs:
                run = _run(["dpkg-deb", "-x", str(deb), str(root)])
                assert run.returncode == 0, f"{deb}: {run.stderr}"
            _usr_merge(root)
            (build / "vmlinuz").write_bytes(next((root / "boot").glob("vmlinuz-*")).read_bytes())
            shutil.rmtree(root / "boot")
            for junk in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info"):
                shutil.rmtree(root / junk, ignore_errors=True)
            order = _modules(root, MODULES["base"] + MODULES[kind])
            (root / "etc").mkdir(exist_ok=True)
            (root / "etc" / "vm-modules").write_text("\n".join(order) + "\n")
            (root / "init").write_text(INIT)
            (root / "init").chmod(0o755)
            for d in ("proc", "sys", "dev", "run", "tmp", "var/lib", "root"):
                (root / d).mkdir(parents=True, exist_ok=True)
            (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
            (root / "etc" / "group").write_text("root:x:0:\n")
            cpio(root, build / "initrd.cpio")
            shutil.rmtree(root)
            os.replace(build, out)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return kernel, initrd


def overlay_initrd(base: Path, files: dict[str, tuple[bytes, int]], out: Path) -> Path:
    """``base`` with a second archive appended that adds ``files`` (path: (content, mode))."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        for rel, (data, mode) in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode)
        extra = Path(tmp) / "extra.cpio"
        cpio(root, extra)
        out.write_bytes(base.read_bytes() + extra.read_bytes())
    return out


class DebianVM(VM):
    """A qemu-system-x86_64 VM (TCG) with one e1000 NIC per socket network, console on ttyS0."""

    def __init__(self, name: str, kernel: Path, initrd: Path, *, nets: list[str], addrs: list[str],
                 gateway: str | None, log: Path, pcap: Path | None = None) -> None:  # fmt: skip
        self.name = name
        self.log = log
        self._buf = bytearray()
        self._lock = threading.Lock()
        append = f"console=ttyS0 panic=-1 quiet loglevel=4 vmname={name} addrs={','.join(addrs)}"
        if gateway:
            append += f" gw={gateway}"
        argv = ["qemu-system-x86_64", "-m", "512", "-nographic", "-no-reboot",
                "-kernel", str(kernel), "-initrd", str(initrd), "-append", append]  # fmt: skip
        mac = hashlib.sha256(name.encode()).hexdigest()[:4]
        mac = f"{mac[:2]}:{mac[2:]}"
        for n, net in enumerate(nets):
            argv += ["-netdev", f"socket,id=n{n},{net}",
                     "-device", f"e1000,netdev=n{n},mac=52:54:00:{mac}:{n:02x}"]  # fmt: skip
            if pcap is not None and n == 0:
                argv += ["-object", f"filter-dump,id=dump{n},netdev=n{n},file={pcap}"]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
