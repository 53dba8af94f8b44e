"""A QEMU virtual machine whose serial console a test reads and types into."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path


class VM:
    def __init__(self, name: str, kernel: Path, initrd: Path, *, append: str, net: str,
                 log: Path, pcap: Path | None = None) -> None:  # fmt: skip
        self.name = name
        self.log = log
        self._buf = bytearray()
        self._lock = threading.Lock()
        argv = [
            "qemu-system-i386", "-cpu", "pentium", "-m", "96", "-nographic", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", f"console=ttyS0 panic=-1 {append}",
            # only a socket between the two VMs, on 127.0.0.1: no host networking
            "-netdev", f"socket,id=n0,{net}", "-device", "rtl8139,netdev=n0",
        ]  # fmt: skip
        if pcap is not None:  # everything the NIC sends and receives, as a capture file
            argv += ["-object", f"filter-dump,id=dump0,netdev=n0,file={pcap}"]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("wb") as log:
            while chunk := self.proc.stdout.read1(4096):
                log.write(chunk)
                log.flush()
                with self._lock:
                    self._buf += chunk

    @property
    def console(self) -> str:
        with self._lock:
            return self._buf.decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if m := regex.search(self.console):
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(
            f"{self.name}: no {pattern!r} within {timeout:.0f} s; console log: {self.log}\n"
            + self.console[-2500:]
        )

    def run(self, command: str, until: str, timeout: float = 30) -> str:
        """Type a shell command on the console; return its output, which must match ``until``."""
        marker = f"__done_{time.monotonic_ns()}__"
        start = len(self.console)
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}; echo {marker}\n".encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        done = re.compile(rf"(?m)^{marker}\r?$")  # the echo's output, not the typed line
        while not done.search(self.console[start:]):
            assert time.monotonic() < deadline, f"{self.name}: `{command}` did not finish"
            time.sleep(0.2)
        out = self.console[start:]
        assert re.search(until, out), f"{self.name}: `{command}` printed:\n{out}"
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def ip_packets(pcap: Path) -> list[tuple[int, int | None]]:
    """(IP protocol, UDP destination port or None) of each IPv4 packet in an Ethernet capture."""
    data = pcap.read_bytes()
    packets: list[tuple[int, int | None]] = []
    pos = 24  # the pcap global header
    while pos + 16 <= len(data):
        caplen = int.from_bytes(data[pos + 8 : pos + 12], "little")
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue  # not IPv4 (ARP)
        ip = frame[14:]
        proto, header = ip[9], (ip[0] & 0x0F) * 4
        port = int.from_bytes(ip[header + 2 : header + 4], "big") if proto == 17 else None
        packets.append((proto, port))
    return packets


def udp_flows(pcap: Path) -> list[tuple[str, int, str, int]]:
    """(source address, source port, destination address, destination port) of each UDP packet."""
    data = pcap.read_bytes()
    flows: list[tuple[str, int, str, int]] = []
    pos = 24
    while pos + 16 <= len(data):
        caplen = int.from_bytes(data[pos + 8 : pos + 12], "little")
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != 17:
            continue
        ip = frame[14:]
        udp = ip[(ip[0] & 0x0F) * 4 :]
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        flows.append((src, int.from_bytes(udp[0:2], "big"), dst, int.from_bytes(udp[2:4], "big")))
    return flows
