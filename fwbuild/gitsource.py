"""The git download method: a source or patch given as repository URL + full commit id.

Buildroot's ``_SITE_METHOD = git`` and Yocto's ``SRCREV`` are the model. A recipe names it with
a URL in SPDX's VCS form (``git_url()`` writes it), which is also what the SBOM records::

    git+https://github.com/sndrzt/linux-2.6.11.git@ab87db4ec3bb3f2bfb485d062389c5588021efa9
    git+https://github.com/pld-linux/ppp.git@1b28c30e…8822#ppp-2.4.3-mppe-mppc-1.1.patch

``git+https``, ``git+http`` and ``git+file`` are accepted; the commit must be the full 40-hex
id (a branch or tag can move, and a short id can become ambiguous). The part after ``#`` names
one file inside the repository: the result is that blob's bytes, exactly as a host serving the
file at that commit returns them. Without it the result is the whole tree at the commit.

How a tree becomes a file in the download directory
  The commit is fetched shallowly into a scratch repository (``git init --bare``, then
  ``git fetch --depth 1 <repo> <commit>``; when the server refuses to hand out a commit by id,
  all branches and tags are fetched and the commit must be among them). The tree is then written
  by *our own code*, not ``git archive`` (whose bytes have changed between git versions), from
  ``git ls-tree -r -z`` and ``git cat-file --batch``: a POSIX tar in GNU format (long names as
  ``././@LongLink``), one top directory named after the file (``linux-2.6.11-git-ab87db4e.tar``
  holds ``linux-2.6.11-git-ab87db4e/…``), entries sorted by path with every directory before its
  contents, modes 0755 for directories and executables, 0644 for other files, symbolic links as
  links (0777), uid/gid 0, empty user and group names, and every mtime the commit's committer
  time (part of the commit, so reproducible, and meaningful to a reader; ``make`` sees equal
  times and rebuilds nothing it should not).

Why the archive is an uncompressed ``.tar``
  Its sha256 must not depend on the host. gzip output depends on the zlib build (zlib-ng, the
  hardware-accelerated forks and the Chromium zlib all compress the same input to different
  bytes, and distributions ship each of them), so the sha256 of a compressed archive made here
  would only be the sha256 of *this* host's archive. The tar stream is defined by this module
  and the GNU header layout of Python's ``tarfile`` (a fixed format; tests/test_gitsource.py
  pins the digest of a known tree, so a change there cannot go unnoticed). So the pinned sha256
  is the sha256 of the file in the download directory, and every rule the downloader applies to
  a file (sidecar, move aside on mismatch, offline use, a primary mirror serving the same file,
  the SBOM's checksum of the file actually used) applies to it unchanged. The cost is disk: the
  2.6.11 kernel tree is 208 MB, where the upstream .tar.bz2 is 37 MB.

Submodules are refused (their contents are not part of the commit). Paths that are absolute or
contain ``..`` are refused. Every git process has a deadline (the download's), is killed when
it passes, and its stderr ends up in the error. The environment is passed through unchanged, so
git's own ``url.<base>.insteadOf`` (``~/.gitconfig``, or ``GIT_CONFIG_COUNT`` /
``GIT_CONFIG_KEY_<n>`` / ``GIT_CONFIG_VALUE_<n>``) redirects a repository to a local copy or a
mirror; only ``GIT_TERMINAL_PROMPT=0`` is added (a build must not wait for a password).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "GIT_SCHEMES",
    "GitError",
    "GitRef",
    "check_remote",
    "export_tree",
    "fetch_into",
    "git_url",
    "parse_git_url",
]

#: URL schemes of the git method; the part after ``git+`` is what git itself is given.
GIT_SCHEMES = ("git+https", "git+http", "git+file")

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_CHUNK = 1 << 20
# stderr of a refused fetch-by-id (protocol v0/v2 wordings): worth a full fetch.
_REFUSED_BY_ID = (
    "not our ref",
    "unadvertised object",
    "couldn't find remote ref",
    "no such remote ref",
    "want ",
)
# stderr of a host that cannot be reached at all: a full fetch would fail the same way.
_UNREACHABLE = (
    "could not resolve host",
    "connection refused",
    "failed to connect",
    "could not read from remote repository",
    "unable to connect",
    "does not appear to be a git repository",
    "not found",
    "timed out",
    "took longer than",
)


class GitError(Exception):
    """The git method failed; the text is one paragraph for the user (stderr included)."""


@dataclass(frozen=True)
class GitRef:
    """What a git URL names."""

    url: str  # the recipe's URL, as written
    repo: str  # what git is given (``https://…``, ``file://…``)
    commit: str  # 40 hex digits
    path: str | None  # one file inside the repository, or None for the whole tree

    @property
    def short(self) -> str:
        return self.commit[:8]


def git_url(repo: str, commit: str, path: str | None = None) -> str:
    """The URL of ``repo`` (``https://…``) at ``commit``, optionally one file ``path`` in it."""
    url = f"git+{repo}@{commit}"
    return f"{url}#{path}" if path else url


def parse_git_url(url: str) -> GitRef:
    """Split a ``git+…`` URL; ValueError (with the reason, for a message) when malformed."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in GIT_SCHEMES:
        raise ValueError(f"it is not a {', '.join(s + '://' for s in GIT_SCHEMES)} URL")
    base, at, commit = url[: len(url) - len(parts.fragment) - (1 if "#" in url else 0)].rpartition(
        "@"
    )
    if not at or "/" in commit or not _COMMIT_RE.match(commit):
        raise ValueError(
            "it does not end in @<commit> with the full 40-hex commit id (lower case); a "
            "branch, tag or short id can move or become ambiguous"
        )
    repo = base[len("git+") :]
    if scheme != "git+file" and not urllib.parse.urlsplit(repo).hostname:
        raise ValueError("it names no host")
    path = urllib.parse.unquote(parts.fragment) if parts.fragment else None
    if path is not None:
        try:
            _check_path(path.encode(), what="the file named after #")
        except GitError as exc:
            raise ValueError(str(exc)) from None
    return GitRef(url, repo, commit, path)


# --- running git --------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    # The user's environment as it is: insteadOf rewrites, proxies, GIT_SSL_CAINFO … must reach git.
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_ASKPASS", "true")  # nor a graphical password prompt
    return env


def _remaining(deadline_at: float, what: str) -> float:
    left = deadline_at - time.monotonic()
    if left <= 0:
        raise GitError(f"{what}: the deadline for this download passed")
    return left


def _run(args: list[str], *, deadline_at: float, what: str) -> subprocess.CompletedProcess[bytes]:
    """Run git with a deadline; past it, git and every helper it started (git-remote-https,
    a lazy fetch) are killed as a group, so no grandchild keeps the pipes open."""
    import signal

    timeout = _remaining(deadline_at, what)
    try:
        proc = subprocess.Popen(
            ["git", *args],
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise GitError(f"{what}: git is not installed (apt-get install git)") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise GitError(
            f"{what}: `git {_subcommand(args)}` took longer than {timeout:.0f} s and was "
            f"stopped{_stderr_note(err)}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _git(args: list[str], *, deadline_at: float, what: str) -> str:
    """Run git, return stdout; GitError with its stderr on failure or past the deadline."""
    proc = _run(args, deadline_at=deadline_at, what=what)
    if proc.returncode != 0:
        raise GitError(f"{what}: `git {_subcommand(args)}` failed{_stderr_note(proc.stderr)}")
    return proc.stdout.decode("utf-8", "replace")


def _subcommand(args: list[str]) -> str:
    rest = args[2:] if args[:1] == ["-C"] else args
    return rest[0] if rest else "?"


def _stderr_note(stderr: bytes | str | None) -> str:
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    text = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return f" (git said: {text[-600:]})" if text else ""


# --- fetching -----------------------------------------------------------------------------------


def fetch_commit(ref: GitRef, gitdir: Path, *, deadline_at: float) -> None:
    """Make ``ref.commit`` (and what of it is needed) present in the bare repository ``gitdir``.

    For one file, only the commit and its trees are fetched (``--filter=blob:none``, which
    GitHub and most hosts honour; a server that does not simply sends everything) and the blob
    follows on demand from the remote "origin", which is why the repository has one.
    """
    where = f"{ref.repo} at commit {ref.commit}"
    _git(["init", "--bare", "-q", str(gitdir)], deadline_at=deadline_at, what=where)
    _git(
        ["-C", str(gitdir), "remote", "add", "origin", ref.repo],
        deadline_at=deadline_at,
        what=where,
    )
    base = ["-C", str(gitdir), "fetch", "-q", "--no-tags"]
    if ref.path is not None:
        base.append("--filter=blob:none")
        # For a repository on this machine (file://, or insteadOf pointing at a local copy) we
        # start the serving side too: let it honour the filter, so one file can be had from a
        # copy that lacks other objects. (Only then: a git:// daemon takes it as a service name.)
        effective = _git(["ls-remote", "--get-url", ref.repo], deadline_at=deadline_at, what=where)
        if effective.strip().startswith(("file://", "/")):
            base.append("--upload-pack=git -c uploadpack.allowFilter=true upload-pack")
    try:
        _git([*base, "--depth", "1", "origin", ref.commit], deadline_at=deadline_at, what=where)
        return
    except GitError as exc:
        text = str(exc).lower()
        if any(s in text for s in _UNREACHABLE) and not any(s in text for s in _REFUSED_BY_ID):
            raise
        first = exc
    # The server does not hand out commits by id: take every branch and tag, then look.
    _git(
        [*base, "origin", "+refs/heads/*:refs/fw/heads/*", "+refs/tags/*:refs/fw/tags/*"],
        deadline_at=deadline_at,
        what=where,
    )
    probe = _run(
        ["-C", str(gitdir), "cat-file", "-e", f"{ref.commit}^{{commit}}"],
        deadline_at=deadline_at,
        what=where,
    )
    if probe.returncode != 0:
        said = str(first).partition("(git said: ")[2].rstrip(")")
        raise GitError(
            f"{where}: the repository has no such commit on any branch or tag (a wrong commit "
            "id, or its history was rewritten and the commit dropped); fetching it by id "
            f"failed too{_stderr_note(said)}"
        )


def _missing_commit(ref: GitRef, exc: GitError) -> GitError:
    return GitError(
        f"{ref.repo} has no commit {ref.commit} that it will hand out (a wrong commit id, or "
        f"the repository's history was rewritten and the commit dropped): {exc}"
    )


def fetch_into(
    url: str, part: Path, *, algos: Iterable[str], deadline: float, scratch: Path | None = None
) -> dict[str, str]:
    """Fetch ``url`` and write the file it names into ``part`` (replacing what is there).

    Returns the digests (``algos``) of what was written. ``scratch`` is a directory for the
    temporary repository (default: beside ``part``); it is removed afterwards whatever happens.
    Raises GitError.
    """
    ref = parse_git_url(url)
    deadline_at = time.monotonic() + max(0.0, deadline)
    gitdir = (scratch or part.parent) / f"{part.name}.git"
    shutil.rmtree(gitdir, ignore_errors=True)
    try:
        try:
            fetch_commit(ref, gitdir, deadline_at=deadline_at)
        except GitError as exc:
            text = str(exc).lower()
            if any(s in text for s in ("not our ref", "unadvertised object", "no such commit")):
                raise _missing_commit(ref, exc) from None
            raise
        with open(part, "wb") as raw:
            out = _HashingWriter(raw, algos)
            if ref.path is None:
                export_tree(gitdir, ref.commit, out, prefix=_prefix(part), deadline_at=deadline_at)
            else:
                _export_blob(gitdir, ref, out, deadline_at=deadline_at)
            raw.flush()
            os.fsync(raw.fileno())
        return out.hexdigests()
    finally:
        shutil.rmtree(gitdir, ignore_errors=True)


def _prefix(part: Path) -> str:
    """The top directory of a tree archive: its file name without ``.part`` and ``.tar``."""
    return part.name.removesuffix(".part").removesuffix(".tar")


class _HashingWriter:
    """A write-only file object that hashes what passes through."""

    def __init__(self, raw: IO[bytes], algos: Iterable[str]):
        self.raw = raw
        self.hashers = {a: hashlib.new(a) for a in algos}
        self.size = 0

    def write(self, data: bytes) -> int:
        for h in self.hashers.values():
            h.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self.hashers.items()}


def _export_blob(gitdir: Path, ref: GitRef, out: _HashingWriter, *, deadline_at: float) -> None:
    assert ref.path is not None
    where = f"{ref.repo} at commit {ref.commit}"
    spec = f"{ref.commit}:{ref.path}"
    kind = _run(["-C", str(gitdir), "cat-file", "-t", spec], deadline_at=deadline_at, what=where)
    if kind.returncode != 0 or kind.stdout.strip() != b"blob":
        found = kind.stdout.decode().strip() or "nothing"
        raise GitError(
            f"{where}: {ref.path} is not a file in that commit (found {found}); check the path "
            "after # in the recipe's URL"
        )
    with _Batch(gitdir, deadline_at, where) as batch:
        batch.copy_object(spec, out, expect="blob")


# --- writing the tree ---------------------------------------------------------------------------


def _check_path(path: bytes, *, what: str) -> None:
    parts = path.split(b"/")
    if path.startswith(b"/") or any(p in (b"", b".", b"..") for p in parts) or b"\0" in path:
        raise GitError(f"{what} {path.decode('utf-8', 'replace')!r} is not a plain relative path")


class _Batch:
    """``git cat-file --batch``: ask for one object, copy it out, next; killed at the deadline."""

    def __init__(self, gitdir: Path, deadline_at: float, where: str):
        import threading

        self.where = where
        self.proc = subprocess.Popen(
            ["git", "-C", str(gitdir), "cat-file", "--batch"],
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.expired = False
        self.timer = threading.Timer(max(0.0, deadline_at - time.monotonic()), self._expire)
        self.timer.daemon = True
        self.timer.start()

    def _expire(self) -> None:
        import signal

        self.expired = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def __enter__(self) -> _Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def _fail(self, why: str) -> GitError:
        if self.expired:
            return GitError(f"{self.where}: the deadline for this download passed while {why}")
        self.proc.kill()
        err = self.proc.stderr.read() if self.proc.stderr else b""
        return GitError(f"{self.where}: `git cat-file --batch` failed {why}{_stderr_note(err)}")

    def header(self, spec: str, expect: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(spec.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            raise self._fail(f"asked for {spec}") from None
        line = self.proc.stdout.readline()
        fields = line.split()
        if len(fields) != 3 or fields[1].decode() != expect:
            raise self._fail(f"on {spec} (answered {line.decode('utf-8', 'replace').strip()!r})")
        return int(fields[2])

    def read_object(self, spec: str, expect: str) -> bytes:
        size = self.header(spec, expect)
        assert self.proc.stdout is not None
        data = self.proc.stdout.read(size + 1)
        if len(data) != size + 1:
            raise self._fail(f"reading {spec}")
        return data[:size]

    def copy_object(self, spec: str, out: object, expect: str) -> int:
        size = self.header(spec, expect)
        assert self.proc.stdout is not None
        left = size
        while left:
            chunk = self.proc.stdout.read(min(left, _CHUNK))
            if not chunk:
                raise self._fail(f"reading {spec}")
            out.write(chunk)  # type: ignore[attr-defined]
            left -= len(chunk)
        if self.proc.stdout.read(1) != b"\n":
            raise self._fail(f"reading {spec}")
        return size


@dataclass(frozen=True)
class _Entry:
    path: bytes
    mode: str  # git's octal mode
    oid: str


def _list_tree(gitdir: Path, commit: str, *, deadline_at: float, where: str) -> list[_Entry]:
    proc = _run(
        ["-C", str(gitdir), "ls-tree", "-r", "-z", "--full-tree", commit],
        deadline_at=deadline_at,
        what=where,
    )
    if proc.returncode != 0:
        raise GitError(f"{where}: `git ls-tree` failed{_stderr_note(proc.stderr)}")
    entries = []
    for record in proc.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        if kind == "commit" or mode == "160000":
            raise GitError(
                f"{where}: {path.decode('utf-8', 'replace')} is a git submodule; the git method "
                "does not fetch submodules (their contents are not part of the commit). Use a "
                "release tarball, or a repository without submodules"
            )
        if kind != "blob" or mode not in ("100644", "100755", "100664", "120000"):
            raise GitError(
                f"{where}: {path.decode('utf-8', 'replace')} has git mode {mode} ({kind}), "
                "which the git method cannot export"
            )
        _check_path(path, what=f"{where}: the tree's entry")
        entries.append(_Entry(path, mode, oid))
    return entries


def _commit_time(gitdir: Path, commit: str, *, deadline_at: float, where: str) -> int:
    out = _git(
        ["-C", str(gitdir), "show", "-s", "--format=%ct", commit],
        deadline_at=deadline_at,
        what=where,
    )
    return int(out.strip())


def _sort_key(path: bytes) -> tuple[bytes, ...]:
    # By path components: a directory comes right before its contents (``a/`` < ``a/x`` <
    # ``a.c``), independent of the order git lists things in.
    return tuple(path.split(b"/"))


def export_tree(gitdir: Path, commit: str, out: object, *, prefix: str, deadline_at: float) -> None:
    """Write the tree of ``commit`` in ``gitdir`` as a tar (see the module docstring) to ``out``."""
    import tarfile  # here: the project loader parses git URLs on every start-up

    where = f"{gitdir} at commit {commit}"
    _check_path(prefix.encode(), what="the archive's top directory")
    entries = _list_tree(gitdir, commit, deadline_at=deadline_at, where=where)
    mtime = _commit_time(gitdir, commit, deadline_at=deadline_at, where=where)
    dirs: set[bytes] = set()
    for e in entries:
        parts = e.path.split(b"/")
        for i in range(1, len(parts)):
            dirs.add(b"/".join(parts[:i]))
    items: list[tuple[bytes, _Entry | None]] = [(d, None) for d in dirs]
    items += [(e.path, e) for e in entries]
    items.sort(key=lambda item: _sort_key(item[0]))
    top = prefix.encode()

    def info(path: bytes, kind: bytes, mode: int) -> tarfile.TarInfo:
        name = (top + b"/" + path if path else top).decode("utf-8", "surrogateescape")
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = kind, mode, mtime
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    # GNU format: names of any length (``././@LongLink``), no pax headers (whose contents
    # tarfile has changed across versions). encoding+surrogateescape: path bytes go out as git
    # stores them.
    with (
        tarfile.open(  # type: ignore[call-overload]  # a pipe: typeshed wants a seekable file
            fileobj=out,
            mode="w|",
            format=tarfile.GNU_FORMAT,
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar,
        _Batch(gitdir, deadline_at, where) as batch,
    ):
        tar.addfile(info(b"", tarfile.DIRTYPE, 0o755))
        for path, entry in items:
            if entry is None:
                tar.addfile(info(path, tarfile.DIRTYPE, 0o755))
            elif entry.mode == "120000":
                target = batch.read_object(entry.oid, "blob")
                ti = info(path, tarfile.SYMTYPE, 0o777)
                ti.linkname = target.decode("utf-8", "surrogateescape")
                tar.addfile(ti)
            else:
                size = batch.header(entry.oid, "blob")
                ti = info(path, tarfile.REGTYPE, 0o755 if entry.mode == "100755" else 0o644)
                ti.size = size
                body = _ObjectReader(batch, entry.oid, size)
                tar.addfile(ti, body)
                body.finish()  # tarfile reads nothing of an empty file


class _ObjectReader:
    """The body of the object whose header ``_Batch.header`` just read, as a file for tarfile."""

    def __init__(self, batch: _Batch, spec: str, size: int):
        self.batch, self.spec, self.left = batch, spec, size

    def read(self, n: int = -1) -> bytes:
        stdout = self.batch.proc.stdout
        assert stdout is not None
        want = self.left if n < 0 else min(n, self.left)
        data = stdout.read(want) if want else b""
        if len(data) != want:
            raise self.batch._fail(f"reading {self.spec}")
        self.left -= len(data)
        return data

    def finish(self) -> None:
        """Check that the whole body was read and take the newline that ends it."""
        stdout = self.batch.proc.stdout
        assert stdout is not None
        if self.left or stdout.read(1) != b"\n":
            raise self.batch._fail(f"reading {self.spec}")


# --- checking a mirror without fetching --------------------------------------------------------


def check_remote(url: str, *, timeout: float) -> tuple[bool, str]:
    """Whether the repository of ``url`` answers and still has its commit: (alive, what).

    ``git ls-remote`` lists the branch and tag tips; a commit among them is confirmed. A
    commit that is not a tip may still be there (reachable from one), which only a fetch would
    tell: then the answer is "alive" with that said.
    """
    ref = parse_git_url(url)
    deadline_at = time.monotonic() + timeout
    try:
        out = _git(["ls-remote", ref.repo], deadline_at=deadline_at, what=ref.repo)
    except GitError as exc:
        return False, str(exc)
    tips = {line.split("\t", 1)[0] for line in out.splitlines() if line.strip()}
    if ref.commit in tips:
        return True, f"commit {ref.short} is a branch or tag tip"
    return True, f"repository answers ({len(tips)} refs); commit {ref.short} is not a tip"


def describe(url: str) -> str:
    """How a git URL reads in a message or the SBOM note: repository, commit and file."""
    ref = parse_git_url(url)
    what = f"file {ref.path} of " if ref.path else "the tree of "
    return f"{what}{ref.repo} at commit {ref.commit}"


def digests_of(path: Path, algos: Iterable[str]) -> Mapping[str, str]:
    hashers = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}
