"""The shared build cache (fwbuild.cache): a local directory and a real WebDAV server (Debian's
nginx with its dav module, started here on 127.0.0.1), their faults, and builds that share it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from support.davserver import DavServer, free_port
from support.debianpython import run_filterless
from support.doitrun import doit_env, run_doit
from support.genpkgs import Dist, make_project
from support.httpserver import FaultServer

from fwbuild.cache import (
    FORMAT,
    Cache,
    CacheSettings,
    EntryRefused,
    HttpBackend,
    cache_settings,
    pack,
    unpack,
)
from fwbuild.errors import ConfigError

KEY = "ab" * 32


@pytest.fixture(scope="module")
def dav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with DavServer(tmp_path_factory.mktemp("nginx")) as server:
        yield server


def make_tree(root: Path, marker: str = "one") -> Path:
    """A staging directory with what packages install: modes, links, a hard link."""
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib").mkdir(parents=True)
    (root / "etc/private").mkdir(parents=True)
    (root / "usr/bin/tool").write_text(f"#!/bin/sh\necho {marker}\n")
    (root / "usr/bin/tool").chmod(0o755)
    (root / "usr/lib/libx.a").write_bytes(os.urandom(300_000))
    (root / "etc/private/conf").write_text("private\n")
    (root / "etc/private/conf").chmod(0o600)
    (root / "etc/private").chmod(0o700)
    (root / "usr/bin/alias").symlink_to("tool")
    (root / "usr/bin/abs").symlink_to("/bin/busybox")  # absolute links are content, kept
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")
    os.utime(root / "usr/bin/tool", (1_100_000_000, 1_100_000_000))
    return root


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    out: dict[str, tuple[str, int, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", 0, os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
        else:
            out[rel] = (
                "file",
                stat.S_IMODE(st.st_mode),
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return out


def cache_of(
    tmp: Path, *, dir: Path | None = None, url: str | None = None, mode: str = "rw"
) -> Cache:
    build = tmp / "build"
    build.mkdir(exist_ok=True)
    return Cache(CacheSettings(dir=dir, url=url, mode=mode), build)


def roundtrip(cache: Cache, tmp: Path, key: str = KEY) -> Path:
    hit = cache.lookup(key)
    assert hit is not None
    archive = tmp / "got.tar.gz"
    cache.fetch_archive(hit, archive)
    dest = tmp / "restored"
    unpack(archive, dest)
    return dest


@pytest.mark.parametrize("kind", ["dir", "dav"])
def test_an_entry_round_trips_with_modes_links_and_times(
    tmp_path: Path, dav: DavServer, kind: str
) -> None:
    tree = make_tree(tmp_path / "staging")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    where = {"dir": {"dir": tmp_path / "cache"}, "dav": {"url": dav.url}}[kind]
    cache = cache_of(tmp_path, **where)  # type: ignore[arg-type]
    key = hashlib.sha256(f"roundtrip-{kind}".encode()).hexdigest()
    assert cache.store(key, tree, {"package": "p", "extra": {"used": {"a": "b"}}}, scratch)
    fresh = cache_of(tmp_path, **where)  # type: ignore[arg-type]
    restored = roundtrip(fresh, tmp_path, key)
    assert snapshot(restored) == snapshot(tree)
    assert (restored / "usr/bin/tool").stat().st_mtime == 1_100_000_000
    assert (restored / "usr/bin/tool").stat().st_ino == (restored / "usr/bin/tool2").stat().st_ino
    assert fresh.lookup(key).meta["extra"] == {"used": {"a": "b"}}  # type: ignore[union-attr]
    assert not list(scratch.iterdir())  # the archive made for the upload is gone


@pytest.mark.parametrize("kind", ["dir", "dav"])
def test_a_corrupted_entry_is_refused_by_its_digest(
    tmp_path: Path, dav: DavServer, kind: str
) -> None:
    tree = make_tree(tmp_path / "staging")
    key = hashlib.sha256(f"corrupt-{kind}".encode()).hexdigest()
    root = {"dir": tmp_path / "cache", "dav": dav.www / "cache"}[kind]
    where = {"dir": {"dir": tmp_path / "cache"}, "dav": {"url": dav.url}}[kind]
    cache = cache_of(tmp_path, **where)  # type: ignore[arg-type]
    (tmp_path / "s").mkdir()
    cache.store(key, tree, {}, tmp_path / "s")
    record = json.loads((root / FORMAT / "ac" / key).read_text())
    blob = root / FORMAT / "cas" / record["sha256"]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    blob.write_bytes(bytes(data))
    hit = cache_of(tmp_path, **where).lookup(key)  # type: ignore[arg-type]
    assert hit is not None
    with pytest.raises(EntryRefused, match=r"sha256 .* not the .* recorded"):
        cache.fetch_archive(hit, tmp_path / "got")


@pytest.mark.parametrize("record", [b'{"format": "fwbuild-1", "ke', b"x" * 200_000, b"[]"])
def test_a_damaged_record_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: bytes
) -> None:
    cache = cache_of(tmp_path, dir=tmp_path / "cache")
    (tmp_path / "s").mkdir()
    cache.store(KEY, make_tree(tmp_path / "staging"), {}, tmp_path / "s")
    (tmp_path / "cache" / FORMAT / "ac" / KEY).write_bytes(record)
    assert cache_of(tmp_path, dir=tmp_path / "cache").lookup(KEY) is None
    assert "is damaged: refused" in capsys.readouterr().err


def test_a_truncated_file_on_the_server_is_refused(tmp_path: Path, dav: DavServer) -> None:
    key = hashlib.sha256(b"truncated").hexdigest()
    cache = cache_of(tmp_path, url=dav.url)
    (tmp_path / "s").mkdir()
    cache.store(key, make_tree(tmp_path / "staging"), {}, tmp_path / "s")
    record = json.loads((dav.www / "cache" / FORMAT / "ac" / key).read_text())
    blob = dav.www / "cache" / FORMAT / "cas" / record["sha256"]
    blob.write_bytes(blob.read_bytes()[: record["size"] // 3])  # an upload cut short
    hit = cache_of(tmp_path, url=dav.url).lookup(key)
    assert hit is not None
    with pytest.raises(EntryRefused, match="truncated"):
        cache.fetch_archive(hit, tmp_path / "got")


def test_an_interrupted_upload_is_never_an_entry(tmp_path: Path, dav: DavServer) -> None:
    """A PUT whose connection drops mid-body is not stored by the server, and an archive whose
    record was never written (the uploader died between the two) is not an entry."""
    name = f"/cache/{FORMAT}/cas/{'cd' * 32}"
    with socket.create_connection(("127.0.0.1", dav.port)) as s:
        s.sendall(
            f"PUT {name} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode()
            + b"x" * 5000
        )
    backend = HttpBackend(dav.url)
    assert backend.read(f"cas/{'cd' * 32}") is None
    assert not (dav.www / name.lstrip("/")).exists()
    key = hashlib.sha256(b"no record").hexdigest()
    payload = tmp_path / "blob"
    payload.write_bytes(b"archive without a record")
    backend.write(f"cas/{hashlib.sha256(payload.read_bytes()).hexdigest()}", payload)
    assert cache_of(tmp_path, url=dav.url).lookup(key) is None


def test_a_server_that_is_down_is_said_once_and_never_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/cache"  # nothing listens there
    cache = cache_of(tmp_path, url=url)
    (tmp_path / "s").mkdir()
    tree = make_tree(tmp_path / "staging")
    for i in range(3):
        assert cache.lookup(hashlib.sha256(bytes([i])).hexdigest()) is None
        assert cache.store(hashlib.sha256(bytes([i])).hexdigest(), tree, {}, tmp_path / "s") == []
    # another process of the same doit run (a -n 2 worker) reads the marker and keeps quiet
    assert cache_of(tmp_path, url=url).lookup(KEY) is None
    err = capsys.readouterr().err
    assert err.count("build cache:") == 1, err
    assert url in err and "does not answer" in err and "building without it" in err


def test_read_only_mode_never_writes(tmp_path: Path, dav: DavServer) -> None:
    before = dav.files()
    cache = cache_of(tmp_path, dir=tmp_path / "cache", url=dav.url, mode="ro")
    (tmp_path / "s").mkdir()
    assert cache.store(KEY, make_tree(tmp_path / "staging"), {}, tmp_path / "s") == []
    assert not (tmp_path / "cache").exists()
    assert dav.files() == before
    # and it reads: an entry written by a read-write user is found
    writer = cache_of(tmp_path, dir=tmp_path / "cache", mode="rw")
    writer.store(KEY, make_tree(tmp_path / "staging2"), {}, tmp_path / "s")
    assert cache_of(tmp_path, dir=tmp_path / "cache", mode="ro").lookup(KEY) is not None


def test_concurrent_writers_of_one_directory_leave_a_whole_entry(tmp_path: Path) -> None:
    trees = [make_tree(tmp_path / f"t{i}", marker=str(i)) for i in range(6)]
    errors: list[BaseException] = []

    def write(i: int) -> None:
        scratch = tmp_path / f"s{i}"
        scratch.mkdir()
        try:
            for _ in range(3):
                cache_of(tmp_path, dir=tmp_path / "cache").store(KEY, trees[i], {}, scratch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    restored = roundtrip(cache_of(tmp_path, dir=tmp_path / "cache"), tmp_path)
    assert snapshot(restored) in [snapshot(t) for t in trees]
    leftovers = [p for p in (tmp_path / "cache").rglob(".*") if p.is_file()]
    assert not leftovers, leftovers  # no temporary file left behind


def _tar(members: list[tuple[str, str, str]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            else:
                info.size = len(target)
                tar.addfile(info, io.BytesIO(target.encode()))
    return raw.getvalue()


def test_debians_python_restores_an_entry(tmp_path: Path) -> None:
    """A restore under Debian 12's python3 (3.11.2: no extraction filters) makes the packed
    tree, modes and links as they were, and refuses an unsafe entry as on any other Python."""
    tree = make_tree(tmp_path / "staging")
    archive = tmp_path / "entry.tar.gz"
    pack(tree, archive)
    code = (
        "import sys; from pathlib import Path; from fwbuild.cache import EntryRefused, unpack\n"
        "unpack(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "try:\n    unpack(Path(sys.argv[3]), Path(sys.argv[4]))\n"
        "except EntryRefused as exc:\n    print(exc)\nelse:\n    sys.exit('not refused')\n"
    )
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_tar([("link", "sym", "/tmp"), ("link/through", "file", "x")]))
    restored, refused = tmp_path / "restored", tmp_path / "refused"
    run_filterless(code, str(archive), str(restored), str(bad), str(refused))
    assert snapshot(restored) == snapshot(tree)
    assert (restored / "usr/bin/tool").stat().st_mtime == 1_100_000_000
    assert (restored / "usr/bin/tool").stat().st_ino == (restored / "usr/bin/tool2").stat().st_ino
    assert {p.lstat().st_uid for p in restored.rglob("*")} == {os.geteuid()}
    assert not any(p.name == "through" for p in tmp_path.rglob("*"))


@pytest.mark.parametrize(
    "members",
    [
        [("../escape", "file", "x")],
        [("/abs", "file", "x")],
        [("link", "sym", "/tmp"), ("link/through", "file", "x")],
        [("a", "file", "x"), ("a", "file", "y")],
    ],
    ids=["dotdot", "absolute", "through-a-link", "twice"],
)
def test_an_unsafe_archive_is_never_unpacked(
    tmp_path: Path, members: list[tuple[str, str, str]]
) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar(members))
    with pytest.raises(EntryRefused):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "escape").exists()
    assert not any(p.name == "through" for p in tmp_path.rglob("*"))


def test_settings_from_the_board_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fwbuild.config import Paths

    class FakeBoard:  # only what cache_settings reads
        file = tmp_path / "board.toml"
        paths = Paths(*(tmp_path,) * 8)
        data: ClassVar[dict[str, object]] = {"cache": {"dir": "shared", "mode": "ro"}}

    for var in ("FWBUILD_CACHE_DIR", "FWBUILD_CACHE_URL", "FWBUILD_CACHE_MODE"):
        monkeypatch.delenv(var, raising=False)
    got = cache_settings(FakeBoard())  # type: ignore[arg-type]
    assert (got.dir, got.url, got.mode) == (tmp_path / "shared", None, "ro")
    monkeypatch.setenv("FWBUILD_CACHE_MODE", "rw")
    monkeypatch.setenv("FWBUILD_CACHE_URL", "http://u:secret@127.0.0.1:1/c")
    got = cache_settings(FakeBoard())  # type: ignore[arg-type]
    assert got.mode == "rw" and got.writes and got.url
    assert "secret" not in HttpBackend(got.url).where
    monkeypatch.setenv("FWBUILD_CACHE_MODE", "sometimes")
    with pytest.raises(ConfigError, match=r"FWBUILD_CACHE_MODE.*rw.*ro.*off.*'sometimes'"):
        cache_settings(FakeBoard())  # type: ignore[arg-type]
    monkeypatch.setenv("FWBUILD_CACHE_MODE", "off")
    assert not cache_settings(FakeBoard()).enabled  # type: ignore[arg-type]
    monkeypatch.setenv("FWBUILD_CACHE_URL", "ftp://host/cache")
    monkeypatch.setenv("FWBUILD_CACHE_MODE", "rw")
    with pytest.raises(ConfigError, match="not an http:// or https:// URL"):
        cache_settings(FakeBoard())  # type: ignore[arg-type]


# --- builds sharing a cache (the generated packages, the real zig cross compiler) -------------
SECRET_RECIPE = """\
from fwbuild.recipe import Package


class {cls}(Package):
    name = "{name}"
    version = "1"
    license = "MIT"
    toolchain = "none"
    target_files = {{"etc/{name}": 0o600}}
    {attribute}

    def runtime_inputs(self):
        return "a digest of the file the install step reads"

    def install(self, ctx):
        path = ctx.staging / "etc" / "{name}"
        path.parent.mkdir(parents=True)
        path.write_text("{token}\\n")
"""
TOKEN = "not-for-any-cache-" + "7f3a9c"
CACHED = ("libgreet", "hello")  # the generated packages that may be cached (not secret, vault)


def add_secret_packages(root: Path) -> None:
    """``secret`` (dynamic: its install reads files outside the build) and ``vault``
    (``shared_cache = False``), both holding TOKEN in their outputs."""
    for name, attribute in (("secret", "dynamic = True"), ("vault", "shared_cache = False")):
        (root / "recipes" / f"{name}.py").write_text(
            SECRET_RECIPE.format(
                cls=name.title(), name=name, attribute=attribute, token=f"{TOKEN}-{name}"
            )
        )
    board = root / "configs" / "board.toml"
    board.write_text(
        board.read_text().replace('packages = ["hello"]', 'packages = ["hello", "secret", "vault"]')
    )


def cache_bytes(cache_dir: Path) -> bytes:
    """Everything the cache holds, archives decompressed."""
    import gzip

    out = b""
    for path in sorted(p for p in cache_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out += gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return out


def report_results(project: Path) -> dict[str, str]:
    report = json.loads((project / "build" / "report.json").read_text())
    return {t["task"]: t["result"] for t in report["tasks"]}


@pytest.fixture(scope="module")
def first_build(
    tmp_path_factory: pytest.TempPathFactory, mirror_root: Path, dist: Dist, dav: DavServer
) -> Iterator[tuple[Path, Path, FaultServer]]:
    """Checkout A built with an empty shared cache directory and the WebDAV server."""
    with FaultServer(mirror_root) as srv:
        root = tmp_path_factory.mktemp("shared")
        cache_dir = root / "cache"
        a = make_project(root / "a", dist, srv.url)
        add_secret_packages(a)
        env = doit_env(FWBUILD_CACHE_DIR=str(cache_dir), FWBUILD_CACHE_URL=dav.url + "/shared")
        run = run_doit(a, "rootfs", env=env)
        assert run.returncode == 0, run.output
        assert {"build:libgreet", "build:hello", "install:secret"} <= run.ran
        yield a, cache_dir, srv


def test_secrets_never_reach_the_cache(
    first_build: tuple[Path, Path, FaultServer], dav: DavServer
) -> None:
    a, cache_dir, _ = first_build
    for root in (cache_dir, dav.www / "cache" / "shared"):  # the directory and the server
        records = [json.loads(p.read_text()) for p in (root / FORMAT / "ac").iterdir()]
        assert sorted(r["package"] for r in records) == ["hello", "libgreet"]
        assert TOKEN.encode() not in cache_bytes(root)
    assert (a / "build" / "secret" / "staging" / "etc" / "secret").read_text().startswith(TOKEN)


def test_a_second_checkout_restores_every_package_and_compiles_nothing(
    first_build: tuple[Path, Path, FaultServer], dist: Dist
) -> None:
    a, cache_dir, srv = first_build
    b = make_project(a.parent / "b", dist, srv.url)
    add_secret_packages(b)
    # offline, with an empty download directory: nothing can be fetched, only restored
    env = doit_env(FWBUILD_CACHE_DIR=str(cache_dir), FWBUILD_OFFLINE="1")
    run = run_doit(b, "rootfs", env=env)
    assert run.returncode == 0, run.output
    early = ("fetch", "patch", "configure", "build")
    compiled = {t for t in run.ran if t.split(":")[0] in early and t.split(":")[1] in CACHED}
    assert not compiled, run.output
    assert {"install:libgreet", "install:hello"} <= run.ran
    assert {"install:secret", "install:vault"} <= run.ran  # never restored: built again
    assert "install:hello: from cache" in run.output
    results = report_results(b)
    assert results["install:hello"] == results["install:libgreet"] == "from cache"
    assert results["install:secret"] == "ran"
    report = json.loads((b / "build" / "report.json").read_text())
    seconds = {t["task"]: t["seconds"] for t in report["tasks"]}
    assert seconds["install:hello"] < 1.0, seconds
    assert not (b / "dl").exists() or not any((b / "dl").iterdir())
    for image in ("rootfs.cpio.gz", "rootfs.tar"):
        assert (b / "output" / image).read_bytes() == (a / "output" / image).read_bytes()
    again = run_doit(b, "rootfs", env=env)
    assert again.returncode == 0 and not again.ran - {"toolchain"}, again.output


def test_a_stage_asked_for_by_name_makes_its_tree_after_a_restore(
    first_build: tuple[Path, Path, FaultServer], dist: Dist
) -> None:
    """The cache lets a build skip fetch … build of a restored package; `doit patch:hello`
    names the stage for its tree: it fetches and patches (the patched source is checkout A's),
    the restored install stays current, and the next `doit rootfs` runs nothing."""
    a, cache_dir, srv = first_build
    c = make_project(a.parent / "asked", dist, srv.url)
    add_secret_packages(c)
    env = doit_env(FWBUILD_CACHE_DIR=str(cache_dir))
    restored = run_doit(c, "rootfs", env=env)
    assert restored.returncode == 0 and "install:hello: from cache" in restored.output
    assert not (c / "build" / "hello" / "src").exists()

    patched = run_doit(c, "patch:hello", env=env)
    assert patched.returncode == 0, patched.output
    assert "patch:hello" in patched.ran, patched.output
    src_a, src_c = a / "build" / "hello" / "src", c / "build" / "hello" / "src"
    # A's tree also holds what its build made (objects, the binary); C's is only patched
    files = sorted(p.relative_to(src_c) for p in src_c.rglob("*") if p.is_file())
    assert {Path("hello.c"), Path("extra.c"), Path("Makefile")} <= set(files), files
    for f in files:
        assert (src_c / f).read_bytes() == (src_a / f).read_bytes(), f

    again = run_doit(c, "rootfs", env=env)
    assert again.returncode == 0 and not again.ran - {"toolchain"}, again.output


def test_a_corrupted_entry_is_rebuilt_and_a_dead_server_said_once(
    first_build: tuple[Path, Path, FaultServer], dist: Dist
) -> None:
    a, cache_dir, srv = first_build
    record = json.loads((cache_dir / FORMAT / "ac" / _key_of(cache_dir, "hello")).read_text())
    blob = cache_dir / FORMAT / "cas" / record["sha256"]
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0x55
    blob.write_bytes(bytes(data))
    c = make_project(a.parent / "c", dist, srv.url)
    dead = f"http://127.0.0.1:{free_port()}/cache"
    env = doit_env(FWBUILD_CACHE_DIR=str(cache_dir), FWBUILD_CACHE_URL=dead)
    run = run_doit(c, "rootfs", env=env)
    assert run.returncode == 0, run.output
    assert "refused" in run.output and "damaged" in run.output, run.output
    # rebuilt: doit had skipped hello's earlier stages for the entry, its install ran them
    assert "building it instead" in run.output
    assert report_results(c)["install:hello"] == "ran"
    for stage in ("fetch", "patch", "configure", "build"):
        assert (c / "build" / "hello" / "stamps" / f"{stage}.json").is_file(), stage
    assert (c / "build" / "hello" / "staging" / "usr" / "bin" / "hello").is_file()
    assert not {"build:libgreet", "configure:libgreet"} & run.ran  # still restored
    assert run.output.count("does not answer") == 1, run.output
    # libgreet was restored: `doit source` still downloads its sources (for an offline build
    # later), legal-info makes its tree for the licence, and neither undoes the restore
    assert not (c / "dl" / "libgreet-1.0.tar.gz").exists()
    source = run_doit(c, "source", env=env)
    assert source.returncode == 0 and "source" in source.ran, source.output
    assert (c / "dl" / "libgreet-1.0.tar.gz").is_file()
    legal = run_doit(c, "legal-info", env=env)
    assert legal.returncode == 0, legal.output
    assert list((c / "output" / "legal-info").rglob("libgreet*/LICENSE")), legal.output
    after = run_doit(c, "rootfs", env=env)
    assert after.returncode == 0 and not after.ran - {"rootfs"}, after.output
    # the rebuilt entry replaced the damaged one
    again = cache_of(c, dir=cache_dir).lookup(_key_of(cache_dir, "hello"))
    assert again is not None
    cache_of(c, dir=cache_dir).fetch_archive(again, c / "check.tar.gz")


def _key_of(cache_dir: Path, package: str) -> str:
    for path in (cache_dir / FORMAT / "ac").iterdir():
        if json.loads(path.read_text())["package"] == package:
            return path.name
    raise AssertionError(f"no entry for {package}")


def _ccache_stats(ccache_dir: Path) -> dict[str, int]:
    import subprocess

    out = subprocess.run(
        ["ccache", "--print-stats"],
        env={**os.environ, "CCACHE_DIR": str(ccache_dir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {k: int(v) for k, _, v in (line.partition("\t") for line in out.splitlines()) if v}


def test_ccache_reuses_compiles_and_is_in_the_keys(
    tmp_path: Path, mirror_root: Path, dist: Dist, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FWBUILD_CCACHE=1 puts ccache in front of zig cc: a package built again from a fresh tree
    compiles from ccache's hits; switching it on changes the configure keys (its identity)."""
    from fwbuild.project import Project

    with FaultServer(mirror_root) as srv:
        project = make_project(tmp_path / "p", dist, srv.url)
        env = doit_env(FWBUILD_CCACHE="1", CCACHE_DIR=str(tmp_path / "ccache"))
        run = run_doit(project, "rootfs", env=env)
        assert run.returncode == 0, run.output
        first = _ccache_stats(tmp_path / "ccache")
        assert first.get("cache_miss", 0) > 0 and first.get("direct_cache_hit", 0) == 0, first
        clean = run_doit(project, "dirclean:hello", "rootfs", env=env)
        assert clean.returncode == 0 and "build:hello" in clean.ran, clean.output
        second = _ccache_stats(tmp_path / "ccache")
        hits = second.get("direct_cache_hit", 0) + second.get("preprocessed_cache_hit", 0)
        assert hits > 0, second
    board = project / "configs" / "board.toml"
    monkeypatch.delenv("FWBUILD_CCACHE", raising=False)
    off = Project.load(board, project).key("hello", "configure")
    monkeypatch.setenv("FWBUILD_CCACHE", "1")
    on = Project.load(board, project).key("hello", "configure")
    assert on != off


KERNEL_STYLE_RECIPE = """\
from fwbuild.recipe import Package


class Kmod(Package):
    name = "kmod"
    version = "1"
    license = "MIT"
    toolchain = "kernel"
    local_source = "src/kmod"

    def build(self, ctx):
        # as the kernel's make does: the compiler by its prefixed name, found on PATH
        ctx.make(f"CC={ctx.env['CROSS_COMPILE']}gcc")

    def install(self, ctx):
        ctx.install_file("k.o", "lib/k.o")
"""


def test_ccache_reaches_a_gcc_named_on_path(tmp_path: Path, mirror_root: Path, dist: Dist) -> None:
    """The kernel's way: make runs ``i686-linux-gnu-gcc`` by name; with FWBUILD_CCACHE=1 that is
    ccache (a link first on PATH), which runs the real cross gcc: a rebuild from a fresh tree
    hits."""
    with FaultServer(mirror_root) as srv:
        project = make_project(tmp_path / "p", dist, srv.url)
    (project / "src" / "kmod").mkdir(parents=True)
    (project / "src" / "kmod" / "k.c").write_text("int k(int x) { return x * 3; }\n")
    (project / "src" / "kmod" / "Makefile").write_text("k.o: k.c\n\t$(CC) -O2 -c -o $@ $<\n")
    (project / "recipes" / "kmod.py").write_text(KERNEL_STYLE_RECIPE)
    board = project / "configs" / "board.toml"
    board.write_text(
        board.read_text().replace('packages = ["hello"]', 'packages = ["hello", "kmod"]')
        + '\n[toolchains.kernel]\nkind = "gcc"\nprefix = "i686-linux-gnu-"\n'
    )
    env = doit_env(FWBUILD_CCACHE="1", CCACHE_DIR=str(tmp_path / "ccache"))
    run = run_doit(project, "install:kmod", env=env)
    assert run.returncode == 0, run.output
    first = _ccache_stats(tmp_path / "ccache")
    assert first.get("cache_miss", 0) == 1, first
    again = run_doit(project, "dirclean:kmod", "install:kmod", env=env)
    assert again.returncode == 0 and "build:kmod" in again.ran, again.output
    second = _ccache_stats(tmp_path / "ccache")
    assert second.get("direct_cache_hit", 0) == 1, second
    staged = project / "build" / "kmod" / "staging" / "lib" / "k.o"
    assert b"\x7fELF\x01" in staged.read_bytes()[:5]  # a 32-bit object: the cross gcc made it
