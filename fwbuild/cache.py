"""A build cache machines share (as Yocto's shared state and its ``SSTATE_MIRRORS``).

When a package's ``install`` stage finishes, its output (the staging directory, with modes and
symbolic links, and the stamp's extra data) is stored under the stage's key; before the stage
would run, an entry with the same key is restored instead. The key already covers every input of
the stage (fwbuild.project), so an entry is exactly the output that stage would make. Restoring a
package also spares its earlier stages: ``fetch`` … ``build`` count as up to date while its
install comes from the cache, and run only when something needs the tree (a damaged entry, the
licence bundle, ``menuconfig``; see ``fwbuild.stages.Stage.ensure``).

Where entries live, in the shape bazel-remote's HTTP cache uses (``ac/`` and ``cas/``)::

    <cache>/fwbuild-1/cas/<sha256>   the archive (tar.gz of the staging directory), named by its
                                     own SHA-256: concurrent writers write the same bytes
    <cache>/fwbuild-1/ac/<key>       JSON: package, stage, the archive's sha256 and size, extra

The ``ac`` record is written last, after its archive is complete, so an interrupted upload is
never an entry; a reader checks the archive's size and digest before unpacking anything, and
refuses (and rebuilds, and says so) on a mismatch. A local directory is written to temporary
names and renamed (safe for concurrent builds and over NFS); a server takes plain HTTP
``GET``/``PUT``/``HEAD`` as WebDAV servers do (nginx's dav module with ``create_full_put_path``,
Apache's mod_dav), which store a ``PUT`` only once its body is complete.

Settings (the environment wins over the board's ``[cache]``)::

    [cache]
    dir = "/srv/fwbuild-cache"      # FWBUILD_CACHE_DIR
    url = "http://cache:8080/fw"    # FWBUILD_CACHE_URL
    mode = "rw"                     # FWBUILD_CACHE_MODE: rw (read and write), ro, off

Secrets never enter the cache: a package is stored and restored only when ``cacheable`` says so
(see ``Package.shared_cache``: not for packages whose install reads files outside the build,
``dynamic`` ones and those that declare ``protected_paths``, nor for any package depending on a
dynamic one). A server that does not answer is given up for the rest of the build, said once;
the build goes on without it.

``[cache] ccache = true`` / FWBUILD_CCACHE=1 puts ccache in front of the compilers
(``ccache_env``), with its identity in the configure keys (``ccache_identity``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fwbuild.errors import ConfigError
from fwbuild.fsutil import atomic_write

if TYPE_CHECKING:  # (imported where used: a no-op build, which imports this, needs neither)
    import http.client
    import tarfile

    from fwbuild.config import Board
    from fwbuild.project import Project

FORMAT = "fwbuild-1"  # the layout and archive format; a change starts a new namespace
MODES = ("rw", "ro", "off")
CACHED_STAGES = ("install",)
HTTP_TIMEOUT = 10.0  # seconds to connect or to wait for a byte from the server
_CHUNK = 1 << 20
_MAX_RECORD = 1 << 16  # bytes of an ac record read at most
_DOWN_MARKER = ".cache-unreachable"  # in the build directory: the server is given up, this run


class CacheUnavailable(Exception):
    """The backend cannot be used (server down, directory unreadable); not a missing entry."""


class EntryRefused(Exception):
    """An entry exists but is damaged or not ours; it is never unpacked."""


# --- settings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheSettings:
    dir: Path | None = None
    url: str | None = None
    mode: str = "off"
    where: dict[str, str] = field(default_factory=dict, compare=False)  # setting -> origin

    @property
    def enabled(self) -> bool:
        return self.mode != "off" and bool(self.dir or self.url)

    @property
    def writes(self) -> bool:
        return self.mode == "rw"


def cache_settings(board: Board) -> CacheSettings:
    """``[cache]`` of the board, overridden by FWBUILD_CACHE_DIR / _URL / _MODE."""
    section = board.data.get("cache") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{board.file}: [cache] must be a table (dir, url, mode)")
    where: dict[str, str] = {}

    def value(key: str, env: str) -> str | None:
        raw = os.environ.get(env)
        if raw is not None and raw.strip():
            where[key] = f"{env} (environment)"
            return raw.strip()
        if section.get(key) not in (None, ""):
            where[key] = f"{board.file}: [cache] {key}"
            return str(section[key])
        return None

    dir_raw = value("dir", "FWBUILD_CACHE_DIR")
    url = value("url", "FWBUILD_CACHE_URL")
    mode = value("mode", "FWBUILD_CACHE_MODE") or "rw"
    if mode not in MODES:
        raise ConfigError(
            f"{where['mode']}: the cache mode must be one of rw (read and write), ro (read only) "
            f"or off, not {mode!r}"
        )
    directory = None
    if dir_raw:
        directory = Path(dir_raw).expanduser()
        if not directory.is_absolute():
            directory = (board.paths.project / directory).resolve()
    if url:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"{where['url']}: {_safe_url(url)!r} is not an http:// or https:// URL; the cache "
                "server is spoken to with plain HTTP GET/PUT (a WebDAV server, bazel-remote)"
            )
    return CacheSettings(dir=directory, url=url, mode=mode, where=where)


def _safe_url(url: str) -> str:
    """The URL without a password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


# --- backends --------------------------------------------------------------------------------
class Backend(Protocol):
    where: str  # for messages: a path or a URL without its password
    remote: bool

    def read(self, name: str) -> Iterator[bytes] | None: ...
    def exists(self, name: str) -> bool: ...
    def write(self, name: str, src: Path) -> None: ...


class DirBackend:
    """A directory (local, shared between checkouts, or on NFS)."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def _path(self, name: str) -> Path:
        return self.root / FORMAT / name

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def read(self, name: str) -> Iterator[bytes] | None:
        try:
            fh = open(self._path(name), "rb")  # noqa: SIM115 (closed by the generator)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheUnavailable(f"cannot read {self._path(name)}: {exc.strerror}") from None

        def chunks() -> Iterator[bytes]:
            with fh:
                while block := fh.read(_CHUNK):
                    yield block

        return chunks()

    def write(self, name: str, src: Path) -> None:
        import socket
        import tempfile

        dest = self._path(name)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # A name of our own beside the entry, then one rename: a reader sees the whole file
            # or none, and two builds writing one entry never mix their bytes (NFS included:
            # rename within a directory is atomic there too).
            fd, tmp = tempfile.mkstemp(
                dir=dest.parent, prefix=f".{dest.name}.{socket.gethostname()}.{os.getpid()}."
            )
            try:
                with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                    shutil.copyfileobj(inp, out, _CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CacheUnavailable(f"cannot write {dest}: {exc.strerror or exc}") from None


class HttpBackend:
    """A server taking HTTP GET/HEAD/PUT: a WebDAV server (nginx's dav module, Apache's
    mod_dav); the layout is bazel-remote's HTTP cache's too (untested)."""

    remote = True

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT) -> None:
        import base64

        parts = urllib.parse.urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self.where = _safe_url(url)
        self.headers: dict[str, str] = {"User-Agent": "fwbuild-cache"}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            token = f"{user}:{urllib.parse.unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()

    def _connection(self) -> http.client.HTTPConnection:
        import http.client

        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def _url(self, name: str) -> str:
        return f"{self.base}/{FORMAT}/{name}"

    def _request(
        self, method: str, name: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        import http.client

        conn = self._connection()
        try:
            conn.request(
                method, self._url(name), body=body, headers={**self.headers, **(headers or {})}
            )
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise CacheUnavailable(f"{self.where} does not answer ({_reason(exc)})") from None
        if response.status >= 500 or response.status in (401, 403):
            conn.close()
            raise CacheUnavailable(
                f"{self.where} answered {method} {self._url(name)} with HTTP {response.status} "
                f"{response.reason}"
            )
        return conn, response

    def exists(self, name: str) -> bool:
        conn, response = self._request("HEAD", name)
        conn.close()
        return response.status == 200

    def read(self, name: str) -> Iterator[bytes] | None:
        import http.client

        conn, response = self._request("GET", name)
        if response.status == 404:
            conn.close()
            return None
        if response.status != 200:
            conn.close()
            raise CacheUnavailable(f"{self.where}: GET {self._url(name)}: HTTP {response.status}")

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise CacheUnavailable(
                            f"{self.where}: reading {self._url(name)} failed ({_reason(exc)})"
                        ) from None
                    if not block:
                        return
                    yield block
            finally:
                conn.close()

        return chunks()

    def write(self, name: str, src: Path) -> None:
        import http.client

        size = src.stat().st_size
        with open(src, "rb") as body:
            conn, response = self._request(
                "PUT",
                name,
                body=body,
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            response.read()
        conn.close()
        if response.status not in (200, 201, 204):
            raise CacheUnavailable(
                f"{self.where} refused PUT {self._url(name)}: HTTP {response.status} "
                f"{response.reason} (a WebDAV server needs PUT allowed and create_full_put_path)"
            )


def _reason(exc: BaseException) -> str:
    import socket

    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# --- archives --------------------------------------------------------------------------------
def pack(tree: Path, archive: Path) -> None:
    """``tree`` as a gzip'd tar: sorted, owners dropped, modes, times and links as they are."""
    import tarfile

    def entries() -> Iterator[Path]:
        stack = [tree]
        while stack:
            directory = stack.pop()
            children = sorted(directory.iterdir(), key=lambda p: p.name, reverse=True)
            for child in children:
                yield child
                if child.is_dir() and not child.is_symlink():
                    stack.append(child)

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    import gzip

    with (
        open(archive, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(entries(), key=lambda p: p.relative_to(tree).as_posix()):
            tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False, filter=clean)


def _checked_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Every member, refused unless it stays inside the new tree and writes through no link."""
    kinds: dict[str, str] = {}
    for member in tar:
        name = member.name
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise EntryRefused(f"entry {name!r} is not a plain relative path")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if kinds.get(parent, "dir") != "dir":
                raise EntryRefused(
                    f"entry {name!r} lies under {parent!r}, which is not a directory"
                )
        if name in kinds:
            raise EntryRefused(f"entry {name!r} appears twice")
        if member.isdir():
            kinds[name] = "dir"
        elif member.isreg():
            kinds[name] = "file"
        elif member.issym():
            kinds[name] = "link"
        elif member.islnk():
            if kinds.get(member.linkname) != "file":
                raise EntryRefused(f"entry {name!r} is a hard link to {member.linkname!r}")
            kinds[name] = "file"
        else:
            raise EntryRefused(f"entry {name!r} is a device, FIFO or unknown kind")
        yield member


def unpack(archive: Path, dest: Path) -> None:
    """Unpack into the new directory ``dest``; raises EntryRefused on an unsafe member."""
    import tarfile

    from fwbuild.tarmembers import extract_as_given, owned_here

    dest.mkdir()
    with tarfile.open(archive, "r:gz") as tar:
        # Checked by _checked_members; modes and times stay as packed, owners go (the extracting
        # user owns the tree).
        members = (owned_here(member) for member in _checked_members(tar))
        extract_as_given(tar, dest, members)
    os.chmod(dest, 0o755)


# --- the cache -------------------------------------------------------------------------------
def run_id() -> int:
    """The doit run this process belongs to (a ``-n N`` worker's parent is the run)."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getpid()


def say(message: str) -> None:
    print(f"build cache: {message}", file=sys.stderr, flush=True)


@dataclass
class Hit:
    backend: Backend
    meta: dict[str, Any]


class Cache:
    """The configured backends of one project: the directory first, then the server."""

    def __init__(self, settings: CacheSettings, build_dir: Path, *, offline: bool = False) -> None:
        self.settings = settings
        self.build_dir = build_dir
        self.backends: list[Backend] = []
        self.lookups: dict[str, Hit | None] = {}
        self._down: set[str] = set()
        if not settings.enabled:
            return
        if settings.dir:
            self.backends.append(DirBackend(settings.dir))
        if settings.url:
            if offline:
                say(
                    f"offline build (FWBUILD_OFFLINE): the server {_safe_url(settings.url)} "
                    "is not used"
                )
            else:
                self.backends.append(HttpBackend(settings.url))

    # --- a server that is down is given up once per run, said once ----------------------------
    def _marker(self) -> Path:
        return self.build_dir / _DOWN_MARKER

    def usable(self, backend: Backend) -> bool:
        if backend.where in self._down:
            return False
        try:
            run, _, where = self._marker().read_text().partition(" ")
        except OSError:
            return True
        if run == str(run_id()) and where.strip() == backend.where:
            self._down.add(backend.where)
            return False
        return True

    def give_up(self, backend: Backend, why: str) -> None:
        if backend.where in self._down:
            return
        self._down.add(backend.where)
        say(f"{why}; building without it (no entry read or written there in this build)")
        try:
            self.build_dir.mkdir(parents=True, exist_ok=True)
            tmp = self._marker().with_suffix(f".{os.getpid()}")
            tmp.write_text(f"{run_id()} {backend.where}\n")
            tmp.replace(self._marker())
        except OSError:
            pass  # then each process of this run says it once

    # --- reading -------------------------------------------------------------------------------
    def lookup(self, key: str) -> Hit | None:
        """The first backend holding a record for ``key`` (its archive not yet checked)."""
        if key in self.lookups:
            return self.lookups[key]
        found: Hit | None = None
        for backend in self.backends:
            if not self.usable(backend):
                continue
            try:
                chunks = backend.read(f"ac/{key}")
                if chunks is None:
                    continue
                data = b""
                for block in chunks:
                    data += block
                    if len(data) > _MAX_RECORD:  # a record is a few hundred bytes
                        break
            except CacheUnavailable as exc:
                self.give_up(backend, str(exc))
                continue
            try:
                meta = json.loads(data)
                ok = (
                    isinstance(meta, dict)
                    and meta.get("format") == FORMAT
                    and meta.get("key") == key
                    and isinstance(meta.get("sha256"), str)
                    and len(meta["sha256"]) == 64
                    and isinstance(meta.get("size"), int)
                )
            except ValueError:  # too long, cut, or not JSON
                ok = False
            if not ok:
                say(f"the record for key {key[:12]}… in {backend.where} is damaged: refused")
                continue
            found = Hit(backend, meta)
            break
        self.lookups[key] = found
        return found

    def fetch_archive(self, hit: Hit, dest: Path) -> None:
        """The hit's archive into ``dest``, verified by size and SHA-256 as it streams."""
        digest, size = hit.meta["sha256"], hit.meta["size"]
        chunks = hit.backend.read(f"cas/{digest}")
        if chunks is None:
            raise EntryRefused(f"its archive cas/{digest[:12]}… is missing")
        sha = hashlib.sha256()
        got = 0
        with open(dest, "wb") as out:
            for block in chunks:
                got += len(block)
                if got > size:
                    raise EntryRefused(f"its archive is larger than the {size} bytes recorded")
                sha.update(block)
                out.write(block)
        if got != size:
            raise EntryRefused(
                f"its archive holds {got} bytes, not the {size} recorded (truncated)"
            )
        if sha.hexdigest() != digest:
            raise EntryRefused(
                f"its archive's sha256 is {sha.hexdigest()}, not the {digest} recorded (damaged)"
            )

    # --- writing -------------------------------------------------------------------------------
    def store(self, key: str, tree: Path, meta: dict[str, Any], scratch: Path) -> list[str]:
        """Store ``tree`` under ``key`` in every writable backend; returns where it went."""
        if not self.settings.writes:
            return []
        targets = [b for b in self.backends if self.usable(b)]
        if not targets:
            return []
        archive = scratch / "cache-entry.tar.gz"
        record = scratch / "cache-entry.json"
        try:
            pack(tree, archive)
            digest = hashlib.sha256()
            with open(archive, "rb") as fh:
                while block := fh.read(_CHUNK):
                    digest.update(block)
            full = {
                **meta,
                "format": FORMAT,
                "key": key,
                "sha256": digest.hexdigest(),
                "size": archive.stat().st_size,
            }
            record.write_text(json.dumps(full, indent=1, sort_keys=True) + "\n")
            stored: list[str] = []
            for backend in targets:
                try:
                    # the archive first, the record last: a record names a complete archive
                    backend.write(f"cas/{full['sha256']}", archive)
                    backend.write(f"ac/{key}", record)
                except CacheUnavailable as exc:
                    self.give_up(backend, str(exc))
                    continue
                stored.append(backend.where)
            return stored
        finally:
            archive.unlink(missing_ok=True)
            record.unlink(missing_ok=True)


# --- the project's view ------------------------------------------------------------------------
_CACHES: dict[int, Cache] = {}


def cache_for(project: Project) -> Cache:
    found = _CACHES.get(id(project))
    if found is None:
        board = project.board
        found = _CACHES[id(project)] = Cache(
            cache_settings(board), board.paths.build, offline=board.offline
        )
    return found


def cacheable(project: Project, name: str) -> bool:
    """Whether the package's outputs may be stored and restored (never a secret's).

    ``Package.shared_cache`` False, a ``dynamic`` package or one depending on one (its install
    reads files outside the build: a PKI, a secrets file), and a package declaring
    ``protected_paths`` are never cached, whatever ``shared_cache`` says."""
    pkg = project.packages[name]
    if getattr(pkg, "shared_cache", None) is False or project.is_dynamic(name):
        return False
    return not pkg.protected_paths()


def enabled_for(project: Project, name: str) -> bool:
    cache = cache_for(project)
    return bool(cache.backends) and cacheable(project, name)


ORIGIN = "cache-origin.json"  # in the package's work directory: which entry its staging is


def origin(project: Project, name: str, stage: str = "install") -> str | None:
    """Where the stage's current output was restored from, if it was (else None): the stamp
    holds the current key and the origin file names that very key."""
    from fwbuild.stamps import read_stamp, stamp_matches

    key = project.key(name, stage)
    if not stamp_matches(project.stamp_file(name, stage), key):
        return None
    found = read_stamp(project.workdir(name) / ORIGIN) or {}
    if found.get("key") != key or not project.stagingdir(name).is_dir():
        return None
    return str(found.get("from") or "the cache")


def _write_origin(project: Project, name: str, key: str, where: str) -> None:
    path = project.workdir(name) / ORIGIN
    atomic_write(path, json.dumps({"key": key, "from": where}, indent=1) + "\n")


def covers(project: Project, name: str, stage: str) -> bool:
    """Whether an earlier stage (fetch … build) of the package can be skipped because its
    install comes, or came, from the cache. Asked only when the stage's own stamp is stale."""
    if stage in CACHED_STAGES or not enabled_for(project, name):
        return False
    if origin(project, name) is not None:
        return True
    return cache_for(project).lookup(project.key(name, "install")) is not None


def restore(project: Project, name: str, stage: str = "install") -> dict[str, Any] | None:
    """Restore the stage's output from the cache; the extra stamp data when it did, else None
    (no entry, a refused entry or an unusable backend: each said, none fatal)."""
    import tarfile

    from fwbuild.trees import guard_for, remove_tree, replace_tree

    if stage not in CACHED_STAGES or not enabled_for(project, name):
        return None
    cache = cache_for(project)
    key = project.key(name, stage)
    hit = cache.lookup(key)
    if hit is None:
        return None
    started = time.monotonic()
    work = project.workdir(name)
    work.mkdir(parents=True, exist_ok=True)
    final = project.stagingdir(name)
    tmp = final.with_name("staging.cache")
    guard = guard_for(project)
    setting = f"the staging directory of {name} (under FWBUILD_BUILD_DIR)"
    archive = work / "cache-restore.tar.gz"
    remove_tree(tmp, setting=setting, guard=guard)
    try:
        cache.fetch_archive(hit, archive)
        unpack(archive, tmp)
    except EntryRefused as exc:
        say(
            f"{stage}:{name}: the entry for key {key[:12]}… in {hit.backend.where} is refused: "
            f"{exc}; building it instead (nothing was unpacked over the build)"
        )
        cache.lookups[key] = None
        remove_tree(tmp, setting=setting, guard=guard)
        return None
    except CacheUnavailable as exc:
        cache.give_up(hit.backend, str(exc))
        cache.lookups[key] = None
        remove_tree(tmp, setting=setting, guard=guard)
        return None
    except (OSError, tarfile.TarError, EOFError) as exc:
        say(
            f"{stage}:{name}: the entry in {hit.backend.where} cannot be unpacked ({exc}); "
            "building it instead"
        )
        cache.lookups[key] = None
        remove_tree(tmp, setting=setting, guard=guard)
        return None
    finally:
        archive.unlink(missing_ok=True)
    replace_tree(tmp, final, setting=setting, guard=guard)
    seconds = time.monotonic() - started
    say(f"{stage}:{name}: from cache ({hit.backend.where}) in {seconds:.2f} s")
    extra = hit.meta.get("extra")
    return {**(extra if isinstance(extra, dict) else {}), "from_cache": hit.backend.where}


def store(project: Project, name: str, stage: str = "install", **extra: Any) -> None:
    """Store the stage's output under its key (a no-op unless the cache is writable)."""
    if stage not in CACHED_STAGES or not enabled_for(project, name):
        return
    cache = cache_for(project)
    pkg = project.packages[name]
    meta = {"package": name, "version": pkg.version, "stage": stage, "extra": extra}
    cache.store(project.key(name, stage), project.stagingdir(name), meta, project.workdir(name))


class CacheHook:
    """The stage hook (fwbuild.stages.StageHook) around ``install``: restore, or build and store."""

    def __init__(self) -> None:
        self.restored: set[tuple[str, str]] = set()

    def before(self, project: Project, stage: Any, name: str) -> bool:
        if stage.name not in CACHED_STAGES or not enabled_for(project, name):
            return False
        key = project.key(name, stage.name)
        (project.workdir(name) / ORIGIN).unlink(missing_ok=True)
        extra = restore(project, name, stage.name)
        if extra is not None:
            _write_origin(project, name, key, str(extra["from_cache"]))
            self.restored.add((name, key))
            return True
        # No entry after all (refused, unreachable): the stages doit skipped for it run now.
        if stage.previous is not None:
            stage.previous.ensure(project, name, keep_restored=False)
        return False

    def after(self, project: Project, stage: Any, name: str) -> None:
        if stage.name not in CACHED_STAGES:
            return
        key = project.key(name, stage.name)
        if (name, key) in self.restored:
            return
        store(project, name, stage.name)


HOOK = CacheHook()


# --- ccache: compile-level reuse inside a package -----------------------------------------------
_CCACHE_VERSION: dict[str, str] = {}


def ccache_enabled(board: Board) -> bool:
    """``[cache] ccache = true`` or FWBUILD_CCACHE=1 (the environment wins)."""
    from fwbuild.envflag import env_flag

    section = board.data.get("cache") or {}
    return env_flag("FWBUILD_CCACHE", bool(section.get("ccache", False)))


def _ccache_binary() -> str:
    found = shutil.which("ccache")
    if found is None:
        raise ConfigError(
            "FWBUILD_CCACHE / [cache] ccache is on, but ccache is not installed: "
            "apt-get install ccache (or switch it off)"
        )
    return found


def ccache_identity(project: Project, pkg: Any) -> dict[str, Any] | None:
    """What ccache adds to a package's configure key (None when it is not used for it): its
    version and the settings that reach it, so switching it on, upgrading it or changing its
    configuration rebuilds, and a key never covers output made another way."""
    if pkg.toolchain == "none" or not ccache_enabled(project.board):
        return None
    binary = _ccache_binary()
    if binary not in _CCACHE_VERSION:
        import subprocess

        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        _CCACHE_VERSION[binary] = (out.stdout.splitlines() or ["unknown"])[0].strip()
    settings = {k: v for k, v in sorted(os.environ.items()) if k.startswith("CCACHE_")}
    return {
        "version": _CCACHE_VERSION[binary],
        # digests only: a remote storage URL may carry a password, and stamps are read by people
        "settings": hashlib.sha256(json.dumps(settings).encode()).hexdigest(),
    }


def ccache_env(project: Project, pkg: Any, env: dict[str, str]) -> dict[str, str]:
    """The build environment with ccache in front of the package's compiler, when switched on.

    zig's wrappers are named by absolute path in CC, so ccache goes in front of them
    (``CC="ccache …/cc"``) and identifies the compiler by the toolchain's identity (the wrapper
    script does not change when zig does). A gcc toolchain is found on PATH by its prefixed
    name (the kernel's make names ``i686-linux-gnu-gcc``), so a directory of links named so,
    to ccache, goes first on PATH: ccache runs the real compiler found after it."""
    identity = ccache_identity(project, pkg)
    if identity is None:
        return env
    binary = _ccache_binary()
    out = dict(env)
    toolchain = project.toolchain_for(pkg)
    kind = toolchain.identity().get("kind")
    if kind == "zig":
        for var in ("CC", "CXX"):
            if var in out:
                out[var] = f"{binary} {out[var]}"
        ident = json.dumps(toolchain.identity(), sort_keys=True)
        out["CCACHE_COMPILERCHECK"] = "string:" + hashlib.sha256(ident.encode()).hexdigest()
    elif "CROSS_COMPILE" in out:
        masq = project.board.paths.build / "toolchain" / "ccache"
        masq.mkdir(parents=True, exist_ok=True)
        for tool in ("gcc", "cc", "g++"):
            link = masq / f"{out['CROSS_COMPILE']}{tool}"
            if not link.is_symlink() or os.readlink(link) != binary:
                link.unlink(missing_ok=True)
                link.symlink_to(binary)
        out["PATH"] = f"{masq}{os.pathsep}{out.get('PATH', os.environ.get('PATH', ''))}"
    # ccache's own settings (its directory, remote storage) reach it; the build's do not
    out.update({k: v for k, v in os.environ.items() if k.startswith("CCACHE_") and k not in out})
    return out
