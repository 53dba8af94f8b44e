"""A real git server on 127.0.0.1 (``git daemon``), and small repositories made for tests.

    with GitDaemon(root) as srv:            # serves every bare repository under root
        env = srv.redirect("https://git.example.invalid/")   # insteadOf, as a user would
        ...  # git+https://git.example.invalid/r.git@<commit> now reaches srv

Repositories are made with fixed names and dates (``make_repo``), so their commit ids and the
archives exported from them are the same on every run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

DATE = "1110000000 +0000"  # 2005-03-05: fixed, so commit ids are stable


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    full = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_AUTHOR_DATE": DATE,
        "GIT_COMMITTER_DATE": DATE,
        "GIT_CONFIG_NOSYSTEM": "1",
        **(env or {}),
    }
    full.pop("GIT_CONFIG_COUNT", None)
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=full, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def make_repo(work: Path, files: dict[str, str | bytes | tuple[str, str]]) -> str:
    """Commit ``files`` into a new repository at ``work`` (non-bare); return the commit id.

    A value is file contents (str or bytes), ``("x", text)`` for an executable or
    ``("link", target)`` for a symbolic link.
    """
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    git("config", "core.symlinks", "true", cwd=work)
    for name, value in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, tuple) and value[0] == "link":
            path.symlink_to(value[1])
            continue
        data = value[1] if isinstance(value, tuple) else value
        if isinstance(data, str):
            data = data.encode()
        path.write_bytes(data)
        path.chmod(0o755 if isinstance(value, tuple) else 0o644)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "import", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def commit_more(work: Path, name: str, text: str, message: str = "more") -> str:
    (work / name).write_text(text)
    git("add", name, cwd=work)
    git("commit", "-q", "-m", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def publish(work: Path, root: Path, name: str) -> Path:
    """A bare copy of ``work`` as ``root/name`` (served as ``git://…/name``)."""
    bare = root / name
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GitDaemon:
    """``git daemon`` serving the bare repositories under ``root`` on 127.0.0.1."""

    def __init__(self, root: Path):
        self.root = root
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"git://127.0.0.1:{self.port}"

    def redirect(self, base: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment entries that make git fetch ``base…`` from this server (insteadOf)."""
        pairs = [(f"url.{self.url}/.insteadOf", base), *(extra or {}).items()]
        env = {"GIT_CONFIG_COUNT": str(len(pairs))}
        for i, (key, value) in enumerate(pairs):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def __enter__(self) -> GitDaemon:
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [
                    "git",
                    "daemon",
                    "--export-all",
                    "--reuseaddr",
                    "--informative-errors",
                    f"--base-path={self.root}",
                    "--listen=127.0.0.1",
                    f"--port={self.port}",
                    str(self.root),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
                ):
                    return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError("git daemon did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SmartHttp:
    """git's smart HTTP (``git http-backend`` as a CGI) on 127.0.0.1, as GitHub serves git."""

    def __init__(self, root: Path):
        self.root = root
        self.server: Any = None
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> SmartHttp:
        import threading
        import urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._cgi()

            def do_POST(self) -> None:
                self._cgi()

            def _cgi(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                owner.requests.append(f"{self.command} {parts.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(owner.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": urllib.parse.unquote(parts.path),
                    "QUERY_STRING": parts.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "REMOTE_ADDR": "127.0.0.1",
                }
                if self.headers.get("Content-Encoding") == "gzip":
                    env["HTTP_CONTENT_ENCODING"] = "gzip"
                proc = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
                )
                head, _, payload = proc.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
