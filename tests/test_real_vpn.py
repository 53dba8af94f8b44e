"""The product, end to end: the SISO image boots and carries an L2TP/IPsec VPN session.

Two VMs from the same recipes — the server image and its client profile (racoon initiator with
a user's certificate, l2tpd LAC, pppd) — on one QEMU socket network on 127.0.0.1 (no host
networking). Asserted from their consoles: boot scripts ran, racoon and l2tpd run and `setkey -D`
answers; IKE phase 1 (main mode, certificates) and phase 2 complete, ESP transport SAs installed,
L2TP tunnel and call up, PPP authenticated with MS-CHAPv2 with MPPE-128 and MPPC, a ping across
the PPP link answers; and a client whose certificate is revoked is refused.

Runs when the board's pinned sources are in the download cache or FWBUILD_REAL_OVERRIDES names
local copies (see tests/support/real.py); ``python3 -m pytest tests/test_real_vpn.py`` is the one
command (README, "The end-to-end proof"). With FWBUILD_REAL_FIRMWARE set to the output directory
of a firmware build that shares FWBUILD_REAL_BUILD_DIR (the nightly workflow's), the images booted
here are checked to carry that firmware's very kernel and binaries.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.real import REPO, log_dir, real_doit, real_env
from support.vm import VM, ip_packets, udp_flows

pytestmark = pytest.mark.real_sources

USERS = 'users = ["alice", "bob", "mallory"]'
TEST_SETTINGS = f"""
[system]
syslog = "console"

[vpn]
ppp_debug = true
{USERS}
"""
BOARDS = {
    "server": f'[board]\nextends = "{REPO}/configs/siso.toml"\n{TEST_SETTINGS}\n'
    '[pki]\nrevoked = ["mallory"]\n',
    "client": f'[board]\nextends = "{REPO}/configs/siso-client.toml"\n{TEST_SETTINGS}',
    "revoked": f'[board]\nextends = "{REPO}/configs/siso-client.toml"\nprofile = "revoked"\n'
    f'{TEST_SETTINGS}client_user = "mallory"\n',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed() -> str:
    return os.urandom(64).hex()  # a per-boot entropy seed, as provisioning would pass it


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("vpn-images")
    env = real_env(tmp)
    out: dict[str, Path] = {}
    for name, text in BOARDS.items():  # the server first: it revokes mallory in the PKI
        board = tmp / f"{name}.toml"
        board.write_text(text)
        run = real_doit({**env, "FWBUILD_BOARD": str(board)}, "rootfs")
        assert run.returncode == 0, run.output
        suffix = "" if name == "server" else f"-{name}"
        out[name] = Path(env["FWBUILD_OUTPUT_DIR"] + suffix)
    return out


STOCK = "\n[variants]\nmppc = false\n"
STOCK_BOARDS = {
    "server": f'[board]\nextends = "{REPO}/configs/siso.toml"\n{TEST_SETTINGS}{STOCK}',
    "client": f'[board]\nextends = "{REPO}/configs/siso-client.toml"\n{TEST_SETTINGS}{STOCK}',
}


@pytest.fixture(scope="module")
def stock_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The mppc = false variant: stock MPPE from ppp-2.4.3 in the kernel and pppd."""
    tmp = tmp_path_factory.mktemp("vpn-stock")
    env = real_env(tmp)
    # its own build directory: the kernel and pppd differ from the mppc build's
    env = {**env, "FWBUILD_BUILD_DIR": env["FWBUILD_BUILD_DIR"] + "-stock",
           "FWBUILD_OUTPUT_DIR": env["FWBUILD_OUTPUT_DIR"] + "-stock"}  # fmt: skip
    out: dict[str, Path] = {}
    for name, text in STOCK_BOARDS.items():
        board = tmp / f"{name}.toml"
        board.write_text(text)
        run = real_doit({**env, "FWBUILD_BOARD": str(board)}, "rootfs")
        assert run.returncode == 0, run.output
        out[name] = Path(env["FWBUILD_OUTPUT_DIR"] + ("" if name == "server" else "-client"))
    return out


def boot(name: str, output: Path, net: str, logs: Path) -> VM:
    return VM(name, output / "bzImage", output / "rootfs.cpio.gz", append=f"rngseed={seed()}",
              net=net, log=logs / f"{name}.console", pcap=logs / f"{name}.pcap")  # fmt: skip


@pytest.fixture
def vms(images: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    started: list[VM] = []
    port = free_port()
    logs = log_dir(tmp_path)

    def start(client: str, image_set: dict[str, Path] | None = None) -> tuple[VM, VM]:
        chosen = image_set or images
        server = boot("server", chosen["server"], f"listen=127.0.0.1:{port}", logs)
        started.append(server)
        server.wait_for(r"rcS: boot complete \(server", 120)
        peer = boot(client, chosen[client], f"connect=127.0.0.1:{port}", logs)
        started.append(peer)
        return server, peer

    yield start
    for vm in started:
        vm.stop()
    print(f"console logs: {logs}")


def test_vpn_session_between_two_vms(vms) -> None:
    server, client = vms("client")
    # boot: the scripts ran, the daemons run, PF_KEY answers
    server.run("ps", r"racoon -f /etc/sysconfig/racoon\.conf")
    server.run("ps", r"l2tpd -c /etc/sysconfig/l2tpd\.conf")
    server.run("setkey -D", r"No SAD entries|esp mode=transport")
    client.wait_for(r"rcS: boot complete \(client", 120)
    # IKE phase 1 (main mode with certificates) and phase 2
    server.wait_for(r"ISAKMP-SA established 192\.168\.1\.1\[500\]-192\.168\.1\.2\[500\]", 120)
    server.wait_for(
        r"(?s)IPsec-SA established: ESP/Transport 192\.168\.1\.1\[500\]->192\.168\.1\.2\[500\]"
        r".*IPsec-SA established: ESP/Transport",  # one SA each way
        60,
    )
    # L2TP tunnel and call
    server.wait_for(r"Connection established to 192\.168\.1\.2, 1701", 60)
    server.wait_for(r"Call established with 192\.168\.1\.2", 60)
    # PPP: MS-CHAPv2 (CHAP with algorithm 0x81), then MPPE-128 with MPPC
    server.wait_for(r"<auth chap MS-v2>", 60)
    server.wait_for(r"sent \[CHAP Success", 60)
    server.wait_for(r"MPPC/MPPE 128-bit stateless compression enabled", 60)
    client.wait_for(r"local  IP address 192\.168\.50\.10", 60)
    # traffic over the PPP link, inside ESP
    client.run("ping -c 3 192.168.50.1", r"3 packets transmitted, 3 packets received")
    sad = server.run("setkey -D", r"esp mode=transport")
    assert sad.count("esp mode=transport") == 2
    assert "3des-cbc" in sad and "hmac-sha1" in sad
    # on the wire: IKE and ESP only, never plaintext L2TP (UDP 1701) or ICMP
    server.stop()
    wire = ip_packets(server.log.with_suffix(".pcap"))
    assert (17, 500) in wire and any(proto == 50 for proto, _ in wire)
    assert not [p for p in wire if p not in ((17, 500), (17, 4500)) and p[0] != 50], wire


def test_revoked_client_is_refused(vms) -> None:
    server, client = vms("revoked")
    client.wait_for(r"rcS: boot complete \(client", 120)
    server.wait_for(r"certificate revoked", 120)
    assert "ISAKMP-SA established" not in server.console
    assert "Call established" not in server.console


def test_plaintext_l2tp_is_never_answered(vms) -> None:
    """A peer that never authenticated to racoon (mallory is revoked) sends L2TP in plaintext:
    the server's policy requires ESP for UDP 1701, so l2tpd never sees it and nothing answers."""
    server, client = vms("revoked")
    client.wait_for(r"rcS: boot complete \(client", 120)
    server.wait_for(r"certificate revoked", 120)
    client.run("setkey -FP", r"")  # the client's own policy no longer holds its L2TP back
    assert "[1701]" not in client.run("setkey -DP", r"")  # (racoon's per-socket ones stay)
    time.sleep(20)  # l2tpd's SCCRQ retries now leave in plaintext
    server.stop()
    flows = udp_flows(server.log.with_suffix(".pcap"))
    sent = [f for f in flows if f[1] == 1701 and f[3] == 1701 and f[2] == "192.168.1.1"]
    assert sent, f"the client sent no plaintext L2TP; flows: {flows}"
    answers = [f for f in flows if f[0] == "192.168.1.1" and f[1] == 1701]
    assert not answers, answers
    assert "Connection established" not in server.console


def test_stock_mppe_variant_session(vms, stock_images: dict[str, Path]) -> None:
    server, client = vms("client", stock_images)
    server.wait_for(r"PPP MPPE Compression module registered", 60)
    server.wait_for(r"ISAKMP-SA established", 120)
    server.wait_for(r"sent \[CHAP Success", 60)
    server.wait_for(r"MPPE 128-bit stateless compression enabled", 60)
    assert "MPPC/MPPE" not in server.console
    client.wait_for(r"local  IP address 192\.168\.50\.10", 60)
    client.run("ping -c 3 192.168.50.1", r"3 packets transmitted, 3 packets received")


def _programs(output: Path) -> dict[str, str]:
    """The executables of an image and their digests, from its manifest."""
    entries = json.loads((output / "manifest.json").read_text())["entries"]
    return {e["path"]: e["sha256"] for e in entries if e["type"] == "f" and e["mode"] & 0o111}


def test_images_carry_the_firmware_that_was_built(images: dict[str, Path]) -> None:
    """The nightly builds the firmware, then runs these tests: prove they boot that firmware."""
    raw = os.environ.get("FWBUILD_REAL_FIRMWARE")
    if not raw:
        pytest.skip("FWBUILD_REAL_FIRMWARE (a firmware build's output directory) is not set")
    firmware, tested = Path(raw), images["server"]
    assert (firmware / "bzImage").read_bytes() == (tested / "bzImage").read_bytes()
    built, booted = _programs(firmware), _programs(tested)
    assert "/usr/sbin/racoon" in built and "/usr/sbin/pppd" in built and "/usr/sbin/l2tpd" in built
    assert built == booted
