"""A real HTTP file server on 127.0.0.1 with per-path fault injection, for tests and benchmarks.

    with FaultServer(root) as srv:
        srv.fault("/primary/foo.tar.gz", "404")
        srv.fault("/upstream/foo.tar.gz", "cut", after=1000, times=1)
        ...  # fetch f"{srv.url}/upstream/foo.tar.gz"
        assert ("GET", "/upstream/foo.tar.gz", "bytes=1000-") in srv.requests

Fault kinds (several may be set on one path, e.g. "cut" and "no_range"; every kind accepts
``times=N`` to fire on the first N matching requests only):

- ``"404"``, ``"500"``: answer with that status and a short body.
- ``"wrong_bytes"``: serve the same length, every byte corrupted.
- ``"cut"``: announce the full Content-Length, send ``after`` bytes of the body, then close the
  connection abruptly.
- ``"slow"``: wait ``delay`` seconds before responding at all.
- ``"no_range"``: ignore ``Range`` headers (always 200 with the whole file).
- ``"trickle"``: send the body ``step`` bytes (default 1) every ``interval`` seconds (default
  0.5), honouring ``Range``: a server that never stalls long enough for a read timeout.
- ``"endless"``: answer 200 and send bytes as fast as the client takes them, never ending;
  without ``length`` the body is close-delimited (no Content-Length), with ``length=N`` that
  length is announced (a runaway or lying server).

Bodies go out with ``socket.sendfile`` (zero copy) unless a fault needs to touch the bytes.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

FAULT_KINDS = frozenset(
    {"404", "500", "wrong_bytes", "cut", "slow", "no_range", "trickle", "endless"}
)

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d+)\s*-\s*(\d*)\s*$")
_COPY_CHUNK = 1 << 20
_CORRUPT = bytes(b ^ 0xA5 for b in range(256))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-body all the time in these tests (timeouts, cuts); stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, *, head: bool) -> None:
        owner = self.server.owner
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        range_header = self.headers.get("Range")
        owner._record(self.command, path, range_header)
        faults = owner._take_faults(path)

        if "slow" in faults and owner._stopping.wait(float(faults["slow"].get("delay", 1.0))):
            return
        for status in ("404", "500"):
            if status in faults:
                self._send_status(int(status), head=head)
                return

        if "endless" in faults:
            self._endless(faults["endless"].get("length"), head=head)
            return

        target = owner._resolve(path)
        if target is None:
            self._send_status(404, head=head)
            return

        with open(target, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start, end = 0, size - 1
            status = 200
            if range_header and "no_range" not in faults:
                m = _RANGE_RE.match(range_header)
                if m:
                    start = int(m.group(1))
                    if m.group(2):
                        end = min(int(m.group(2)), size - 1)
                    if start >= size or start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
            length = end - start + 1 if size else 0
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "none" if "no_range" in faults else "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if head:
                return

            send = length
            cut = "cut" in faults
            if cut:
                send = min(length, int(faults["cut"].get("after", length // 2)))
            try:
                if "trickle" in faults:
                    kw = faults["trickle"]
                    self._trickle(f, start, send, int(kw.get("step", 1)), kw.get("interval", 0.5))
                elif "wrong_bytes" in faults:
                    self._copy(f, start, send, corrupt=True)
                else:
                    self.wfile.flush()
                    if send:
                        self.connection.sendfile(f, start, send)
            except OSError:
                self.close_connection = True
                return
        if cut:
            self._abort()

    def _copy(self, f: BinaryIO, offset: int, count: int, *, corrupt: bool) -> None:
        f.seek(offset)
        while count > 0:
            chunk = f.read(min(_COPY_CHUNK, count))
            if not chunk:
                break
            self.wfile.write(chunk.translate(_CORRUPT) if corrupt else chunk)
            count -= len(chunk)

    def _trickle(self, f: BinaryIO, offset: int, count: int, step: int, interval: float) -> None:
        f.seek(offset)
        stopping = self.server.owner._stopping
        while count > 0 and not stopping.wait(float(interval)):
            chunk = f.read(min(step, count))
            if not chunk:
                break
            self.wfile.write(chunk)
            self.wfile.flush()
            count -= len(chunk)

    def _endless(self, length: int | None, *, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(int(length)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if head:
            return
        block = bytes(range(256)) * 256
        stopping = self.server.owner._stopping
        with contextlib.suppress(OSError):
            while not stopping.is_set():
                self.wfile.write(block)

    def _abort(self) -> None:
        """Drop the connection with the body incomplete (the client sees EOF mid-body)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_status(self, code: int, *, head: bool) -> None:
        body = f"{code} {self.responses.get(code, ('',))[0]}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            with contextlib.suppress(OSError):
                self.wfile.write(body)


class FaultServer:
    """Serves the files under ``root`` at ``url``; see the module docstring for faults."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self._faults: dict[str, dict[str, dict[str, Any]]] = {}
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FaultServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FaultServer:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults -----------------------------------------------------------------------------
    def fault(self, path: str, kind: str, **kw: Any) -> None:
        """Inject ``kind`` for requests to ``path`` (e.g. "/primary/foo.tar.gz")."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if not path.startswith("/"):
            path = "/" + path
        with self._lock:
            self._faults.setdefault(path, {})[kind] = dict(kw)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- request log helpers ----------------------------------------------------------------
    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def count(self, method: str, path: str) -> int:
        """How many ``method`` requests for ``path`` arrived so far."""
        with self._lock:
            return sum(1 for m, p, _ in self.requests if m == method and p == path)

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    # -- used by the handler ----------------------------------------------------------------
    def _record(self, method: str, path: str, range_header: str | None) -> None:
        with self._lock:
            self.requests.append((method, path, range_header))

    def _take_faults(self, path: str) -> dict[str, dict[str, Any]]:
        """The faults that fire for this request, consuming one use of any ``times=N`` fault."""
        with self._lock:
            active = self._faults.get(path)
            if not active:
                return {}
            fired = {}
            for kind, kw in list(active.items()):
                fired[kind] = kw
                if "times" in kw:
                    kw["times"] = int(kw["times"]) - 1
                    if kw["times"] <= 0:
                        del active[kind]
            return fired

    def _resolve(self, path: str) -> Path | None:
        rel = path.lstrip("/")
        if not rel:
            return None
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return None
        return target


def mirrors_holding(root: Path, name: str, payload: bytes) -> FaultServer:
    """A server whose /primary, /upstream and /backup mirrors each hold ``name`` (not started)."""
    for sub in ("primary", "upstream", "backup"):
        (root / sub).mkdir(parents=True)
        (root / sub / name).write_bytes(payload)
    return FaultServer(root)
