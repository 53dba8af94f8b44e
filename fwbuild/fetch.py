"""Download source files into the download directory, verified against their pinned digests.

``fetch()`` is the only way a build gets a source file. It never trusts a file it cannot verify:

- a file already in ``dl_dir`` that matches its digests is used without any network access (a
  sidecar ``.<filename>.verified`` remembers size, mtime and inode so it is not re-hashed on every
  build; a changed file is re-hashed);
- a file in ``dl_dir`` that does not match is moved to ``dl_dir/.rejected/<filename>`` (one
  copy per name, owner-only; ``rm -r dl/.rejected`` clears them);
- an unpinned file (no digests in the recipe) is refused; ``download_for_pin()`` is the explicit
  way to fetch one and learn its digests;
- downloads go to ``dl_dir/.partial/<filename>.part``, hashed while written, and only a verified,
  fsynced file is renamed to its real name, so an interrupted or failed download never leaves a
  partial file under the real name. A run killed mid-transfer leaves the partial file, and the
  next run continues it with ``Range`` (a continued file that fails its digest is moved aside and
  fetched whole).

URLs are tried in the order primary mirror, recipe URLs, backup mirrors. Transient failures
(connection refused/reset, a cut transfer, a stall, HTTP 5xx) are retried ``settings.retries``
times per URL, resuming with ``Range``; a 4xx, a digest mismatch, a transfer slower than
``min_speed``, one past its ``deadline`` (retries included) or a response over the size cap
moves on to the next URL at once. Two builds sharing one ``dl_dir`` serialise on
``dl_dir/.locks/<filename>.lock``, so a file is downloaded once.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import hashlib
import itertools
import json
import os
import queue
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from fwbuild.errors import ConfigError, DigestMismatch, DownloadError
from fwbuild.urls import SUPPORTED_SCHEMES, check_url

if TYPE_CHECKING:
    # requests (and urllib3) are imported where a download starts: the project loader calls
    # check_url() on every doit start-up, and importing requests would double a no-op build.
    import requests

__all__ = [
    "SUPPORTED_SCHEMES",
    "FetchSettings",
    "RemoteFile",
    "check_url",
    "download_for_pin",
    "fetch",
    "file_digest",
    "parse_size",
    "verify",
]

#: Read size for network and file copies. Large reads keep the per-chunk Python overhead
#: negligible next to the socket, hashing and write costs; 1 MiB (not more) keeps a chunk in
#: the CPU cache between the write and the hasher thread.
CHUNK_SIZE = 1 << 20
#: Seconds to wait before retry n (multiplied by n).
RETRY_DELAY = 0.25
USER_AGENT = "fwbuild-fetch/0.1"

PARTIAL_DIR = ".partial"
REJECTED_DIR = ".rejected"
LOCK_DIR = ".locks"

_TRANSIENT_STATUS = frozenset({408, 425, 429})
_HOPELESS = frozenset({"connection refused", "host name not found"})
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


@dataclass(frozen=True)
class RemoteFile:
    """One source file a recipe needs."""

    filename: str  # name in the download directory
    urls: tuple[str, ...]  # the recipe's upstream URLs, in order
    digests: Mapping[str, str]  # algo -> hex, e.g. {"sha256": ...}; empty = unpinned


#: Defaults for one URL. They bound what a hanging mirror costs before the next one is tried:
#: no connection: 3 attempts x 10 s; connected but silent: 3 x 15 s (+0.75 s of back-off);
#: a trickle below MIN_SPEED: one SPEED_WINDOW (30 s), no retry. So about a minute at most,
#: where 3 x 60 s of read timeout per URL (9 minutes for three mirrors) and an endless trickle
#: were possible before. DEADLINE is the backstop for a mirror just above the minimum speed.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_STALL_TIMEOUT = 15.0
DEFAULT_DEADLINE = 1800.0
DEFAULT_MIN_SPEED = 4096
SPEED_WINDOW = 30.0
#: No source file of a router firmware comes near this; it stops a runaway response.
DEFAULT_MAX_SIZE = 2 << 30


@dataclass(frozen=True)
class FetchSettings:
    dl_dir: Path
    primary_mirror: str | None = None  # base URL; tried first as f"{base}/{filename}"
    backup_mirrors: tuple[str, ...] = ()  # base URLs tried after the recipe URLs
    offline: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    # Seconds without a single byte before an attempt is given up ([downloads] timeout).
    read_timeout: float = DEFAULT_STALL_TIMEOUT
    # Seconds one URL may take in all, retries and back-off included ([downloads] deadline).
    deadline: float = DEFAULT_DEADLINE
    # Bytes/s a transfer must average over speed_window seconds ([downloads] min_speed; 0: off).
    min_speed: int = DEFAULT_MIN_SPEED
    speed_window: float = SPEED_WINDOW
    # Largest response accepted for a file whose size is not known ([downloads] max_size).
    max_size: int = DEFAULT_MAX_SIZE
    # Exact sizes known for some files (the pin lock file records them): their cap.
    known_sizes: Mapping[str, int] = field(default_factory=dict)
    retries: int = 2  # extra attempts per URL for transient errors, resuming
    progress: str = "auto"  # "auto", "bar", "plain", "none"


# -- public API ------------------------------------------------------------------------------


def fetch(
    remote: RemoteFile, settings: FetchSettings, *, package: str, log: TextIO | None = None
) -> Path:
    """Return ``dl_dir/filename``, verified against ``remote.digests``, downloading if needed.

    Raises DownloadError (DigestMismatch if some URL served wrong bytes) when the file cannot be
    had, when it is unpinned, or when it is missing and ``settings.offline`` is set. Progress and
    notes go to ``log`` (default: ``sys.stderr`` at call time).
    """
    log = sys.stderr if log is None else log
    _check_filename(remote.filename, package)
    digests = _normalise_digests(remote.digests, package)
    dl_dir = Path(settings.dl_dir)
    dest = dl_dir / remote.filename
    if not digests:
        raise DownloadError(_unpinned_message(remote, settings, package), package=package)

    if _sidecar_matches(dest, digests):
        return dest
    if settings.offline and not dest.is_file():
        raise DownloadError(_offline_message(remote, settings, None), package=package)

    with _dl_lock(dl_dir, remote.filename, package, log, settings):
        # Another build may have finished the download while we waited for the lock.
        mismatch_note: str | None = None
        if _sidecar_matches(dest, digests):
            return dest
        if dest.is_file():
            actual = _hash_file(dest, digests)
            bad = _mismatched(digests, actual)
            if not bad:
                _write_sidecar(dest, actual)
                return dest
            mismatch_note = (
                "the copy in the download directory does not match its pinned digest "
                f"({_describe_mismatch(digests, bad)})"
            )
            try:
                moved = _reject(dest, dl_dir)
                mismatch_note += f" and was moved to {moved} ({_clear_hint(dl_dir)})"
            except OSError as e:
                if not settings.offline:
                    raise _unwritable(dl_dir, package, e) from e
            _Progress.note(settings, log, f"{package}: {remote.filename}: {mismatch_note}")
        if settings.offline:
            cls = DigestMismatch if mismatch_note else DownloadError
            raise cls(_offline_message(remote, settings, mismatch_note), package=package)
        known = settings.known_sizes.get(remote.filename)
        cap = (
            (known, "the size recorded in the pin lock file")
            if known
            else (settings.max_size, "[downloads] max_size")
        )
        path, _ = _download(remote, digests, settings, package=package, log=log, cap=cap)
        return path


def download_for_pin(
    remote: RemoteFile, settings: FetchSettings, *, package: str, log: TextIO | None = None
) -> tuple[Path, dict[str, str]]:
    """Download ``remote`` without checking digests; return its path and its digests.

    The digests are sha256 plus every algorithm already listed in ``remote.digests``. The file is
    stored under ``dl_dir/filename`` (a different file already there is moved to ``.rejected``).
    In offline mode a file already in ``dl_dir`` is hashed instead; nothing is downloaded.
    The caller records the digests in the recipe.
    """
    log = sys.stderr if log is None else log
    _check_filename(remote.filename, package)
    pinned = _normalise_digests(remote.digests, package)
    algos = ["sha256", *sorted(a for a in pinned if a != "sha256")]
    dl_dir = Path(settings.dl_dir)
    dest = dl_dir / remote.filename
    if settings.offline:
        if dest.is_file():
            digests = _hash_file(dest, algos)
            _write_sidecar(dest, digests)
            _Progress.note(
                settings, log, f"{package}: offline; pinning the local copy {dest} as it is"
            )
            return dest, digests
        raise DownloadError(_offline_message(remote, settings, None), package=package)
    with _dl_lock(dl_dir, remote.filename, package, log, settings):
        # Keep whatever is there now until the new download has succeeded.
        previous: tuple[Path, str] | None = None
        if dest.is_file():
            old_sha256 = file_digest(dest, "sha256")
            previous = (_reject(dest, dl_dir), old_sha256)
        try:
            # A new pin may have a new size: only the general cap applies, and a partial
            # file left by an earlier run is not continued (nothing could vouch for it).
            path, digests = _download(
                remote,
                dict.fromkeys(algos, ""),
                settings,
                package=package,
                log=log,
                cap=(settings.max_size, "[downloads] max_size"),
                resume=False,
            )
        except BaseException:
            if previous is not None and not dest.exists():
                os.replace(previous[0], dest)
            raise
        if previous is not None:
            if previous[1] == digests["sha256"]:
                previous[0].unlink()
            else:
                _Progress.note(
                    settings,
                    log,
                    f"{package}: {remote.filename} changed; the previous copy is {previous[0]} "
                    f"({_clear_hint(dl_dir)})",
                )
        return path, digests


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Bytes from an int or a size string ("64M", "2G", "512k", "1000"; binary units).

    Raises ValueError for anything else, including booleans and negative numbers.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(m.group(1)) << (10 * " kmgt".index(m.group(2).lower() or " "))
    raise ValueError(f'{value!r} is not a size such as 1048576, "64M" or "2G"')


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of the file at ``path`` with hashlib algorithm ``algo``."""
    return _hash_file(Path(path), [algo.lower()])[algo.lower()]


def verify(path: Path, digests: Mapping[str, str]) -> dict[str, str] | None:
    """None if ``path`` matches every digest, else ``{algo: actual_hex}`` for those that differ.

    Raises ValueError for empty ``digests``: an unpinned file cannot be verified.
    """
    if not digests:
        raise ValueError(f"no digests to verify {path} against")
    wanted = {a.lower(): h.strip().lower() for a, h in digests.items()}
    return _mismatched(wanted, _hash_file(Path(path), wanted)) or None


def is_verified(path: Path, digests: Mapping[str, str]) -> bool:
    """Whether ``path`` was verified against ``digests`` and has not changed since (no hashing).

    Cheap enough to ask on every start-up: which of a source's alternatives is in the
    download directory (fwbuild.alternatives).
    """
    wanted = {a.lower(): h.strip().lower() for a, h in digests.items()}
    return bool(wanted) and _sidecar_matches(Path(path), wanted)


# -- the download loop -----------------------------------------------------------------------


@dataclass
class _Attempts:
    """What happened at one URL, for the final error message."""

    url: str
    events: list[str]
    mismatch: bool = False

    def summary(self) -> str:
        parts = []
        for event, group in itertools.groupby(self.events):
            n = sum(1 for _ in group)
            parts.append(event if n == 1 else f"{event} \N{MULTIPLICATION SIGN}{n}")
        return "; ".join(parts) or "not tried"


class _Transient(Exception):
    """A failure worth retrying at the same URL (with resume)."""


class _Permanent(Exception):
    """A failure that moves on to the next URL at once."""


class _TooBig(_Permanent):
    """The response is larger than the file can be: what was received is worthless."""


@dataclass
class _Limits:
    """How long and how big one URL's transfer may get; see FetchSettings."""

    connect: float
    stall: float
    deadline: float
    deadline_at: float  # time.monotonic() value
    min_speed: int
    window: float
    cap: int
    cap_source: str  # where the cap comes from, for the message

    @classmethod
    def start(cls, settings: FetchSettings, cap: int, cap_source: str) -> _Limits:
        deadline = max(0.0, settings.deadline)
        return cls(
            connect=settings.connect_timeout,
            stall=settings.read_timeout,
            deadline=deadline,
            deadline_at=time.monotonic() + deadline,
            min_speed=max(0, settings.min_speed),
            window=max(0.001, settings.speed_window),
            cap=cap,
            cap_source=cap_source,
        )

    def remaining(self) -> float:
        return self.deadline_at - time.monotonic()

    def past_deadline(self, received: int) -> _Permanent:
        return _Permanent(
            f"deadline of {self.deadline:g} s for this URL passed after {received} bytes "
            "(retries included; raise [downloads] deadline or FWBUILD_DL_DEADLINE for a slow "
            "link)"
        )

    def too_slow(self, got: int, seconds: float) -> _Permanent:
        return _Permanent(
            f"too slow: {got} bytes in the last {seconds:.0f} s, below the minimum of "
            f"{self.min_speed} bytes/s ([downloads] min_speed or FWBUILD_DL_MIN_SPEED)"
        )

    def too_big(self, size: int, announced: bool) -> _TooBig:
        what = "announces" if announced else "sent more than"
        return _TooBig(
            f"the response {what} {size} bytes, over the size cap of {self.cap} bytes "
            f"({self.cap_source}); this is not the file the recipe means"
        )


def _download(
    remote: RemoteFile,
    digests: Mapping[str, str],
    settings: FetchSettings,
    *,
    package: str,
    log: TextIO,
    cap: tuple[int, str],
    resume: bool = True,
) -> tuple[Path, dict[str, str]]:
    """Try every URL until one delivers bytes matching ``digests`` (values "" = don't check).

    ``cap`` is the size limit and where it comes from. With ``resume``, a partial file left by
    an interrupted run is continued (the digests still decide); without, it is discarded.
    """
    dl_dir = Path(settings.dl_dir)
    dest = dl_dir / remote.filename
    urls = _candidate_urls(remote, settings)
    if not urls:
        raise DownloadError(
            f"{remote.filename} has no URL to download from: the recipe lists none and no "
            "mirror is configured. Add a URL to the recipe, set FWBUILD_PRIMARY_MIRROR, or put "
            f"the file at {dest}.",
            package=package,
        )
    partial_dir = dl_dir / PARTIAL_DIR
    try:
        partial_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(dl_dir, package, e) from e
    part = partial_dir / f"{remote.filename}.part"
    checking = {a: h for a, h in digests.items() if h}
    tried: list[_Attempts] = []
    progress = _Progress(settings, log, package, remote.filename)
    sessions = _Sessions()
    # Only a run that ends (with the file or with every URL failed) removes the partial file:
    # one killed or interrupted mid-transfer leaves it for the next run to continue with Range.
    ended = False
    try:
        left = _size(part)
        if left and (not resume or not checking or left > cap[0]):
            # Bytes nobody can vouch for: without digests (pinning) they would be trusted.
            part.unlink()
        elif left:
            progress.note_resume(left)
        for i, url in enumerate(urls):
            more = i + 1 < len(urls)
            record = _Attempts(url, [])
            tried.append(record)
            limits = _Limits.start(settings, *cap)
            inherited = _size(part)  # bytes this URL did not send (earlier run or URL)
            try:
                got = _fetch_url(url, part, digests, sessions, settings, limits, progress, record)
                if got is not None and inherited and _mismatched(checking, got):
                    # Perhaps only the inherited prefix was wrong: start over from byte 0 here.
                    moved = _reject(part, dl_dir)
                    note = (
                        f"digest mismatch after continuing a partial download of {inherited} "
                        f"bytes; the partial file was moved to {moved} ({_clear_hint(dl_dir)}), "
                        "downloading it whole"
                    )
                    record.events.append(note)
                    progress.note_retry(url, note, 1, 1)
                    limits = _Limits.start(settings, *cap)
                    got = _fetch_url(
                        url, part, digests, sessions, settings, limits, progress, record
                    )
            except OSError as e:  # network errors are handled inside; this is the local disk
                raise _unwritable(dl_dir, package, e) from e
            if got is None:
                progress.note_failure(url, record.summary(), more=more)
                continue
            bad = _mismatched(checking, got)
            if bad:
                moved = _reject(part, dl_dir)
                record.mismatch = True
                record.events.append(
                    f"digest mismatch: {_describe_mismatch(checking, bad)} (kept as {moved}; "
                    f"{_clear_hint(dl_dir)})"
                )
                progress.note_failure(url, record.events[-1], more=more)
                continue
            _install(part, dest)
            _write_sidecar(dest, got)
            progress.done(url, dest.stat().st_size)
            ended = True
            return dest, got
        ended = True
    finally:
        sessions.close()
        if ended:
            with contextlib.suppress(OSError):
                part.unlink()
        progress.close()

    cls = DigestMismatch if any(t.mismatch for t in tried) else DownloadError
    raise cls(_failed_message(remote, settings, package, tried), package=package)


class _Sessions:
    """One HTTP session per download (connections are reused between its URLs), made lazily."""

    def __init__(self) -> None:
        self._session: requests.Session | None = None

    def get(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
            # Identity: a .tar.gz served with Content-Encoding: gzip must not be unpacked.
            self._session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def _fetch_url(
    url: str,
    part: Path,
    digests: Mapping[str, str],
    sessions: _Sessions,
    settings: FetchSettings,
    limits: _Limits,
    progress: _Progress,
    record: _Attempts,
) -> dict[str, str] | None:
    """Fetch one URL of any supported scheme into ``part``; its digests, or None on failure."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_http(sessions.get(), url, part, digests, settings, limits, progress, record)
    if scheme == "file":
        return _fetch_local(url, part, digests, limits, progress, record)
    if scheme.startswith("git+"):
        return _fetch_git(url, part, digests, limits, progress, record)
    record.events.append(
        f"{scheme or '(no scheme)'} not supported (the downloader fetches "
        f"{', '.join(SUPPORTED_SCHEMES)} URLs)"
    )
    return None


def _fetch_git(
    url: str,
    part: Path,
    digests: Mapping[str, str],
    limits: _Limits,
    progress: _Progress,
    record: _Attempts,
) -> dict[str, str] | None:
    """The git method (fwbuild.gitsource): the commit's tree or file, written into ``part``."""
    from fwbuild.gitsource import GitError, fetch_into

    progress.start(url, 0, None)
    try:
        return fetch_into(url, part, algos=list(digests), deadline=limits.remaining())
    except GitError as e:
        record.events.append(str(e))
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _open_part(part: Path) -> BinaryIO:
    """The partial file for reading and appending, created if missing, never truncated."""
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    return open(fd, "r+b", buffering=0)


def _fetch_http(
    session: requests.Session,
    url: str,
    part: Path,
    digests: Mapping[str, str],
    settings: FetchSettings,
    limits: _Limits,
    progress: _Progress,
    record: _Attempts,
) -> dict[str, str] | None:
    """Stream ``url`` into ``part`` (retrying and resuming); its digests, or None on failure."""
    with _open_part(part) as f:
        for attempt in range(max(0, settings.retries) + 1):
            if attempt:
                delay = RETRY_DELAY * attempt
                if limits.remaining() <= delay:
                    record.events.append(str(limits.past_deadline(_size(part))))
                    return None
                time.sleep(delay)
            offset = f.seek(0, os.SEEK_END)
            if limits.remaining() <= 0:
                record.events.append(str(limits.past_deadline(offset)))
                return None
            hashers = _hashers(digests)
            if offset:
                _hash_prefix(f, offset, hashers)
            try:
                _transfer(session, url, f, offset, hashers, limits, progress)
            except _Transient as e:
                record.events.append(str(e))
                if attempt < settings.retries:
                    progress.note_retry(url, str(e), attempt + 1, settings.retries)
                continue
            except _Permanent as e:
                if isinstance(e, _TooBig):
                    f.seek(0)
                    f.truncate()
                record.events.append(str(e))
                return None
            os.fsync(f.fileno())
            return {a: h.hexdigest() for a, h in hashers.items()}
    return None


def _transfer(
    session: requests.Session,
    url: str,
    f: BinaryIO,
    offset: int,
    hashers: dict[str, Any],
    limits: _Limits,
    progress: _Progress,
) -> None:
    """One GET of ``url``, appending to ``f`` from ``offset``; raises _Transient/_Permanent."""
    import requests
    import urllib3

    headers = {"Range": f"bytes={offset}-"} if offset else {}
    remaining = limits.remaining()
    timeout = (min(limits.connect, remaining), min(limits.stall, remaining))
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.exceptions.ConnectTimeout as e:
        if limits.remaining() <= 0:
            raise limits.past_deadline(0) from e
        raise _Transient(f"connect timeout ({timeout[0]:g} s)") from e
    except requests.exceptions.ReadTimeout as e:
        if limits.remaining() <= 0:
            raise limits.past_deadline(0) from e
        raise _Transient(f"no response within the read timeout ({timeout[1]:g} s)") from e
    except requests.exceptions.ConnectionError as e:
        reason = _reason(e)
        if reason in _HOPELESS:  # retrying will not help; the next URL might
            raise _Permanent(reason) from e
        raise _Transient(f"connection failed ({reason})") from e
    except requests.exceptions.RequestException as e:
        raise _Permanent(f"request failed ({_reason(e)})") from e

    with resp:
        status = resp.status_code
        total: int | None = None
        if status == 206:
            m = _CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                _restart(f, hashers)
                raise _Transient(
                    f"HTTP 206 with unusable Content-Range "
                    f"{resp.headers.get('Content-Range')!r}; restarting from byte 0"
                )
            total = None if m.group(3) == "*" else int(m.group(3))
        elif status == 200:
            if offset:
                _restart(f, hashers)  # the server ignored Range: start over
                offset = 0
            total = _int_header(resp.headers.get("Content-Length"))
        elif status == 416 and offset:
            _restart(f, hashers)
            raise _Transient("HTTP 416 on resume; restarting from byte 0")
        elif status >= 500 or status in _TRANSIENT_STATUS:
            raise _Transient(f"HTTP {status} {resp.reason or ''}".rstrip())
        else:
            raise _Permanent(f"HTTP {status} {resp.reason or ''}".rstrip())
        if total is not None and total > limits.cap:
            raise limits.too_big(total, announced=True)

        length = _int_header(resp.headers.get("Content-Length"))
        progress.start(url, offset, total)
        received = 0
        room = limits.cap - offset  # bytes this response may still add
        # read1 returns what the socket has instead of waiting for a whole chunk, so a trickle
        # comes back here every byte and the deadline and speed checks below can stop it.
        read1 = resp.raw.read1
        sock_timeout = timeout[1]
        now = started = time.monotonic()
        samples: collections.deque[tuple[float, int]] = collections.deque([(started, 0)])
        with _Sink(f, hashers) as sink:
            while True:
                try:
                    chunk = read1(CHUNK_SIZE, decode_content=False)
                except urllib3.exceptions.ReadTimeoutError as e:
                    if limits.remaining() <= 0:
                        raise limits.past_deadline(offset + received) from e
                    raise _Transient(
                        f"stalled: nothing for {sock_timeout:g} s after {received} bytes"
                    ) from e
                except (urllib3.exceptions.HTTPError, OSError) as e:
                    raise _Transient(f"connection cut after {received} bytes") from e
                if not chunk:
                    break
                if received + len(chunk) > room:
                    raise limits.too_big(offset + received + len(chunk), announced=False)
                sink.write(chunk)
                received += len(chunk)
                progress.update(offset + received)
                now = time.monotonic()
                if now >= limits.deadline_at:
                    raise limits.past_deadline(offset + received)
                if limits.min_speed:
                    # The window's first sample is the newest one at least `window` old.
                    samples.append((now, received))
                    while len(samples) > 1 and samples[1][0] <= now - limits.window:
                        samples.popleft()
                    t0, r0 = samples[0]
                    if now - started >= limits.window and received - r0 < limits.min_speed * (
                        now - t0
                    ):
                        raise limits.too_slow(received - r0, now - t0)
                if limits.deadline_at - now < sock_timeout:
                    # A silent server must not hold the transfer past the deadline either.
                    sock_timeout = max(0.001, limits.deadline_at - now)
                    _set_read_timeout(resp, sock_timeout)
        if length is not None and received < length:
            raise _Transient(f"connection cut after {received} bytes")


def _set_read_timeout(resp: requests.Response, seconds: float) -> None:
    """Shorten the socket timeout of a streaming response (best effort)."""
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(seconds)


def _fetch_local(
    url: str,
    part: Path,
    digests: Mapping[str, str],
    limits: _Limits,
    progress: _Progress,
    record: _Attempts,
) -> dict[str, str] | None:
    """Copy a file:// URL into ``part``; its digests, or None on failure."""
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        record.events.append(f"file:// URL on another host ({parts.netloc}) not supported")
        return None
    src = Path(urllib.request.url2pathname(parts.path))
    hashers = _hashers(digests)
    try:
        with open(src, "rb", buffering=0) as s:
            size = os.fstat(s.fileno()).st_size
            if size > limits.cap:
                record.events.append(str(limits.too_big(size, announced=True)))
                return None
            with open(part, "wb", buffering=0) as f:
                progress.start(url, 0, size)
                pos = 0
                with _Sink(f, hashers) as sink:
                    while chunk := s.read(CHUNK_SIZE):
                        sink.write(chunk)
                        pos += len(chunk)
                        progress.update(pos)
                os.fsync(f.fileno())
    except FileNotFoundError:
        record.events.append("file not found")
        return None
    except IsADirectoryError:
        record.events.append("is a directory")
        return None
    except PermissionError:
        record.events.append("permission denied")
        return None
    return {a: h.hexdigest() for a, h in hashers.items()}


class _Sink:
    """Writes chunks to a file while worker threads hash them and push them to disk.

    hashlib and fdatasync release the GIL, so hashing, writeback and the network read overlap
    instead of adding up: on a fast link this is what keeps fetch() close to curl. Used as a
    context manager; on a clean exit the hashers are complete, on an exception they are
    abandoned (the caller rehashes the partial file before resuming).
    """

    QUEUE_DEPTH = 4  # chunks in flight to the hasher; small keeps them in the CPU cache
    FLUSH_EVERY = 16 << 20  # start writeback after this many unflushed bytes

    def __init__(self, f: BinaryIO, hashers: Mapping[str, Any]) -> None:
        self._f = f
        self._fd = f.fileno()
        self._updates = [h.update for h in hashers.values()]
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._hasher = threading.Thread(target=self._hash_loop, name="fwbuild-hash", daemon=True)
        self._flusher: threading.Thread | None = None
        self._flush_wanted = threading.Event()
        self._closing = False
        self._unflushed = 0

    def __enter__(self) -> _Sink:
        self._hasher.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._queue.put(None)
        self._closing = True
        self._flush_wanted.set()
        self._hasher.join()
        if self._flusher is not None:
            self._flusher.join()
        if exc_type is None and self._error is not None:
            raise self._error

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:  # a raw FileIO may write less than asked
            n = self._f.write(view)
            if not n:
                raise OSError(errno.EIO, "write made no progress", str(self._f.name))
            view = view[n:]
        self._queue.put(chunk)
        self._unflushed += len(chunk)
        if self._unflushed >= self.FLUSH_EVERY:
            self._unflushed = 0
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="fwbuild-writeback", daemon=True
                )
                self._flusher.start()
            self._flush_wanted.set()

    def _hash_loop(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    for update in self._updates:
                        update(chunk)
                except BaseException as e:  # keep draining so write() never blocks forever
                    self._error = e

    def _flush_loop(self) -> None:
        while True:
            self._flush_wanted.wait()
            self._flush_wanted.clear()
            if self._closing:
                return
            with contextlib.suppress(OSError):
                os.fdatasync(self._fd)


def _restart(f: BinaryIO, hashers: dict[str, Any]) -> None:
    """Empty the partial file and start the hashes over (the server is sending from byte 0)."""
    f.seek(0)
    f.truncate()
    for algo in hashers:
        hashers[algo] = hashlib.new(algo)


def _hash_prefix(f: BinaryIO, size: int, hashers: Mapping[str, Any]) -> None:
    f.seek(0)
    left = size
    while left > 0:
        chunk = f.read(min(CHUNK_SIZE, left))
        if not chunk:
            break
        for h in hashers.values():
            h.update(chunk)
        left -= len(chunk)
    f.seek(0, os.SEEK_END)


def _install(part: Path, dest: Path) -> None:
    """Atomically give the verified, fsynced partial file its real name."""
    os.replace(part, dest)
    _fsync_dir(dest.parent)


# -- local state: digests, sidecar, rejected, lock -------------------------------------------


def _hashers(digests: Iterable[str]) -> dict[str, Any]:
    return {algo: hashlib.new(algo) for algo in digests}


def _hash_file(path: Path, algos: Iterable[str]) -> dict[str, str]:
    hashers = _hashers(algos)
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK_SIZE):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _mismatched(expected: Mapping[str, str], actual: Mapping[str, str]) -> dict[str, str]:
    return {a: actual[a] for a, h in expected.items() if h and actual.get(a) != h}


def _describe_mismatch(expected: Mapping[str, str], bad: Mapping[str, str]) -> str:
    return "; ".join(f"expected {a} {expected[a]}, got {h}" for a, h in bad.items())


def _sidecar_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.verified")


def _stat_key(st: os.stat_result) -> dict[str, int]:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def _sidecar_matches(dest: Path, digests: Mapping[str, str]) -> bool:
    """True if the sidecar vouches for ``dest`` as it is now, with all of ``digests``."""
    try:
        st = dest.stat()
        data = json.loads(_sidecar_path(dest).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("stat") != _stat_key(st):
        return False
    known = data.get("digests")
    return isinstance(known, dict) and all(known.get(a) == h for a, h in digests.items())


def _write_sidecar(dest: Path, digests: Mapping[str, str]) -> None:
    """Remember that ``dest`` (as it is now) has ``digests``; best effort."""
    side = _sidecar_path(dest)
    tmp = side.with_name(side.name + f".{os.getpid()}.tmp")
    try:
        payload = {"stat": _stat_key(dest.stat()), "digests": dict(digests)}
        tmp.write_text(json.dumps(payload, sort_keys=True) + "\n")
        os.replace(tmp, side)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _reject(path: Path, dl_dir: Path) -> Path:
    """Move ``path`` to ``dl_dir/.rejected/<filename>``, private; return the new path.

    One copy per file name, replacing an older one: enough to inspect what a mirror served,
    and repeated failures cannot fill the disk. Owner-only (directory 0700, file 0600), since a
    rejected file is untrusted content nobody else needs to read.
    """
    name = path.name.removesuffix(".part") if path.parent.name == PARTIAL_DIR else path.name
    rejected = dl_dir / REJECTED_DIR
    rejected.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # a shared cache may belong to someone else
        if rejected.stat().st_mode & 0o777 != 0o700:
            rejected.chmod(0o700)
    target = rejected / name
    os.replace(path, target)
    with contextlib.suppress(OSError):
        target.chmod(0o600)
    if path.parent == dl_dir:
        with contextlib.suppress(OSError):
            _sidecar_path(path).unlink()
    return target


def _clear_hint(dl_dir: Path) -> str:
    return f"`rm -r {dl_dir / REJECTED_DIR}` clears the rejected copies"


@contextlib.contextmanager
def _dl_lock(
    dl_dir: Path, filename: str, package: str, log: TextIO, settings: FetchSettings
) -> Iterator[None]:
    """Hold an exclusive flock on ``dl_dir/.locks/<filename>.lock``."""
    lock_path = dl_dir / LOCK_DIR / f"{filename}.lock"
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if not settings.offline:
            raise _unwritable(dl_dir, package, e) from e
        fd = -1  # a read-only cache is fine when nothing will be downloaded
    if fd < 0:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _Progress.note(
                settings, log, f"{package}: waiting for another build downloading {filename}"
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- validation and messages -----------------------------------------------------------------


def _check_filename(filename: str, package: str) -> None:
    if (
        not filename
        or "/" in filename
        or "\0" in filename
        or filename in (".", "..")
        or filename.startswith(".")
    ):
        raise ConfigError(
            f"the source file name {filename!r} is not a plain file name; name the file the "
            "recipe downloads without directories or a leading dot.",
            package=package,
        )


def _normalise_digests(digests: Mapping[str, str], package: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for algo, value in digests.items():
        a = algo.strip().lower()
        try:
            hashlib.new(a)
        except (ValueError, TypeError):
            raise ConfigError(
                f"the recipe pins a digest with unknown algorithm {algo!r}; use one hashlib "
                "knows, preferably sha256.",
                package=package,
            ) from None
        h = str(value).strip().lower()
        if not re.fullmatch(r"[0-9a-f]+", h):
            raise ConfigError(
                f"the recipe's {a} digest {value!r} is not a hex string; re-pin it with "
                f"`doit pin:{package}`.",
                package=package,
            )
        out[a] = h
    return out


def _candidate_urls(remote: RemoteFile, settings: FetchSettings) -> list[str]:
    def on(base: str) -> str:
        return f"{base.rstrip('/')}/{urllib.parse.quote(remote.filename)}"

    urls: list[str] = []
    if settings.primary_mirror:
        urls.append(on(settings.primary_mirror))
    urls.extend(remote.urls)
    urls.extend(on(b) for b in settings.backup_mirrors if b)
    return list(dict.fromkeys(u for u in urls if u))


def _reason(e: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 exception, briefly."""
    seen: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in seen:
        seen.append(cur)
        nxt = cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None
        cur = getattr(cur, "reason", None) or nxt or cur.__cause__ or cur.__context__
    last = seen[-1]
    text = str(last)
    if isinstance(last, ConnectionRefusedError) or "Connection refused" in text:
        return "connection refused"
    if isinstance(last, ConnectionResetError):
        return "connection reset"
    if "Name or service not known" in text or "getaddrinfo" in text:
        return "host name not found"
    return text.split(": ", 1)[-1][:200] if ": " in text else text[:200] or type(last).__name__


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _unwritable(dl_dir: Path, package: str, e: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write to the download directory {dl_dir} ({e.strerror or e}); make it "
        "writable or point the build at another download directory.",
        package=package,
    )


def _url_list(urls: Iterable[str]) -> str:
    urls = list(urls)
    return ", ".join(urls) if urls else "(none)"


def _unpinned_message(remote: RemoteFile, settings: FetchSettings, package: str) -> str:
    return (
        f"{remote.filename} has no known digest (none in the recipe or the pin lock file), so "
        "it will not be downloaded: fwbuild never uses a source file it cannot verify. Run "
        f"`doit pin:{package}` to download it once and record its sha256 in the pin lock "
        "file, review and commit that, then build again. "
        f"URLs: {_url_list(_candidate_urls(remote, settings))}."
        + _unpinned_offline_options(remote, settings, package)
    )


def _unpinned_offline_options(remote: RemoteFile, settings: FetchSettings, package: str) -> str:
    # `doit pin` needs the network; a user without it, who has the file, has two ways.
    dest = Path(settings.dl_dir) / remote.filename
    return (
        " Without network access (pinning downloads), if you have the file: either name it "
        f'in an overrides file (FWBUILD_OVERRIDES) as [files."{remote.filename}"] with '
        'path = "…" and the sha256 you vouch for, or copy it to '
        f"{dest} and run `doit pin:{package}` with FWBUILD_OFFLINE=1, which pins that copy "
        "by its digest."
    )


def _offline_message(remote: RemoteFile, settings: FetchSettings, mismatch: str | None) -> str:
    where = f"the download directory {settings.dl_dir}"
    if mismatch:
        what = f"{remote.filename} in {where} is unusable: {mismatch}"
    else:
        what = f"{remote.filename} is not in {where}"
    urls = _url_list(_candidate_urls(remote, settings))
    return (
        f"{what}, and downloads are disabled (offline mode). Set FWBUILD_OFFLINE=0 to allow "
        "downloads, or run `doit source` on a connected machine and copy its download "
        f"directory here. It would be downloaded from: {urls}."
    )


def _failed_message(
    remote: RemoteFile, settings: FetchSettings, package: str, tried: list[_Attempts]
) -> str:
    dest = Path(settings.dl_dir) / remote.filename
    lines = [f"could not download {remote.filename}; every URL failed:"]
    lines += [f"  {t.url}: {t.summary()}" for t in tried]
    advice = (
        "Check that the mirrors above are reachable and serve this file, set a primary mirror "
        f"that has it via FWBUILD_PRIMARY_MIRROR, or put a known-good copy at {dest}."
    )
    if any(t.mismatch for t in tried):
        advice = (
            "A digest mismatch means a server delivered different bytes than the recipe pins: "
            "check that mirror; if upstream legitimately changed the file, verify the new "
            f"release and pin its digest in the recipe (`doit pin:{package}`). " + advice
        )
    lines.append(advice)
    return "\n".join(lines)


# -- progress --------------------------------------------------------------------------------


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class _Progress:
    """Progress for one file: a \\r bar on a tty, a few plain lines otherwise, or nothing."""

    PLAIN_STEPS = (20, 40, 60, 80)
    PLAIN_INTERVAL = 15.0  # seconds between plain lines when the size is unknown
    BAR_INTERVAL = 0.1

    def __init__(self, settings: FetchSettings, log: TextIO, package: str, filename: str):
        self.log = log
        self.mode = self._mode(settings.progress, log)
        self.label = f"{package}: {filename}"
        self.url = ""
        self.total: int | None = None
        self.t0 = self.t_last = time.monotonic()
        self.start_pos = 0
        self.next_step = 0
        self.plain_lines = 0
        self.bar_width = 0

    @staticmethod
    def _mode(mode: str, log: TextIO) -> str:
        if mode == "auto":
            try:
                return "bar" if log.isatty() else "plain"
            except (AttributeError, ValueError):
                return "plain"
        return mode if mode in ("bar", "plain", "none") else "plain"

    @classmethod
    def note(cls, settings: FetchSettings, log: TextIO, text: str) -> None:
        if cls._mode(settings.progress, log) != "none":
            cls._write(log, text + "\n")

    @staticmethod
    def _write(log: TextIO, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            log.write(text)
            log.flush()

    def start(self, url: str, pos: int, total: int | None) -> None:
        if url != self.url:
            self.t0 = time.monotonic()
            self.start_pos = pos
        self.url, self.total = url, total
        self.t_last = time.monotonic()

    def update(self, pos: int) -> None:
        if self.mode == "none":
            return
        now = time.monotonic()
        if self.mode == "bar":
            if now - self.t_last >= self.BAR_INTERVAL or pos == self.total:
                self.t_last = now
                self._bar(pos, now)
            return
        if self.total:
            pct = pos * 100 // self.total
            if self.next_step < len(self.PLAIN_STEPS) and pct >= self.PLAIN_STEPS[self.next_step]:
                while (
                    self.next_step < len(self.PLAIN_STEPS)
                    and pct >= self.PLAIN_STEPS[self.next_step]
                ):
                    self.next_step += 1
                if pct < 100:
                    # The step passed, not the exact figure: CI logs read 20/40/60/80 whatever
                    # sizes the socket hands out.
                    self._plain(pos, self.PLAIN_STEPS[self.next_step - 1])
        elif now - self.t_last >= self.PLAIN_INTERVAL and self.plain_lines < len(self.PLAIN_STEPS):
            self.t_last = now
            self._plain(pos)

    def _speed(self, pos: int, now: float) -> str:
        elapsed = max(now - self.t0, 1e-6)
        return f"{_human((pos - self.start_pos) / elapsed)}/s"

    def _plain(self, pos: int, pct: int | None = None) -> None:
        self.plain_lines += 1
        if self.total:
            pct = pos * 100 // self.total if pct is None else pct
            text = f"{self.label} {pct}% {_human(pos)}/{_human(self.total)}"
        else:
            text = f"{self.label} {_human(pos)}"
        self._write(self.log, f"{text} from {self.url}\n")

    def _bar(self, pos: int, now: float) -> None:
        if self.total:
            text = (
                f"{self.label} {pos * 100 // self.total:3d}% "
                f"{_human(pos)}/{_human(self.total)} {self._speed(pos, now)}"
            )
        else:
            text = f"{self.label} {_human(pos)} {self._speed(pos, now)}"
        pad = max(0, self.bar_width - len(text))
        self.bar_width = len(text)
        self._write(self.log, "\r" + text + " " * pad)

    def _end_bar(self) -> None:
        if self.mode == "bar" and self.bar_width:
            self._write(self.log, "\n")
            self.bar_width = 0

    def note_failure(self, url: str, what: str, *, more: bool) -> None:
        if self.mode != "none":
            self._end_bar()
            then = "trying the next URL" if more else "no URL left"
            self._write(self.log, f"{self.label}: {url}: {what}; {then}\n")

    def note_resume(self, size: int) -> None:
        if self.mode != "none":
            self._write(
                self.log,
                f"{self.label}: continuing a partial download of {_human(size)} left by an "
                "interrupted run\n",
            )

    def note_retry(self, url: str, what: str, n: int, of: int) -> None:
        if self.mode != "none":
            self._end_bar()
            self._write(self.log, f"{self.label}: {url}: {what}; retrying ({n}/{of})\n")

    def done(self, url: str, size: int) -> None:
        if self.mode == "none":
            return
        now = time.monotonic()
        text = (
            f"{self.label} done, {_human(size)} in {now - self.t0:.1f} s "
            f"({self._speed(size, now)}) from {url}"
        )
        if self.mode == "bar" and self.bar_width:
            pad = max(0, self.bar_width - len(text))
            self._write(self.log, "\r" + text + " " * pad + "\n")
            self.bar_width = 0
        else:
            self._write(self.log, text + "\n")

    def close(self) -> None:
        self._end_bar()
