"""A real WebDAV server for the cache tests: Debian's nginx with its dav module, started on
127.0.0.1 with a temporary configuration and prefix (no root needed, nothing of the machine's
nginx touched). scripts/setup-debian installs ``nginx-light``, which has ``http_dav_module``."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    client_body_timeout 5s;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            client_max_body_size 0;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DavServer:
    """nginx serving ``root`` (``self.www``) with PUT; ``url`` is its base."""

    def __init__(self, prefix: Path) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            pytest.fail("nginx is not installed; scripts/setup-debian installs nginx-light")
        self.nginx = nginx
        self.prefix = prefix
        self.www = prefix / "www"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/cache"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DavServer:
        for sub in ("www", "tmp", "logs"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        # As root, nginx's workers would run as nobody and could not write the temporary www.
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        conf = self.prefix / "nginx.conf"
        conf.write_text(CONFIG.format(prefix=self.prefix, port=self.port, user=user))
        self.proc = subprocess.Popen(
            [
                self.nginx,
                "-p",
                str(self.prefix),
                "-c",
                str(conf),
                "-e",
                str(self.prefix / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                pytest.fail(f"nginx did not start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        pytest.fail("nginx did not listen within 10 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # nginx's master stops its worker and exits
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def files(self) -> list[Path]:
        return sorted(p for p in self.www.rglob("*") if p.is_file())
