"""The git download method (fwbuild.gitsource) against a real ``git daemon`` on 127.0.0.1.

The recipes' URLs name a host that does not exist (``git.example.invalid``); git's own
``url.<base>.insteadOf``, given through the environment as a user would, sends them to the test
server: that the downloader passes the environment through is part of what is tested.
"""

from __future__ import annotations

import hashlib
import io
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gitserver import DATE, GitDaemon, SmartHttp, commit_more, git, make_repo, publish
from support.httpserver import FaultServer

from fwbuild.errors import ConfigError, DigestMismatch, DownloadError
from fwbuild.fetch import FetchSettings, RemoteFile, fetch
from fwbuild.gitsource import GitError, fetch_into, git_url, parse_git_url
from fwbuild.urls import check_url

pytestmark = pytest.mark.unit  # in-process only: tests/support/layers.py

BASE = "https://git.example.invalid/"
LONG = "deep/" + "d" * 60 + "/" + "n" * 60 + ".c"  # over tar's 100-character name field
FILES: dict[str, str | bytes | tuple[str, str]] = {
    "README": "a test tree\n",
    "configure": ("x", "#!/bin/sh\necho configured\n"),
    "src/main.c": "int main(void) { return 0; }\n",
    "src/empty.h": "",
    "src/link.h": ("link", "empty.h"),
    "b.c": "/* sorts after b/ */\n",
    "b/inner.txt": "inside b\n",
    LONG: "/* long */\n",
    "docs/caf\u00e9.txt": "non-ASCII name\n",
    "patches/fix.patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
}
# The sha256 of the archive of FILES (fixed dates, so a fixed commit): written by our own code,
# it must not change with the git or Python version. If this fails after an upgrade, every
# pinned git fallback in recipes/ changed too: fix the exporter, not this digest.
GOLDEN = "10ea596b3e7001dd266c4e57c6d077203c46c053f4fe167ecfcf9f53567617a9"


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GitDaemon, dict[str, str]]]:
    base = tmp_path_factory.mktemp("git")
    first = make_repo(base / "work", FILES)
    second = commit_more(base / "work", "NEWS", "second commit\n")
    served = publish(base / "work", base / "root", "tree.git")
    # Partial clones allowed, as on GitHub: one file is fetched without the other blobs.
    git("config", "uploadpack.allowFilter", "true", cwd=served)
    # An independent clone under another name: the same commits, other packs and objects.
    git("clone", "-q", "--bare", str(base / "root" / "tree.git"), str(base / "root" / "copy.git"))
    with GitDaemon(base / "root") as daemon:
        yield daemon, {"first": first, "second": second, "work": str(base / "work")}


@pytest.fixture
def redirected(
    repos: tuple[GitDaemon, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> tuple[GitDaemon, dict[str, str]]:
    daemon, ids = repos
    for key, value in daemon.redirect(BASE).items():
        monkeypatch.setenv(key, value)
    return daemon, ids


def _export(tmp: Path, url: str, name: str) -> tuple[Path, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    part = tmp / f"{name}.part"
    digests = fetch_into(url, part, algos=["sha256"], deadline=60)
    assert digests["sha256"] == hashlib.sha256(part.read_bytes()).hexdigest()
    return part, digests["sha256"]


def test_export_is_reproducible_and_well_formed(
    redirected: tuple[GitDaemon, dict[str, str]], tmp_path: Path
) -> None:
    _, ids = redirected
    url = git_url(BASE + "tree.git", ids["first"])
    a, sha_a = _export(tmp_path / "one", url, "tree-1.0-git.tar")
    _, sha_b = _export(tmp_path / "other" / "dir", url, "tree-1.0-git.tar")
    assert sha_a == sha_b == GOLDEN
    with tarfile.open(a) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0] == "tree-1.0-git"
        assert all(n == "tree-1.0-git" or n.startswith("tree-1.0-git/") for n in names)
        # sorted by path components: a directory right before its contents
        assert names.index("tree-1.0-git/b") < names.index("tree-1.0-git/b/inner.txt")
        assert names.index("tree-1.0-git/b/inner.txt") < names.index("tree-1.0-git/b.c")
        by = {m.name.removeprefix("tree-1.0-git/"): m for m in members}
        assert by["configure"].mode == 0o755 and by["README"].mode == 0o644
        assert by["src"].isdir() and by["src"].mode == 0o755
        assert by["src/link.h"].issym() and by["src/link.h"].linkname == "empty.h"
        assert by["src/empty.h"].size == 0
        assert LONG in by and "docs/caf\u00e9.txt" in by
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        assert {m.mtime for m in members} == {int(DATE.split()[0])}  # the committer time
        assert tar.extractfile(by["src/main.c"]).read() == b"int main(void) { return 0; }\n"  # type: ignore[union-attr]
    assert a.read_bytes()[257:263] == b"ustar "  # GNU format, no pax headers


def test_same_archive_from_another_clone_and_protocol(
    redirected: tuple[GitDaemon, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another clone of the repository, fetched with protocol v0, where the server refuses a
    commit by id unless it is a branch tip: the full-fetch path gives the same bytes."""
    daemon, ids = redirected
    refused = subprocess.run(
        ["git", "-c", "protocol.version=0", "fetch", "--depth", "1",
         f"{daemon.url}/copy.git", ids["first"]],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode != 0  # (so the fallback below really is exercised)
    for key, value in daemon.redirect(BASE, {"protocol.version": "0"}).items():
        monkeypatch.setenv(key, value)
    _, sha = _export(tmp_path, git_url(BASE + "copy.git", ids["first"]), "tree-1.0-git.tar")
    assert sha == GOLDEN


def test_one_file_is_its_blob(redirected: tuple[GitDaemon, dict[str, str]], tmp_path: Path) -> None:
    _, ids = redirected
    part, _ = _export(
        tmp_path, git_url(BASE + "tree.git", ids["second"], "patches/fix.patch"), "fix.patch"
    )
    assert part.read_bytes() == str(FILES["patches/fix.patch"]).encode()
    with pytest.raises(GitError, match=r"src is not a file in that commit \(found tree\)"):
        _export(tmp_path, git_url(BASE + "tree.git", ids["second"], "src"), "src.patch")


def test_wrong_commit_names_repository_and_commit(
    redirected: tuple[GitDaemon, dict[str, str]], tmp_path: Path
) -> None:
    wrong = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(GitError) as info:
        _export(tmp_path, git_url(BASE + "tree.git", wrong), "x.tar")
    text = str(info.value)
    assert BASE + "tree.git" in text and wrong in text and "wrong commit id" in text
    assert not list(tmp_path.glob("*.git"))  # the scratch repository is gone


def test_rewritten_history_is_a_clear_error(
    repos: tuple[GitDaemon, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, ids = repos
    served = daemon.root / "rewritten.git"
    git("clone", "-q", "--bare", ids["work"], str(served))
    url = git_url(BASE + "rewritten.git", ids["second"])
    for key, value in daemon.redirect(BASE).items():
        monkeypatch.setenv(key, value)
    _export(tmp_path / "before", url, "x.tar")
    # A force-push that drops the second commit, and the server forgets it.
    git("update-ref", "refs/heads/main", ids["first"], cwd=served)
    git("reflog", "expire", "--expire=now", "--all", cwd=served)
    git("gc", "-q", "--prune=now", cwd=served)
    with pytest.raises(GitError) as info:
        _export(tmp_path / "after", url, "x.tar")
    assert ids["second"] in str(info.value) and "rewritten" in str(info.value)


def test_digest_mismatch_is_rejected_like_any_download(
    redirected: tuple[GitDaemon, dict[str, str]], tmp_path: Path
) -> None:
    """A git URL whose archive does not match is moved aside and the next URL is tried; when
    none matches, expected and actual digests are shown."""
    _, ids = redirected
    good = git_url(BASE + "tree.git", ids["first"])
    other = git_url(BASE + "tree.git", ids["second"])  # a different tree: different bytes
    settings = FetchSettings(dl_dir=tmp_path / "dl", progress="none")
    remote = RemoteFile("tree-1.0-git.tar", (other, good), {"sha256": GOLDEN})
    path = fetch(remote, settings, package="tree", log=io.StringIO())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GOLDEN
    assert (tmp_path / "dl" / ".rejected" / "tree-1.0-git.tar").is_file()

    wrong = "f" * 64
    remote = RemoteFile("other-git.tar", (good,), {"sha256": wrong})
    with pytest.raises(DigestMismatch) as info:
        fetch(remote, settings, package="tree", log=io.StringIO())
    assert f"expected sha256 {wrong}" in str(info.value) and good in str(info.value)
    assert not (tmp_path / "dl" / "other-git.tar").exists()


def test_archive_in_dl_needs_no_network(
    redirected: tuple[GitDaemon, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ids = redirected
    url = git_url(BASE + "tree.git", ids["first"])
    settings = FetchSettings(dl_dir=tmp_path / "dl", progress="none")
    remote = RemoteFile("tree-1.0-git.tar", (url,), {"sha256": GOLDEN})
    fetch(remote, settings, package="tree", log=io.StringIO())
    # No server any more (insteadOf now points at a closed port), online and offline.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", BASE)
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.git://127.0.0.1:{closed}/.insteadOf")
    for offline in (False, True):
        s2 = FetchSettings(dl_dir=tmp_path / "dl", progress="none", offline=offline)
        assert fetch(remote, s2, package="tree", log=io.StringIO()).is_file()
    (tmp_path / "dl" / "tree-1.0-git.tar").unlink()
    with pytest.raises(DownloadError, match=r"connect|Connection refused|unable"):
        fetch(remote, settings, package="tree", log=io.StringIO())


def test_archive_on_an_http_mirror_is_the_same_file(
    redirected: tuple[GitDaemon, dict[str, str]], tmp_path: Path
) -> None:
    """The bytes depend on nothing but the commit: a primary mirror can serve the archive."""
    _, ids = redirected
    part, _ = _export(tmp_path / "x", git_url(BASE + "tree.git", ids["first"]), "tree-1.0-git.tar")
    (tmp_path / "mirror").mkdir()
    part.rename(tmp_path / "mirror" / "tree-1.0-git.tar")
    with FaultServer(tmp_path / "mirror") as srv:
        settings = FetchSettings(dl_dir=tmp_path / "dl", primary_mirror=srv.url, progress="none")
        dead = git_url(BASE + "gone.git", ids["first"])
        remote = RemoteFile("tree-1.0-git.tar", (dead,), {"sha256": GOLDEN})
        fetch(remote, settings, package="tree", log=io.StringIO())
        assert ("GET", "/tree-1.0-git.tar", None) in srv.requests


def test_submodules_are_refused(
    repos: tuple[GitDaemon, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, ids = repos
    work = tmp_path / "sub"
    make_repo(work, {"README": "has a submodule\n"})
    git("update-index", "--add", "--cacheinfo", f"160000,{ids['first']},vendor/lib", cwd=work)
    git("commit", "-q", "-m", "submodule", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)
    publish(work, daemon.root, "sub.git")
    for key, value in daemon.redirect(BASE).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(GitError, match="vendor/lib is a git submodule"):
        _export(tmp_path, git_url(BASE + "sub.git", commit), "sub.tar")


def test_a_silent_server_meets_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts and never answers: git is stopped at the deadline, with a message."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv(
        "GIT_CONFIG_KEY_0", f"url.git://127.0.0.1:{listener.getsockname()[1]}/.insteadOf"
    )
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", BASE)
    try:
        with pytest.raises(GitError, match="took longer than 1 s"):
            fetch_into(
                git_url(BASE + "t.git", "a" * 40),
                tmp_path / "x.part",
                algos=["sha256"],
                deadline=1.5,
            )
    finally:
        listener.close()
        for s in held:
            s.close()


def test_git_urls_are_checked_when_a_recipe_loads() -> None:
    ok = git_url("https://github.com/x/y.git", "0" * 40, "dir/f.patch")
    check_url(ok, where="recipe r.py")
    assert parse_git_url(ok).path == "dir/f.patch"
    for bad, why in (
        ("git+https://github.com/x/y.git@abc123", "full 40-hex"),
        ("git+https://github.com/x/y.git", "full 40-hex"),
        ("git+https:///x.git@" + "0" * 40, "names no host"),
        (git_url("https://github.com/x/y.git", "0" * 40, "../etc/passwd"), "plain relative"),
    ):
        with pytest.raises(ConfigError, match=why):
            check_url(bad, where="recipe r.py")


def test_smart_http_as_github_serves_it(
    repos: tuple[GitDaemon, dict[str, str]], tmp_path: Path
) -> None:
    """A ``git+http://`` URL used as written (no insteadOf): git's smart HTTP protocol."""
    daemon, ids = repos
    with SmartHttp(daemon.root) as srv:
        url = git_url(f"{srv.url}/tree.git", ids["first"])
        check_url(url, where="recipe r.py")
        _, sha = _export(tmp_path, url, "tree-1.0-git.tar")
        assert sha == GOLDEN
        assert any(r.startswith("POST /tree.git/git-upload-pack") for r in srv.requests)


def test_one_file_from_a_local_copy_missing_other_objects(tmp_path: Path) -> None:
    """A local copy (file://, or insteadOf to one) that lacks unrelated objects still gives one
    file: the serving side we start honours the blob filter. The whole tree fails, saying so."""
    commit = make_repo(tmp_path / "w", {"keep/fix.patch": "the patch\n", "big.bin": "other\n"})
    bare = tmp_path / "copy.git"
    git("clone", "-q", "--bare", "--no-local", str(tmp_path / "w"), str(bare))
    git("repack", "-q", "-a", "-d", cwd=bare)
    other = git("rev-parse", f"{commit}:big.bin", cwd=bare)
    # Rewrite the pack without that blob: a copy that is incomplete, like a partial mirror.
    keep = [o for o in git("rev-list", "--objects", "--all", cwd=bare).split("\n") if o]
    wanted = "\n".join(line.split()[0] for line in keep if not line.startswith(other)) + "\n"
    (tmp_path / "new").mkdir()
    subprocess.run(
        ["git", "pack-objects", "-q", str(tmp_path / "new" / "pack")],
        cwd=bare, input=wanted, text=True, check=True, capture_output=True,
    )  # fmt: skip
    for pack in (bare / "objects" / "pack").iterdir():
        pack.unlink()
    for pack in (tmp_path / "new").iterdir():
        pack.rename(bare / "objects" / "pack" / pack.name)
    assert subprocess.run(["git", "cat-file", "-e", other], cwd=bare).returncode != 0
    url = git_url(bare.as_uri(), commit, "keep/fix.patch")
    part, _ = _export(tmp_path / "one", url, "fix.patch")
    assert part.read_bytes() == b"the patch\n"
    with pytest.raises(GitError, match="git fetch"):
        _export(tmp_path / "tree", git_url(bare.as_uri(), commit), "w.tar")
