"""Offline builds make no request at all, for the whole build.

tests/test_engine.py counts the requests our mirror server sees after ``doit source``; the fetch
stages are up to date there, so it shows that a warm cache is not asked again, not that offline
mode holds the network back. Here the whole build runs offline from a cold build tree (every
fetch stage verifies its file again), with every proxy variable pointing at a trap that counts
connections, so a request to any host, not only to our mirror, would be seen.
"""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path
from types import TracebackType

from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

STAGES = ("fetch", "patch", "configure", "build", "install")
PACKAGES = ("hello", "libgreet")


class ConnectionTrap:
    """A TCP listener on 127.0.0.1 that counts (and drops) every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def __enter__(self) -> ConnectionTrap:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def env(self, **extra: str) -> dict[str, str]:
        proxy = f"http://127.0.0.1:{self.port}"
        names = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy")
        proxies = {n: proxy for name in names for n in (name, name.upper())}
        return doit_env(**proxies, NO_PROXY="", no_proxy="", **extra)


def warm(tmp_path: Path, server: FaultServer, dist: Dist) -> Path:
    proj = make_project(tmp_path / "proj", dist, server.url)
    run = run_doit(proj, "source")
    assert run.returncode == 0, run.output
    shutil.rmtree(proj / "build")  # a cold build tree: every stage runs, fetch included
    return proj


def test_the_trap_would_see_a_request(tmp_path: Path, server: FaultServer, dist: Dist) -> None:
    """The proof below is only worth something if an online build goes through the proxies."""
    proj = make_project(tmp_path / "proj", dist, server.url)
    with ConnectionTrap() as trap:
        run = run_doit(proj, "fetch:libgreet", env=trap.env())
    assert run.returncode != 0  # the trap answers nothing
    assert trap.connections > 0
    assert server.requests == []


def test_whole_offline_build_makes_no_request(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = warm(tmp_path, server, dist)
    before = len(server.requests)
    with ConnectionTrap() as trap:
        run = run_doit(proj, "rootfs", env=trap.env(FWBUILD_OFFLINE="1"))
    assert run.returncode == 0, run.output
    assert {f"{s}:{p}" for s in STAGES for p in PACKAGES} | {"rootfs"} <= run.ran
    assert (proj / "output" / "rootfs.tar").is_file() and (
        proj / "output" / "sbom.spdx.json"
    ).is_file()
    assert server.requests[before:] == []
    assert trap.connections == 0
    # and the licence bundle, offline too
    with ConnectionTrap() as trap:
        legal = run_doit(proj, "legal-info", env=trap.env(FWBUILD_OFFLINE="1"))
    assert legal.returncode == 0, legal.output
    assert server.requests[before:] == [] and trap.connections == 0


def test_offline_with_a_corrupt_cached_file_fails_without_a_request(
    tmp_path: Path, server: FaultServer, dist: Dist
) -> None:
    proj = warm(tmp_path, server, dist)
    cached = proj / "dl" / "libgreet-1.0.tar.gz"
    cached.write_bytes(bytes(b ^ 0xFF for b in cached.read_bytes()))
    before = len(server.requests)
    with ConnectionTrap() as trap:
        run = run_doit(proj, "fetch:libgreet", env=trap.env(FWBUILD_OFFLINE="1"))
    assert run.returncode != 0
    assert "libgreet-1.0.tar.gz" in run.output and "offline" in run.output.lower()
    assert server.requests[before:] == [] and trap.connections == 0
