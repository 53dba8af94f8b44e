"""The digests of code files kept between runs (fwbuild.codedigest.remember_in): a stored entry
is used only while the file's stat identity is the stored one, an entry of a file changed in
the last two seconds is never stored (it could be changed again within one clock tick to the
same size), and a damaged store is ignored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fwbuild import codedigest

pytestmark = pytest.mark.unit

OLD = 10**9  # a change time long ago (1 s after the epoch): a settled file


def _forget() -> None:
    """A new process's state: no digests read, no store chosen."""
    codedigest._FILES.clear()
    codedigest._STORE.clear()
    codedigest._NEW.clear()


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    """Each test as a new process; the suite's own state back afterwards."""
    saved = (dict(codedigest._FILES), list(codedigest._STORE), set(codedigest._NEW))
    _forget()
    yield
    _forget()
    codedigest._FILES.update(saved[0])
    codedigest._STORE[:] = saved[1]
    codedigest._NEW.update(saved[2])


def _new_process(store: Path) -> None:
    """What the next run starts with: nothing in memory, the store read."""
    _forget()
    codedigest.remember_in(store)


def _settle(path: Path) -> None:
    """Make a file read by this process look settled (changed long ago): no tool can move a
    change time back, so the identity held in memory is given an old one."""
    ident, digest, imports = codedigest._FILES[str(path)]
    codedigest._FILES[str(path)] = ((ident[0], OLD, *ident[2:]), digest, imports)


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (the two seconds are test_a_file_changed_…'s subject)."""
    monkeypatch.setattr(codedigest, "_SETTLED_NS", -(10**12))


def test_a_stored_digest_is_used_while_the_file_is_unchanged(tmp_path: Path, no_wait: None) -> None:
    store = tmp_path / "build" / ".code-digests.json"
    store.parent.mkdir()
    recipe = tmp_path / "alpha.py"
    recipe.write_text("import os\n")
    codedigest.remember_in(store)
    real = codedigest.file_digest(str(recipe))
    codedigest._store()
    stored = json.loads(store.read_text())["files"]
    assert stored[str(recipe)][1] == real
    assert store.stat().st_mode & 0o777 == 0o600

    # The stored entry is what the next run uses (it does not read the file): proven by a
    # planted digest, which only a stat identity that differs from the stored one replaces.
    stored[str(recipe)][1] = "planted"
    store.write_text(json.dumps({"version": 1, "files": stored}))
    _new_process(store)
    assert codedigest.file_digest(str(recipe)) == "planted"

    recipe.write_text("import sys\n")  # same size, new bytes: the change time moved
    _new_process(store)
    assert (
        codedigest.file_digest(str(recipe))
        == codedigest.hashlib.sha256(b"import sys\n").hexdigest()
    )


def test_a_file_changed_in_the_last_two_seconds_is_not_stored(tmp_path: Path) -> None:
    store = tmp_path / ".code-digests.json"
    settled, fresh = tmp_path / "settled.py", tmp_path / "fresh.py"
    settled.write_text("x = 1\n")
    fresh.write_text("y = 2\n")
    codedigest.remember_in(store)
    codedigest.file_digest(str(settled))
    codedigest.file_digest(str(fresh))
    _settle(settled)
    codedigest._store()
    assert set(json.loads(store.read_text())["files"]) == {str(settled)}


def test_the_imports_are_stored_with_the_digest(tmp_path: Path, no_wait: None) -> None:
    store = tmp_path / ".code-digests.json"
    recipe = tmp_path / "beta.py"
    recipe.write_text("from _helper import line\n\ndef f():\n    import _quote\n")
    codedigest.remember_in(store)
    first = codedigest._read(str(recipe))
    codedigest._store()
    _new_process(store)
    assert not codedigest._NEW
    again = codedigest._read(str(recipe))
    assert again[2] == first[2] and "_quote" in again[2] and "_helper" in again[2]
    assert not codedigest._NEW, "the file was read although its entry was stored"


@pytest.mark.parametrize(
    "content",
    [b"not json", b'{"version": 1, "files": {"x": 3}}', b'{"version": 99, "files": {}}', b"[]"],
    ids=["garbage", "bad-entry", "other-version", "not-an-object"],
)
def test_a_damaged_store_is_ignored(tmp_path: Path, content: bytes) -> None:
    store = tmp_path / ".code-digests.json"
    store.write_bytes(content)
    recipe = tmp_path / "gamma.py"
    recipe.write_text("import os\n")
    codedigest.remember_in(store)
    assert (
        codedigest.file_digest(str(recipe)) == codedigest.hashlib.sha256(b"import os\n").hexdigest()
    )


def test_a_file_that_is_gone_leaves_the_store(tmp_path: Path, no_wait: None) -> None:
    store = tmp_path / ".code-digests.json"
    kept, gone = tmp_path / "kept.py", tmp_path / "gone.patch"
    kept.write_text("import os\n")
    gone.write_text("--- a\n+++ b\n")
    codedigest.remember_in(store)
    codedigest.file_digest(kept)
    codedigest.file_digest(gone)
    codedigest._store()
    assert set(json.loads(store.read_text())["files"]) == {str(kept), str(gone)}
    gone.unlink()
    _new_process(store)
    (tmp_path / "new.py").write_text("x = 1\n")
    codedigest.file_digest(tmp_path / "new.py")  # something new to store
    codedigest._store()
    assert set(json.loads(store.read_text())["files"]) == {str(kept), str(tmp_path / "new.py")}


def test_the_store_never_makes_the_build_directory(tmp_path: Path, no_wait: None) -> None:
    """`doit list` on a checkout that never built writes nowhere."""
    recipe = tmp_path / "epsilon.py"
    recipe.write_text("import os\n")
    codedigest.remember_in(tmp_path / "build" / ".code-digests.json")
    codedigest.file_digest(str(recipe))
    codedigest._store()
    assert not (tmp_path / "build").exists()


def test_a_store_that_cannot_be_written_is_left_alone(tmp_path: Path) -> None:
    blocker = tmp_path / "build"
    blocker.write_text("a file where the build directory should be\n")
    recipe = tmp_path / "delta.py"
    recipe.write_text("import os\n")
    codedigest.remember_in(blocker / ".code-digests.json")
    codedigest.file_digest(str(recipe))
    _settle(recipe)
    codedigest._store()  # no exception: the store only saves reading
    assert blocker.read_text().startswith("a file")
