"""Independent clients against the firmware: Debian 12's strongSwan or libreswan, xl2tpd and
pppd, with their stock defaults plus only the user's generated Linux profile
(certs/<user>-linux/, recipes/_profiles.py), and the same client behind a NAT router.

The server is the real firmware image (test_real_vpn.py's server board: console syslog, pppd
debug). The client and router VMs are made from Debian's packages (tests/support/debclient.py;
``apt-get download`` at set-up, cached in the download directory). Asserted on both consoles:
IKE main mode with certificates, two ESP transport SAs, the L2TP tunnel and call, MS-CHAPv2,
MPPE-128, pings both ways; and on the server's NIC only IKE and ESP (NAT-T's UDP 4500 behind
NAT), never L2TP or ICMP in the clear.

Runs with the real-source tests (tests/support/real.py decides), never in the default suite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import debclient
from support.real import download_dir, log_dir, real_doit, real_env
from support.vm import VM, ip_packets
from test_real_vpn import BOARDS, boot, free_port

pytestmark = pytest.mark.real_sources

USER = "alice"
CLIENT_PPP = "192.168.50.10"  # the first address of the pool
SERVER_PPP = "192.168.50.1"

# The NAT case: the same server with nat_traversal on, as its own profile (rootfs and images).
NATT_BOARD = (
    BOARDS["server"]
    .replace("[board]\n", '[board]\nprofile = "natt"\n', 1)
    .replace("[vpn]\n", "[vpn]\nnat_traversal = true\n", 1)
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("client-servers")
    env = real_env(tmp)
    out: dict[str, Path] = {}
    for name, text in (("server", BOARDS["server"]), ("natt", NATT_BOARD)):
        board = tmp / f"{name}.toml"
        board.write_text(text)
        run = real_doit({**env, "FWBUILD_BOARD": str(board)}, "rootfs")
        assert run.returncode == 0, run.output
        out[name] = Path(env["FWBUILD_OUTPUT_DIR"] + ("" if name == "server" else f"-{name}"))
    out["pki"] = Path(env["FWBUILD_PKI_DIR"])
    return out


def profile_overlay(pki: Path) -> dict[str, tuple[bytes, int]]:
    """The user's Linux profile, as files under /profile in the client VM."""
    base = pki / "certs" / f"{USER}-linux"
    assert (base / "connect.sh").exists(), f"no Linux profile in {base}"
    return {
        f"profile/{p.relative_to(base)}": (p.read_bytes(), p.stat().st_mode & 0o777)
        for p in base.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def lab(servers: dict[str, Path], tmp_path: Path) -> Iterator:
    started: list[VM] = []
    logs = log_dir(tmp_path)

    def start(stack: str, *, nat: bool) -> tuple[VM, VM]:
        kernel, initrd = debclient.image(download_dir(), stack)
        client_initrd = debclient.overlay_initrd(
            initrd, profile_overlay(servers["pki"]), tmp_path / "client.cpio"
        )
        server_port = free_port()
        server = boot("server", servers["natt" if nat else "server"],
                      f"listen=127.0.0.1:{server_port}", logs)  # fmt: skip
        started.append(server)
        server.wait_for(r"rcS: boot complete \(server", 180)
        if nat:
            # client 10.0.0.2 -> router 10.0.0.1 | 192.168.1.254 (masquerade) -> server
            rkernel, rinitrd = debclient.image(download_dir(), "router")
            lan_port = free_port()
            router_initrd = debclient.overlay_initrd(
                rinitrd, {"etc/vm-start": (ROUTER_START.encode(), 0o755)}, tmp_path / "r.cpio"
            )
            router = debclient.DebianVM(
                "router", rkernel, router_initrd,
                nets=[f"listen=127.0.0.1:{lan_port}", f"connect=127.0.0.1:{server_port}"],
                addrs=["10.0.0.1/24", "192.168.1.254/24"], gateway=None,
                log=logs / "router.console", pcap=logs / "router-lan.pcap",
            )  # fmt: skip
            started.append(router)
            router.wait_for(r"router: masquerading", 240)
            client_net, addr, gateway = f"connect=127.0.0.1:{lan_port}", "10.0.0.2/24", "10.0.0.1"
        else:
            client_net = f"connect=127.0.0.1:{server_port}"
            addr, gateway = "192.168.1.2/24", "192.168.1.1"
        client = debclient.DebianVM(
            f"client-{stack}", kernel, client_initrd, nets=[client_net], addrs=[addr],
            gateway=gateway, log=logs / f"client-{stack}.console",
        )  # fmt: skip
        started.append(client)
        client.wait_for(r"vm-init: ready", 240)
        return server, client

    yield start
    for vm in started:
        vm.stop()
    print(f"console logs: {logs}")


ROUTER_START = """#!/bin/sh
set -e
echo 1 > /proc/sys/net/ipv4/ip_forward
iptables-legacy -t nat -A POSTROUTING -o eth1 -j MASQUERADE
echo "router: masquerading 10.0.0.0/24 behind 192.168.1.254"
"""


def session(server: VM, client: VM, stack: str, *, peer: str) -> None:
    """Connect with the profile's connect.sh and check the whole session on both consoles."""
    client.run(f"(sh /profile/connect.sh {stack} >/tmp/connect.log 2>&1 &)", r"")
    # IKE phase 1 (main mode, certificates) and phase 2: one ESP transport SA each way
    server.wait_for(rf"ISAKMP-SA established 192\.168\.1\.1\[(500|4500)\]-{re.escape(peer)}", 180)
    server.wait_for(r"(?s)IPsec-SA established: ESP/Transport.*IPsec-SA established: ESP/Transport",
                    90)  # fmt: skip
    # L2TP tunnel and call (xl2tpd's Call-Connected carries transmit speed 0)
    server.wait_for(rf"Connection established to {re.escape(peer)}, \d+", 90)
    server.wait_for(rf"Call established with {re.escape(peer)}", 90)
    # PPP: MS-CHAPv2, then MPPE-128
    server.wait_for(r"<auth chap MS-v2>", 60)
    server.wait_for(r"sent \[CHAP Success", 60)
    server.wait_for(r"MPPE 128-bit stateless compression enabled", 60)
    client.wait_for(r"MPPE 128-bit stateless compression enabled", 60)
    client.wait_for(rf"local  IP address {re.escape(CLIENT_PPP)}", 60)
    client.wait_for(rf"remote IP address {re.escape(SERVER_PPP)}", 10)
    # traffic both ways over ppp0, inside ESP
    client.run(f"ping -c 3 {SERVER_PPP}", r"3 packets transmitted, 3 packets received", 60)
    server.run(f"ping -c 3 {CLIENT_PPP}", r"3 packets transmitted, 3 packets received", 60)
    # busybox ash prefers its own applets: iproute2 by path
    sad = client.run("/sbin/ip xfrm state", r"proto esp", 30)
    assert len(re.findall(r"proto esp spi", sad)) == 2 and sad.count("mode transport") == 2, sad
    server_sad = server.run("setkey -D", r"esp(-udp)? mode=transport", 30)  # esp-udp: NAT-T
    assert len(re.findall(r"esp(-udp)? mode=transport", server_sad)) == 2, server_sad


def wire(server: VM) -> list[tuple[int, int | None]]:
    server.stop()
    return ip_packets(server.log.with_suffix(".pcap"))


@pytest.mark.parametrize("stack", ["strongswan", "libreswan"])
def test_debian_client_with_stock_defaults(lab, stack: str) -> None:
    server, client = lab(stack, nat=False)
    session(server, client, stack, peer="192.168.1.2")
    packets = wire(server)
    assert (17, 500) in packets and any(proto == 50 for proto, _ in packets)
    assert not [p for p in packets if p != (17, 500) and p[0] != 50], packets


def test_debian_client_behind_nat(lab) -> None:
    server, client = lab("libreswan", nat=True)
    session(server, client, "libreswan", peer="192.168.1.254")
    server.wait_for(r"NAT-D payload #\d doesn't match", 5)  # racoon saw the NAT
    client.wait_for(r"IPsec SA established transport mode \{ESPinUDP", 5)
    packets = wire(server)
    # NAT-T: IKE moves to UDP 4500 and ESP rides in it; nothing else, no bare ESP
    assert (17, 4500) in packets
    assert not [p for p in packets if p not in ((17, 500), (17, 4500))], packets
