"""fwbuild.patching against GNU patch, on a deterministic corpus of real diff output.

The corpus: random trees of random text files (LF and CRLF, some without a final newline, some
with non-UTF-8 bytes or a stray CR), edited at random (insertions, deletions, changes at the
start, middle and end; new and deleted files), turned into patches by GNU ``diff -urN`` (epoch
timestamps for creations and deletions, in UTC or another zone), by ``git diff --no-index``
(/dev/null headers) or by ``diff -urN`` with the headers rewritten to /dev/null. Patches are
applied to a copy of the old tree, optionally with lines added above the hunks (offsets).

The oracle: GNU ``patch -pN --batch --forward -F0`` applied to another copy. Both must agree on
success or failure; on success the trees must be identical (file set, contents, modes, empty
directories); on failure ours must have left the tree exactly as it was.
"""

from __future__ import annotations

import gzip
import itertools
import os
import random
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fwbuild import patching
from fwbuild.errors import PatchError
from fwbuild.patching import PatchFile, apply_series

pytestmark = pytest.mark.unit  # in-process only: tests/support/layers.py

GIT = shutil.which("git")  # optional: without it the git-style cases use rewritten headers


@pytest.fixture(autouse=True)
def _gnu_tools_and_umask() -> Iterator[None]:
    """GNU patch and diff are the oracle; like conftest.need(), a missing one is a failure."""
    for tool in ("patch", "diff"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; .ci/run installs it (see README)")
    # GNU patch creates files 0666 & ~umask, apply_series 0644: compare them under umask 022.
    old = os.umask(0o022)
    yield
    os.umask(old)


# --------------------------------------------------------------------------------------------
# Corpus generator

COMMON = [b"", b"}", b"{", b"\treturn 0;", b"#endif", b"\tbreak;", b" */", b"/*", b"\t}", b"else"]
WORDS = (
    b"alpha beta gamma delta irq dma spin_lock spin_unlock readl writel probe init exit "
    b"ppp l2tp ipsec xfrm skb dev_kfree_skb netif_rx memcpy kmalloc kfree mutex_lock "
    b"config_enabled ifdef ifndef define struct static const unsigned long"
).split()
DIRS = ["", "src/", "include/linux/", "drivers/net/", "net/ipv4/", "arch/arm/mach/"]


@dataclass
class Text:
    lines: list[bytes]
    eol: bytes = b"\n"
    final_nl: bool = True

    def to_bytes(self) -> bytes:
        if not self.lines:
            return b""
        body = self.eol.join(self.lines)
        return body + self.eol if self.final_nl else body


def rand_line(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.2:
        return rng.choice(COMMON)
    if r < 0.22:
        return b"caf\xe9 \xff\xfe latin-1 and invalid UTF-8"
    if r < 0.24:
        return b"stray carriage return\r"
    words = b" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
    return b"\t" * rng.randint(0, 2) + words + b" %d;" % rng.randrange(10**6)


def rand_text(rng: random.Random) -> Text:
    n = rng.randint(1, 90)
    if rng.random() < 0.3:
        # Boilerplate-heavy file: a repeated block, so contexts match in several places and
        # the search order (nearest first, later on a tie, never before the previous hunk,
        # shifted by earlier offsets) decides where a hunk lands.
        block = [rand_line(rng) for _ in range(rng.randint(2, 6))]
        lines = []
        while len(lines) < n:
            lines.extend(block if rng.random() < 0.8 else [rand_line(rng)])
    else:
        lines = [rand_line(rng) for _ in range(n)]
    return Text(
        lines,
        eol=b"\r\n" if rng.random() < 0.2 else b"\n",
        final_nl=rng.random() > 0.15,
    )


def mutate(rng: random.Random, text: Text) -> Text:
    lines = list(text.lines)
    for _ in range(rng.randint(1, 5)):
        where = rng.choice(["start", "end", "middle", "middle"])
        pos = {"start": 0, "end": len(lines)}.get(where, rng.randint(0, len(lines)))
        kind = rng.choice(["insert", "delete", "change"])
        k = rng.randint(1, 4)
        if kind == "insert" or not lines or pos >= len(lines):
            lines[pos:pos] = [rand_line(rng) for _ in range(k)]
        elif kind == "delete":
            del lines[pos : pos + k]
        else:
            lines[pos : pos + k] = [rand_line(rng) for _ in range(rng.randint(1, 4))]
    if not lines:
        lines = [rand_line(rng)]
    final_nl = (not text.final_nl) if rng.random() < 0.1 else text.final_nl
    return Text(lines, text.eol, final_nl)


def first_difference(old: bytes, new: bytes) -> int:
    a, b = old.split(b"\n"), new.split(b"\n")
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b)) - 1  # only the final newline differs


def repeats(text: Text, width: int = 3) -> bool:
    windows = [tuple(text.lines[i : i + width]) for i in range(len(text.lines) - width + 1)]
    return len(set(windows)) < len(windows)


Tree = dict[str, Text]


def rand_tree(rng: random.Random, nfiles: int) -> Tree:
    tree: Tree = {}
    while len(tree) < nfiles:
        name = rng.choice(DIRS) + rng.choice(WORDS).decode() + rng.choice([".c", ".h", ".txt"])
        tree[name] = rand_text(rng)
    return tree


def next_version(rng: random.Random, tree: Tree) -> Tree:
    new: Tree = {}
    names = sorted(tree)
    deleted = set(rng.sample(names, k=min(len(names) - 1, rng.choice([0, 0, 1, 2]))))
    for name in names:
        if name in deleted:
            continue
        new[name] = mutate(rng, tree[name]) if rng.random() < 0.8 else tree[name]
    if not deleted and all(new[n].to_bytes() == tree[n].to_bytes() for n in names):
        new[names[0]] = Text([*tree[names[0]].lines, b"appended"], tree[names[0]].eol)
    for _ in range(rng.choice([0, 1, 1, 2])):
        name = rng.choice([*DIRS, "newdir/sub/"]) + "new_" + rng.choice(WORDS).decode() + ".c"
        if name not in tree and name not in new:
            new[name] = rand_text(rng)
    return new


def write_tree(root: Path, tree: Tree) -> None:
    root.mkdir(parents=True)
    for name, text in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.to_bytes())


STYLES = ["diffN", "diffN", "diffN_tz", "devnull", "git", "orig", "p2"]
EPOCH_HEADER = re.compile(rb"^(---|\+\+\+) [^\t\n]+\t19(?:70-01-01|69-12-31) [^\n]*$", re.M)


def make_patch(scratch: Path, old: Tree, new: Tree, style: str, out: Path) -> int:
    """Write a patch turning ``old`` into ``new`` with real diff output; return its strip level."""
    if style == "git" and GIT is None:
        style = "devnull"
    labels = {"orig": ("pkg-1.0.orig", "pkg-1.0"), "p2": ("x/a", "x/b")}.get(style, ("a", "b"))
    if scratch.exists():
        shutil.rmtree(scratch)
    write_tree(scratch / labels[0], old)
    write_tree(scratch / labels[1], new)
    env = dict(os.environ, TZ="CET-1" if style == "diffN_tz" else "UTC", LC_ALL="C")
    if style == "git":
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
        cmd = ["git", "diff", "--no-index", "--no-prefix", "--no-renames", "--no-color"]
    else:
        cmd = ["diff", "-urN"]
    result = subprocess.run([*cmd, *labels], cwd=scratch, env=env, capture_output=True, check=False)
    assert result.returncode == 1, result.stderr  # 1: differences found
    data = result.stdout
    if style == "devnull":
        data = EPOCH_HEADER.sub(lambda m: m.group(1) + b" /dev/null", data)
    out.write_bytes(data)
    return 2 if style == "p2" else 1


@dataclass
class Case:
    start: Tree  # what the target tree holds before patching
    versions: list[Tree]
    patches: list[PatchFile] = field(default_factory=list)
    expect_ok: bool | None = None  # None: GNU may legitimately refuse (decided by the oracle)


def build_case(tmp: Path, seed: int, npatches: int, offsets: str) -> Case:
    rng = random.Random(seed)
    versions = [rand_tree(rng, rng.randint(2, 7))]
    for _ in range(npatches):
        versions.append(next_version(rng, versions[-1]))
    case = Case(start=dict(versions[0]), versions=versions, expect_ok=True)
    for i in range(npatches):
        out = tmp / f"{i + 1:04d}-change.patch"
        strip = make_patch(tmp / "scratch", versions[i], versions[i + 1], rng.choice(STYLES), out)
        case.patches.append(PatchFile(out, strip))
    shutil.rmtree(tmp / "scratch")
    if offsets == "none":
        return case
    # Add lines above the hunks of files every patch keeps, so hunks only match at an offset.
    kept = [n for n in sorted(versions[0]) if all(n in v for v in versions)]
    for name in kept:
        # GNU patch anchors a hunk with less leading than trailing context at line 1 to the
        # start of the file; such a hunk (a change in the first 3 lines) may then refuse.
        changes = [
            first_difference(v[name].to_bytes(), w[name].to_bytes())
            for v, w in itertools.pairwise(versions)
            if v[name].to_bytes() != w[name].to_bytes()
        ]
        # And where stretches of a file repeat, a hunk may land on an earlier copy.
        risky = any(c < 3 for c in changes) or any(repeats(v[name]) for v in versions)
        if (offsets == "safe" and risky) or rng.random() < 0.4:
            continue
        lines = list(case.start[name].lines)
        if offsets == "dup":
            # Copies of stretches of the file near where they came from: decoys for the hunk
            # search, at all sorts of distances from the stated lines.
            for _ in range(rng.randint(1, 3)):
                a = rng.randint(0, len(lines))
                chunk = lines[a : a + rng.randint(3, 12)]
                pos = max(0, min(len(lines), a + rng.randint(-15, 15)))
                lines[pos:pos] = chunk
        else:
            extra = [rand_line(rng) for _ in range(rng.randint(1, 12))]
            pos = rng.randint(0, len(lines)) if offsets == "anywhere" else 0
            lines[pos:pos] = extra
        case.start[name] = Text(lines, case.start[name].eol, case.start[name].final_nl)
        if offsets in ("anywhere", "dup") or risky:
            case.expect_ok = None
    return case


# --------------------------------------------------------------------------------------------
# Tree snapshots and the GNU oracle


def snapshot(root: Path) -> dict[str, tuple[str, object, int]]:
    """Every entry below root: kind, content (bytes or link target) and permission bits."""
    snap: dict[str, tuple[str, object, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                snap[rel] = ("link", os.readlink(path), 0)
            elif stat.S_ISDIR(st.st_mode):
                snap[rel] = ("dir", None, stat.S_IMODE(st.st_mode))
            else:
                snap[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode))
    return snap


def gnu_patch(tree: Path, patches: list[PatchFile]) -> tuple[bool, str]:
    """Apply with GNU patch, no fuzz, no backups; True when every patch applied cleanly."""
    log = []
    for pf in patches:
        cmd = ["patch", f"-p{pf.strip}", "--batch", "--forward", "-F0", "--no-backup-if-mismatch"]
        cmd += ["-r", "-", "-d", str(tree), "-i", str(pf.path)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        log.append(result.stdout + result.stderr)
        if result.returncode != 0:
            return False, "\n".join(log)
    return True, "\n".join(log)


def run_oracle(tmp: Path, case: Case) -> tuple[bool, Exception | None]:
    ours, gnu = tmp / "ours", tmp / "gnu"
    write_tree(ours, case.start)
    shutil.copytree(ours, gnu, symlinks=True)
    before = snapshot(ours)
    gnu_ok, gnu_log = gnu_patch(gnu, case.patches)
    error: Exception | None = None
    try:
        touched = apply_series(ours, case.patches, package="corpus")
    except PatchError as exc:
        error = exc
    if case.expect_ok is not None:
        assert gnu_ok == case.expect_ok, f"generator expectation wrong for GNU patch:\n{gnu_log}"
    if gnu_ok:
        assert error is None, f"GNU patch applied the series, we refused: {error}\n{gnu_log}"
        assert snapshot(ours) == snapshot(gnu)
        after = snapshot(ours)
        changed_files = {
            rel
            for rel in before.keys() | after.keys()
            if before.get(rel) != after.get(rel)
            and "dir" not in (before.get(rel, ("",))[0], after.get(rel, ("",))[0])
        }
        assert changed_files <= {p.as_posix() for p in touched}
    else:
        assert error is not None, f"GNU patch refused, we applied it:\n{gnu_log}"
        assert snapshot(ours) == before, "a failed series changed the tree"
    return gnu_ok, error


def final_tree(case: Case) -> Tree:
    return case.versions[-1]


# --------------------------------------------------------------------------------------------
# Corpus tests: about 150 generated cases


SINGLE_SEEDS = range(60)


@pytest.fixture(scope="module")
def single_cases(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Case]:
    """The single-patch corpus, generated once for the oracle tests and the coverage check."""
    root = tmp_path_factory.mktemp("single")
    cache: dict[int, Case] = {}

    def get(seed: int) -> Case:
        if seed not in cache:
            cache[seed] = build_case(root / str(seed), seed, npatches=1, offsets="none")
        return cache[seed]

    return get


@pytest.mark.parametrize("seed", SINGLE_SEEDS)
def test_single_patch_matches_gnu_patch(
    tmp_path: Path, seed: int, single_cases: Callable[[int], Case]
) -> None:
    case = single_cases(seed)
    ok, _ = run_oracle(tmp_path, case)
    assert ok
    assert snapshot(tmp_path / "ours") == snapshot_of(tmp_path / "expected", final_tree(case))


@pytest.mark.parametrize("seed", range(1000, 1040))
def test_single_patch_with_offsets_matches_gnu_patch(tmp_path: Path, seed: int) -> None:
    offsets = ["top", "anywhere", "top", "dup"][seed % 4]
    case = build_case(tmp_path, seed, npatches=1, offsets=offsets)
    run_oracle(tmp_path, case)


@pytest.mark.parametrize("seed", range(2000, 2030))
def test_series_matches_gnu_patch(tmp_path: Path, seed: int) -> None:
    offsets = ["none", "top", "dup", "anywhere", "none"][seed % 5]
    case = build_case(tmp_path, seed, npatches=2 + seed % 2, offsets=offsets)
    ok, _ = run_oracle(tmp_path, case)
    if offsets == "none":
        assert ok
        assert snapshot(tmp_path / "ours") == snapshot_of(tmp_path / "exp", final_tree(case))


@pytest.mark.parametrize("seed", range(3000, 3020))
def test_offsets_above_full_context_always_apply(tmp_path: Path, seed: int) -> None:
    """Lines added above hunks that have their full leading context: both must succeed."""
    case = build_case(tmp_path, seed, npatches=1 + seed % 3, offsets="safe")
    assert case.expect_ok is True
    ok, _ = run_oracle(tmp_path, case)
    assert ok


def snapshot_of(root: Path, tree: Tree) -> dict[str, tuple[str, object, int]]:
    write_tree(root, tree)
    return snapshot(root)


def test_corpus_covers_what_it_claims(single_cases: Callable[[int], Case]) -> None:
    """The generator really produces the diff features the corpus is meant to exercise."""
    seen: set[str] = set()
    for seed in SINGLE_SEEDS:
        case = single_cases(seed)
        data = case.patches[0].path.read_bytes()
        if b"\t1970-01-01 00:00:00.000000000 +0000" in data:
            seen.add("epoch-utc")
        if b"\t1970-01-01 01:00:00.000000000 +0100" in data:
            seen.add("epoch-tz")
        if b"--- /dev/null" in data:
            seen.add("devnull-create")
        if b"+++ /dev/null" in data:
            seen.add("devnull-delete")
        if b"\\ No newline at end of file" in data:
            seen.add("no-newline")
        if b"\r\n" in data:
            seen.add("crlf")
        if b"diff --git" in data:
            seen.add("git")
        if b"pkg-1.0.orig/" in data:
            seen.add("orig-prefix")
        if re.search(rb"^@@ -\d+(,\d+)? \+\d+(,\d+)? @@.*\n(?:[ +\\-].*\n)+@@ ", data, re.M):
            seen.add("multi-hunk")
    assert seen >= {
        "epoch-utc",
        "epoch-tz",
        "devnull-create",
        "devnull-delete",
        "no-newline",
        "crlf",
        "orig-prefix",
        "multi-hunk",
    } | ({"git"} if GIT else set())


# --------------------------------------------------------------------------------------------
# Hand-made trees for the failure modes


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def numbered(n: int, start: int = 1) -> str:
    return "".join(f"line {i}\n" for i in range(start, start + n))


def diff_trees(tmp: Path, old: dict[str, str], new: dict[str, str], out: Path) -> PatchFile:
    scratch = tmp / f"scratch-{out.stem}"
    for label, files in (("a", old), ("b", new)):
        (scratch / label).mkdir(parents=True)
        for name, text in files.items():
            write(scratch / label / name, text)
    result = subprocess.run(
        ["diff", "-urN", "a", "b"],
        cwd=scratch,
        capture_output=True,
        check=False,
        env=dict(os.environ, TZ="UTC"),
    )
    assert result.returncode == 1
    out.write_bytes(result.stdout)
    shutil.rmtree(scratch)
    return PatchFile(out)


def make_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write(root / name, text)
    return root


def test_failing_hunk_in_a_later_patch_leaves_the_whole_tree_untouched(tmp_path: Path) -> None:
    v0 = {"a.c": numbered(40), "b.c": numbered(30), "gone.c": numbered(5), "sub/k.h": "k\n"}
    v1 = {
        "a.c": numbered(40).replace("line 20\n", "line twenty\n"),
        "b.c": numbered(30),
        "new/dir/n.c": "new\n",
        "sub/k.h": "k\n",
    }
    v2 = dict(v1, **{"b.c": numbered(30).replace("line 10\n", "line ten\n")})
    v3 = dict(v2, **{"b.c": v2["b.c"].replace("line 25\n", "line 25 changed\n")})
    p1 = diff_trees(tmp_path, v0, v1, tmp_path / "0001-one.patch")
    p2 = diff_trees(tmp_path, v1, v2, tmp_path / "0002-two.patch")
    p3 = diff_trees(tmp_path, v2, v3, tmp_path / "0003-three.patch")
    # Patch 3's only hunk (b.c, line 25) has a context line the tree does not have.
    tree = make_tree(
        tmp_path / "tree", dict(v0, **{"b.c": numbered(30).replace("line 23\n", "X\n")})
    )
    before = snapshot(tree)
    with pytest.raises(PatchError) as info:
        apply_series(tree, [p1, p2, p3], package="vpnd")
    message = str(info.value)
    assert message.startswith("vpnd: ")
    assert "0003-three.patch" in message
    assert "b.c" in message
    assert "hunk #1" in message
    assert snapshot(tree) == before  # a.c, the creation and the deletion did not happen either
    # GNU patch agrees the last patch does not apply (after the first two did).
    gnu = tmp_path / "gnu"
    shutil.copytree(tree, gnu)
    assert gnu_patch(gnu, [p1, p2])[0] is True
    assert gnu_patch(gnu, [p3])[0] is False


def test_hunk_failure_message_names_hunk_number_and_line(tmp_path: Path) -> None:
    old = {"f.c": numbered(60)}
    new = {"f.c": numbered(60).replace("line 5\n", "five\n").replace("line 50\n", "fifty\n")}
    pf = diff_trees(tmp_path, old, new, tmp_path / "two-hunks.patch")
    tree = make_tree(tmp_path / "t", {"f.c": numbered(60).replace("line 49\n", "other\n")})
    with pytest.raises(PatchError, match=r"hunk #2 for f\.c \(patch line \d+, expected at line 47"):
        apply_series(tree, [pf], package="p")
    assert (tree / "f.c").read_text() == numbered(60).replace("line 49\n", "other\n")


def test_already_applied_patch_is_reported_as_such(tmp_path: Path) -> None:
    old = {"f.c": numbered(30), "g.c": numbered(10)}
    new = {"f.c": numbered(30).replace("line 3\n", "three\n"), "g.c": numbered(10) + "more\n"}
    pf = diff_trees(tmp_path, old, new, tmp_path / "fix.patch")
    tree = make_tree(tmp_path / "t", old)
    apply_series(tree, [pf], package="p")
    assert (tree / "f.c").read_text() == new["f.c"]
    before = snapshot(tree)
    with pytest.raises(PatchError, match="already applied") as info:
        apply_series(tree, [pf], package="p")
    assert "fix.patch" in str(info.value)
    assert snapshot(tree) == before
    # Twice in the same series: the second copy sees the first one's result.
    fresh = make_tree(tmp_path / "t2", old)
    with pytest.raises(PatchError, match="already applied"):
        apply_series(fresh, [pf, pf], package="p")
    assert (fresh / "f.c").read_text() == old["f.c"]


def test_creating_a_file_that_exists_is_an_error(tmp_path: Path) -> None:
    pf = diff_trees(
        tmp_path, {"k.c": "k\n"}, {"k.c": "k\n", "n/new.c": "new\n"}, tmp_path / "c.patch"
    )
    assert b"--- a/n/new.c\t1970-01-01 00:00:00" in pf.path.read_bytes()  # diff -N style
    tree = make_tree(tmp_path / "t", {"k.c": "k\n", "n/new.c": "something else\n"})
    before = snapshot(tree)
    with pytest.raises(PatchError, match=r"creates n/new\.c, which already exists\."):
        apply_series(tree, [pf], package="p")
    assert snapshot(tree) == before
    # Same content: that is an already-applied creation.
    tree2 = make_tree(tmp_path / "t2", {"k.c": "k\n", "n/new.c": "new\n"})
    with pytest.raises(PatchError, match="already been applied"):
        apply_series(tree2, [pf], package="p")


def test_devnull_creation_and_deletion_with_empty_directories(tmp_path: Path) -> None:
    text = (
        "--- /dev/null\n+++ b/x/y/new.c\n@@ -0,0 +1,2 @@\n+one\n+two\n"
        "--- a/old/deep/gone.c\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-bye\n-now\n"
    )
    pf = PatchFile(write(tmp_path / "cd.patch", text))
    tree = make_tree(tmp_path / "t", {"old/deep/gone.c": "bye\nnow\n", "keep.c": "k\n"})
    touched = apply_series(tree, [pf], package="p")
    assert touched == [Path("x/y/new.c"), Path("old/deep/gone.c")]
    assert (tree / "x/y/new.c").read_bytes() == b"one\ntwo\n"
    assert stat.S_IMODE((tree / "x/y/new.c").stat().st_mode) == 0o644
    assert not (tree / "old").exists()  # emptied directories are removed, like GNU patch does
    gnu = make_tree(tmp_path / "gnu", {"old/deep/gone.c": "bye\nnow\n", "keep.c": "k\n"})
    assert gnu_patch(gnu, [pf])[0]
    assert snapshot(gnu) == snapshot(tree)


def test_deleting_a_file_with_other_content_is_refused(tmp_path: Path) -> None:
    pf = diff_trees(tmp_path, {"d.c": "a\nb\n", "k": "k\n"}, {"k": "k\n"}, tmp_path / "d.patch")
    assert b"+++ b/d.c\t1970-01-01 00:00:00" in pf.path.read_bytes()
    tree = make_tree(tmp_path / "t", {"d.c": "a\nb\nc\n", "k": "k\n"})
    with pytest.raises(PatchError, match=r"deletes d\.c, but the file does not have the content"):
        apply_series(tree, [pf], package="p")
    assert (tree / "d.c").read_text() == "a\nb\nc\n"
    missing = make_tree(tmp_path / "t2", {"k": "k\n"})
    with pytest.raises(PatchError, match="may already have been applied"):
        apply_series(missing, [pf], package="p")


def hand_patch(tmp: Path, name: str, old_name: str, new_name: str | None = None) -> PatchFile:
    text = f"--- {old_name}\n+++ {new_name or old_name}\n@@ -1,3 +1,3 @@\n 1\n-2\n+PWNED\n 3\n"
    return PatchFile(write(tmp / name, text))


def test_parent_directory_references_are_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside.txt", "1\n2\n3\n")
    tree = make_tree(tmp_path / "tree", {"f": "1\n2\n3\n"})
    pf = hand_patch(tmp_path, "up.patch", "a/../outside.txt", "b/../outside.txt")
    with pytest.raises(PatchError, match=r"contains '\.\.'") as info:
        apply_series(tree, [pf], package="p")
    assert "up.patch" in str(info.value)
    assert outside.read_text() == "1\n2\n3\n"
    sneaky = hand_patch(tmp_path, "sneaky.patch", "a/sub/../../outside.txt")
    with pytest.raises(PatchError, match=r"'\.\.'"):
        apply_series(tree, [sneaky], package="p")
    assert outside.read_text() == "1\n2\n3\n"
    assert sorted(os.listdir(tmp_path)) == ["outside.txt", "sneaky.patch", "tree", "up.patch"]


def test_absolute_paths_are_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "abs.txt", "1\n2\n3\n")
    tree = make_tree(tmp_path / "tree", {"f": "1\n2\n3\n"})
    pf = hand_patch(tmp_path, "abs.patch", str(outside))
    with pytest.raises(PatchError, match="absolute path"):
        apply_series(tree, [PatchFile(pf.path, strip=0)], package="p")
    assert outside.read_text() == "1\n2\n3\n"
    creation = PatchFile(
        write(
            tmp_path / "abs-new.patch",
            f"--- /dev/null\n+++ {tmp_path}/planted\n@@ -0,0 +1 @@\n+x\n",
        ),
        strip=0,
    )
    with pytest.raises(PatchError, match="absolute path"):
        apply_series(tree, [creation], package="p")
    assert not (tmp_path / "planted").exists()


def test_symlinked_file_pointing_outside_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "victim.txt", "1\n2\n3\n")
    tree = make_tree(tmp_path / "tree", {"f": "1\n2\n3\n"})
    (tree / "link").symlink_to(outside)
    pf = hand_patch(tmp_path, "link.patch", "a/link", "b/link")
    with pytest.raises(PatchError, match="outside the source tree") as info:
        apply_series(tree, [pf], package="p")
    assert "link.patch" in str(info.value)
    assert outside.read_text() == "1\n2\n3\n"
    assert (tree / "link").is_symlink()
    # A symlink to a file inside the tree is not followed either (GNU patch refuses it too).
    (tree / "inner").symlink_to("f")
    with pytest.raises(PatchError, match="symbolic link"):
        apply_series(tree, [hand_patch(tmp_path, "inner.patch", "a/inner")], package="p")
    assert (tree / "f").read_text() == "1\n2\n3\n"


def test_symlinked_directory_pointing_outside_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "f", "1\n2\n3\n")
    tree = make_tree(tmp_path / "tree", {"g": "1\n2\n3\n"})
    (tree / "dir").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    harmless = hand_patch(tmp_path, "g.patch", "a/g")  # applies; must not be written either
    for pf in (
        hand_patch(tmp_path, "dir.patch", "a/dir/f"),
        PatchFile(
            write(tmp_path / "dnew.patch", "--- /dev/null\n+++ b/dir/new/x\n@@ -0,0 +1 @@\n+x\n")
        ),
    ):
        with pytest.raises(PatchError, match="outside the source tree") as info:
            apply_series(tree, [harmless, pf], package="p")
        assert pf.path.name in str(info.value)
    assert snapshot(elsewhere) == before
    assert (tree / "g").read_text() == "1\n2\n3\n"


def test_symlinked_directory_inside_the_tree_is_followed(tmp_path: Path) -> None:
    # Like include/asm -> asm-arm in a configured kernel tree.
    tree = make_tree(tmp_path / "tree", {"include/asm-arm/io.h": "1\n2\n3\n"})
    (tree / "include/asm").symlink_to("asm-arm")
    touched = apply_series(
        tree, [hand_patch(tmp_path, "io.patch", "a/include/asm/io.h")], package="p"
    )
    assert touched == [Path("include/asm-arm/io.h")]
    assert (tree / "include/asm-arm/io.h").read_text() == "1\nPWNED\n3\n"
    assert (tree / "include/asm").is_symlink()


def test_fuzz_is_refused_where_gnu_patch_F0_refuses(tmp_path: Path) -> None:
    old = {"f.c": numbered(20)}
    new = {"f.c": numbered(20).replace("line 10\n", "line ten\n")}
    pf = diff_trees(tmp_path, old, new, tmp_path / "fuzzy.patch")
    target = {"f.c": numbered(20).replace("line 7\n", "line seven\n")}  # outermost context line
    tree = make_tree(tmp_path / "t", target)
    with pytest.raises(PatchError, match=r"hunk #1 for f\.c.*fuzz is not allowed"):
        apply_series(tree, [pf], package="p")
    assert (tree / "f.c").read_text() == target["f.c"]
    gnu = make_tree(tmp_path / "gnu", target)
    assert gnu_patch(gnu, [pf])[0] is False
    fuzzy = make_tree(tmp_path / "fuzzy", target)  # GNU's default fuzz 2 would have taken it
    result = subprocess.run(
        ["patch", "-p1", "--batch", "-d", str(fuzzy), "-i", str(pf.path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "with fuzz 1" in result.stdout


def test_offsets_are_found_and_accumulate(tmp_path: Path) -> None:
    old = {"f.c": numbered(100)}
    new = {"f.c": numbered(100).replace("line 20\n", "A\n").replace("line 80\n", "B\n")}
    pf = diff_trees(tmp_path, old, new, tmp_path / "off.patch")
    shifted = "".join(f"extra {i}\n" for i in range(7)) + numbered(100)
    tree = make_tree(tmp_path / "t", {"f.c": shifted})
    apply_series(tree, [pf], package="p")
    expected = shifted.replace("line 20\n", "A\n").replace("line 80\n", "B\n")
    assert (tree / "f.c").read_text() == expected


def agree_with_gnu(tmp: Path, text: str, patch: str) -> tuple[bool, str]:
    """Apply a hand-made patch to one file with both; assert they agree; return (ok, result)."""
    pf = PatchFile(write(tmp / "hand.patch", patch))
    ours = make_tree(tmp / "ours", {"f": text})
    gnu = make_tree(tmp / "gnu", {"f": text})
    gnu_ok, log = gnu_patch(gnu, [pf])
    try:
        apply_series(ours, [pf], package="p")
    except PatchError:
        assert not gnu_ok, log
        assert (ours / "f").read_text() == text
        return False, text
    assert gnu_ok, log
    assert (ours / "f").read_text() == (gnu / "f").read_text()
    return True, (ours / "f").read_text()


def test_nearest_match_wins_and_later_on_a_tie(tmp_path: Path) -> None:
    # The context occurs 5 lines above and 5 lines below the stated line 31: GNU takes the later.
    block = "x\ny\nz\nTARGET\nu\nv\nw\n"
    body = "".join(f"q{i}\n" for i in range(25))
    text = body + block + "p1\np2\np3\n" + block + body  # blocks at lines 26 and 36
    patch = "--- a/f\n+++ b/f\n@@ -31,7 +31,7 @@\n x\n y\n z\n-TARGET\n+HIT\n u\n v\n w\n"
    ok, result = agree_with_gnu(tmp_path / "tie", text, patch)
    assert ok and result.index("HIT") > result.index("TARGET")
    # Not a tie: 4 above beats 6 below.
    text = body + "p0\n" + block + "p1\np2\np3\n" + block + body  # blocks at 27 and 37
    ok, result = agree_with_gnu(tmp_path / "near", text, patch)
    assert ok and result.index("HIT") < result.index("TARGET")


def test_later_hunks_use_the_offset_of_earlier_ones(tmp_path: Path) -> None:
    # 7 lines were added at the top; hunk 2's context also occurs exactly at its stated line,
    # but GNU (and we) look first where hunk 1's offset says, and take the real one.
    hunk2_ctx = "c1\nc2\nc3\nOLD\nc4\nc5\nc6\n"
    text = (
        "".join(f"added {i}\n" for i in range(7))
        + "".join(f"l{i}\n" for i in range(1, 10))  # hunk 1 around l5
        + "".join(f"m{i}\n" for i in range(30))
        + hunk2_ctx  # decoy, 40 lines after l1 (i.e. at hunk 2's stated line)
        + "".join(f"n{i}\n" for i in range(7))  # pushes the real one 7 lines further
        + hunk2_ctx
        + "tail\n"
    )
    patch = (
        "--- a/f\n+++ b/f\n"
        "@@ -2,7 +2,7 @@\n l2\n l3\n l4\n-l5\n+L5\n l6\n l7\n l8\n"
        "@@ -47,7 +47,7 @@\n c1\n c2\n c3\n-OLD\n+NEW\n c4\n c5\n c6\n"
    )
    ok, result = agree_with_gnu(tmp_path, text, patch)
    assert ok
    assert result.count("OLD") == 1 and result.index("OLD") < result.index("NEW")


def test_hunk_ending_without_newline_landing_above_more_lines(tmp_path: Path) -> None:
    # Made against a one-line file, applied where more lines follow: the line that had no
    # newline in the patch gets one, as GNU patch does, rather than being glued to the next.
    patch = "--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n-old\n+new\n+last\n\\ No newline at end of file\n"
    ok, result = agree_with_gnu(tmp_path, "old\nmore\n", patch)
    assert ok and result == "new\nlast\nmore\n"


def test_a_hunk_may_not_match_before_the_end_of_the_previous_change(tmp_path: Path) -> None:
    base = "s\np\nA\nq\nB\nr\nt\nu\nv\nw\nx\ny\n"
    hunk1 = "--- a/f\n+++ b/f\n@@ -2,3 +2,3 @@\n p\n-A\n+A2\n q\n"
    # Hunk 2 can only match starting on line 3, which hunk 1 has already changed: refused.
    ok, _ = agree_with_gnu(tmp_path / "1", base, hunk1 + "@@ -10,3 +10,3 @@\n A\n-q\n+q2\n B\n")
    assert not ok
    # Starting inside hunk 1's trailing context is fine.
    ok, result = agree_with_gnu(
        tmp_path / "2", base, hunk1 + "@@ -10,3 +10,3 @@\n q\n-B\n+B2\n r\n"
    )
    assert ok and result.startswith("s\np\nA2\nq\nB2\nr\n")


def test_crlf_and_missing_final_newline_are_kept_byte_exact(tmp_path: Path) -> None:
    old = b"one\r\ntwo\r\nthree\r\nfour"
    new = b"one\r\n2\r\nthree\r\nfour\r\nfive"
    scratch = tmp_path / "s"
    write(scratch / "a/w.txt", old)
    write(scratch / "b/w.txt", new)
    result = subprocess.run(
        ["diff", "-urN", "a", "b"], cwd=scratch, capture_output=True, check=False
    )
    pf = PatchFile(write(tmp_path / "crlf.patch", result.stdout))
    assert b"\\ No newline at end of file" in result.stdout
    tree = make_tree(tmp_path / "t", {})
    write(tree / "w.txt", old)
    apply_series(tree, [pf], package="p")
    assert (tree / "w.txt").read_bytes() == new
    # LF content does not match CRLF context: no silent line-ending conversion.
    lf = make_tree(tmp_path / "lf", {"w.txt": "one\ntwo\nthree\nfour"})
    with pytest.raises(PatchError, match="does not apply"):
        apply_series(lf, [pf], package="p")


def test_dos_converted_patch_is_read_like_gnu_patch(tmp_path: Path) -> None:
    old = {"f.c": numbered(30), "g.c": "x\ny\n"}
    new = {"f.c": numbered(30).replace("line 9\n", "nine\n\n"), "g.c": "x\nY\n", "n.c": "n\n"}
    lf = diff_trees(tmp_path, old, new, tmp_path / "lf.patch")
    dos = PatchFile(write(tmp_path / "dos.patch", lf.path.read_bytes().replace(b"\n", b"\r\n")))
    ours = make_tree(tmp_path / "ours", old)
    gnu = make_tree(tmp_path / "gnu", old)
    ok, log = gnu_patch(gnu, [dos])
    assert ok and "Stripping trailing CRs" in log
    apply_series(ours, [dos], package="p")
    assert snapshot(ours) == snapshot(gnu)
    assert (ours / "f.c").read_text() == new["f.c"]


def test_gzip_patch(tmp_path: Path) -> None:
    old = {"f.c": numbered(30)}
    new = {"f.c": numbered(30).replace("line 15\n", "fifteen\n"), "n.c": "n\n"}
    plain = diff_trees(tmp_path, old, new, tmp_path / "z.patch")
    gz = write(tmp_path / "z.patch.gz", gzip.compress(plain.path.read_bytes()))
    tree = make_tree(tmp_path / "t", old)
    assert apply_series(tree, [PatchFile(gz)], package="p") == [Path("f.c"), Path("n.c")]
    assert (tree / "f.c").read_text() == new["f.c"]
    assert (tree / "n.c").read_text() == "n\n"
    broken = PatchFile(write(tmp_path / "broken.patch.gz", b"\x1f\x8b not really"))
    with pytest.raises(PatchError, match=r"broken\.patch\.gz.*not a valid gzip file"):
        apply_series(tree, [broken], package="p")


def test_empty_and_unparsable_patches_name_the_file(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t", {"f": "1\n2\n3\n"})
    empty = PatchFile(write(tmp_path / "empty.patch", "\n\n"))
    with pytest.raises(PatchError, match=r"empty\.patch is empty"):
        apply_series(tree, [empty], package="p")
    prose = PatchFile(write(tmp_path / "prose.patch", "This is not a diff at all.\n"))
    with pytest.raises(PatchError, match=r"prose\.patch could not be parsed"):
        apply_series(tree, [prose], package="p")
    truncated = PatchFile(
        write(tmp_path / "cut.patch", "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n 1\n-2\n")
    )
    with pytest.raises(PatchError, match=r"cut\.patch could not be parsed"):
        apply_series(tree, [truncated], package="p")
    with pytest.raises(PatchError, match=r"cannot read patch .*missing\.patch"):
        apply_series(tree, [PatchFile(tmp_path / "missing.patch")], package="p")
    assert (tree / "f").read_text() == "1\n2\n3\n"


def test_binary_diffs_are_not_supported(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t", {"f": "1\n2\n3\n"})
    plain = PatchFile(
        write(
            tmp_path / "bin.patch",
            "diff -urN a/fw.bin b/fw.bin\nBinary files a/fw.bin and b/fw.bin differ\n",
        )
    )
    with pytest.raises(
        PatchError, match=r"bin\.patch contains a binary diff, which is not supported"
    ):
        apply_series(tree, [plain], package="p")
    git = PatchFile(
        write(
            tmp_path / "gitbin.patch",
            "diff --git a/fw.bin b/fw.bin\nindex 1..2 100644\nGIT binary patch\nliteral 3\n"
            "Kcmd0000\n\nliteral 0\nHcmV?d00001\n\n",
        )
    )
    with pytest.raises(PatchError, match="not supported"):
        apply_series(tree, [git], package="p")


def test_mode_is_kept_for_modified_files(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t", {"run.sh": "1\n2\n3\n"})
    os.chmod(tree / "run.sh", 0o755)
    apply_series(tree, [hand_patch(tmp_path, "x.patch", "a/run.sh")], package="p")
    assert stat.S_IMODE((tree / "run.sh").stat().st_mode) == 0o755
    assert (tree / "run.sh").read_text() == "1\nPWNED\n3\n"
    assert [p.name for p in tree.iterdir()] == ["run.sh"]  # no temporary files left behind


def test_strip_levels(tmp_path: Path) -> None:
    text = (
        "--- linux-2.6.11.orig/drivers/x.c\n+++ linux-2.6.11/drivers/x.c\n"
        "@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n"
    )
    pf = write(tmp_path / "k.patch", text)
    tree = make_tree(tmp_path / "t", {"drivers/x.c": "1\n2\n3\n"})
    assert apply_series(tree, [PatchFile(pf, strip=1)], package="p") == [Path("drivers/x.c")]
    tree0 = make_tree(tmp_path / "t0", {"linux-2.6.11/drivers/x.c": "1\n2\n3\n"})
    assert apply_series(tree0, [PatchFile(pf, strip=0)], package="p") == [
        Path("linux-2.6.11/drivers/x.c")
    ]
    tree2 = make_tree(tmp_path / "t2", {"x.c": "1\n2\n3\n"})
    assert apply_series(tree2, [PatchFile(pf, strip=2)], package="p") == [Path("x.c")]
    with pytest.raises(PatchError, match="fewer than 5 path components"):
        apply_series(tree2, [PatchFile(pf, strip=4)], package="p")


def test_write_failure_midway_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = {"a.c": numbered(10), "b.c": numbered(10), "c.c": numbered(10), "gone.c": "g\n"}
    new = {
        "a.c": numbered(10).replace("line 2\n", "two\n"),
        "b.c": numbered(10).replace("line 3\n", "three\n"),
        "c.c": numbered(10).replace("line 4\n", "four\n"),
        "fresh/new.c": "new\n",
    }
    pf = diff_trees(tmp_path, old, new, tmp_path / "w.patch")
    tree = make_tree(tmp_path / "t", old)
    before = snapshot(tree)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # a.c and b.c are written, c.c fails
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(patching.os, "replace", flaky_replace)
    with pytest.raises(PatchError, match=r"No space left on device.*were restored"):
        apply_series(tree, [pf], package="p")
    assert calls["n"] > 3  # the rollback rewrote the files already replaced
    assert snapshot(tree) == before


def test_two_threads_patch_two_trees_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = []
    for k in range(2):
        rng = random.Random(77 + k)
        old = rand_tree(rng, 40)
        new = next_version(rng, old)
        out = tmp_path / f"t{k}.patch"
        make_patch(tmp_path / f"scratch{k}", old, new, "diffN", out)
        root = tmp_path / f"tree{k}"
        write_tree(root, old)
        cases.append((root, out, new))
    cwd = os.getcwd()

    def no_chdir(path: object) -> None:
        raise AssertionError("apply_series must not chdir")

    monkeypatch.setattr(os, "chdir", no_chdir)
    barrier = threading.Barrier(2)
    results: dict[int, object] = {}

    def work(k: int) -> None:
        root, out, _ = cases[k]
        barrier.wait()
        try:
            for _ in range(3):  # apply, then check the reverse is recognised, repeatedly
                results[k] = apply_series(root, [PatchFile(out)], package=f"t{k}")
                try:
                    apply_series(root, [PatchFile(out)], package=f"t{k}")
                except PatchError as exc:
                    assert "already applied" in str(exc) or "already exists" in str(exc)
                else:
                    raise AssertionError("second application must fail")
                subprocess.run(
                    ["patch", "-R", "-s", "-p1", "--batch", "-d", str(root), "-i", str(out)],
                    check=True,
                )
            results[k] = apply_series(root, [PatchFile(out)], package=f"t{k}")
        except BaseException as exc:  # surfaced below
            results[k] = exc

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert os.getcwd() == cwd
    for k, (root, _, new) in enumerate(cases):
        assert isinstance(results[k], list), results[k]
        assert snapshot(root) == snapshot_of(tmp_path / f"expected{k}", new)


# --------------------------------------------------------------------------------------------
# Symbolic links: made by git patches (new file mode 120000), never written through out of the
# tree


def git_diff(tmp: Path, old: dict[str, str], new: dict[str, str], out: Path) -> PatchFile:
    """A real ``git diff --no-index`` between two trees; a value "-> target" is a symlink."""
    if GIT is None:
        pytest.skip("git is not installed: cannot make git-style symlink patches")
    scratch = tmp / f"gitdiff-{out.stem}"
    for label, files in (("a", old), ("b", new)):
        (scratch / label).mkdir(parents=True)
        for name, text in files.items():
            path = scratch / label / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if text.startswith("-> "):
                path.symlink_to(text[3:])
            else:
                path.write_text(text)
    result = subprocess.run(
        [GIT, "diff", "--no-index", "--no-prefix", "--no-color", "--no-renames", "a", "b"],
        cwd=scratch,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    out.write_bytes(result.stdout)
    shutil.rmtree(scratch)
    return PatchFile(out)


def test_git_patch_making_symlinks_matches_gnu_patch(tmp_path: Path) -> None:
    old = {"include/asm-arm/io.h": "1\n2\n3\n", "Makefile": "all:\n"}
    new = {
        "include/asm-arm/io.h": "1\n2\n3\n",
        "Makefile": "all: io\n",
        "include/asm": "-> asm-arm",  # a directory link, in an existing directory
        "lib/deep/io.h": "-> ../../include/asm-arm/io.h",  # in new directories
        "io.h": "-> include/asm/io.h",  # through a link the same patch makes
    }
    first = git_diff(tmp_path, old, new, tmp_path / "links.patch")
    assert b"new file mode 120000" in first.path.read_bytes()
    # a later patch of the series changes a file through the new directory link
    second = write(
        tmp_path / "through.patch",
        "--- a/include/asm/io.h\n+++ b/include/asm/io.h\n@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n",
    )
    series = [first, PatchFile(second)]
    ours, gnu = tmp_path / "ours", tmp_path / "gnu"
    for root in (ours, gnu):
        make_tree(root, old)
    gnu_ok, log = gnu_patch(gnu, series)
    assert gnu_ok, log
    touched = apply_series(ours, series, package="p")
    assert snapshot(ours) == snapshot(gnu)
    assert (ours / "include" / "asm").readlink() == Path("asm-arm")
    assert (ours / "io.h").read_text() == "1\ntwo\n3\n"
    assert set(touched) == {
        Path(p)
        for p in ("Makefile", "include/asm", "lib/deep/io.h", "io.h", "include/asm-arm/io.h")
    }


def symlink_patch(tmp: Path, name: str, link: str, target: str) -> PatchFile:
    """What git writes for a new symlink (hand-made, so that any target can be tried)."""
    return PatchFile(
        write(
            tmp / name,
            f"diff --git a/{link} b/{link}\nnew file mode 120000\nindex 0000000..1234567\n"
            f"--- /dev/null\n+++ b/{link}\n@@ -0,0 +1 @@\n+{target}\n"
            "\\ No newline at end of file\n",
        )
    )


@pytest.mark.parametrize(
    ("link", "target", "why"),
    [
        ("etc-link", "/etc", "absolute path /etc"),
        ("sub/up", "../../outside", "points outside the source tree"),
        ("up", "sub/../..", "goes up ('..') after going down"),
        ("via-ext", "ext/f", "outside the source tree"),  # through a link already pointing out
        ("sub/via-dir", "../dirlink/f", "outside the source tree"),
    ],
)
def test_symlink_pointing_outside_is_refused(
    tmp_path: Path, link: str, target: str, why: str
) -> None:
    outside = make_tree(tmp_path / "outside", {"f": "secret\n"})
    tree = make_tree(tmp_path / "tree", {"f": "1\n2\n3\n", "sub/g": "g\n"})
    (tree / "ext").symlink_to(outside / "f")
    (tree / "dirlink").symlink_to("../outside", target_is_directory=True)
    harmless = hand_patch(tmp_path, "f.patch", "a/f")  # applies: must not be written either
    pf = symlink_patch(tmp_path, "evil-link.patch", link, target)
    before, before_outside = snapshot(tree), snapshot(outside)
    with pytest.raises(PatchError) as err:
        apply_series(tree, [harmless, pf], package="p")
    message = str(err.value)
    assert "evil-link.patch" in message and link in message and why in message, message
    assert snapshot(tree) == before and snapshot(outside) == before_outside
    # GNU patch does make such a link: the refusal is ours
    gnu = tmp_path / "gnu"
    shutil.copytree(tree, gnu, symlinks=True)
    assert gnu_patch(gnu, [pf])[0]
    assert (gnu / link).is_symlink()


def test_patch_never_writes_through_a_link(tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "outside", {"f": "1\n2\n3\n"})
    tree = make_tree(tmp_path / "tree", {"sub/f": "1\n2\n3\n"})
    before_outside = snapshot(outside)
    link = symlink_patch(tmp_path, "link.patch", "lnk", "sub/f")
    cases = [
        # the series made "lnk" a link; a later patch may not write through it
        (hand_patch(tmp_path, "mod.patch", "a/lnk"), "an earlier patch of the series made"),
        # nor may the series put a link where it has put a directory
        (symlink_patch(tmp_path, "dir.patch", "sub", "lnk"), "not a regular file"),
    ]
    for pf, why in cases:
        before = snapshot(tree)
        with pytest.raises(PatchError, match=re.escape(why)) as err:
            apply_series(tree, [link, pf], package="p")
        assert pf.path.name in str(err.value)
        assert snapshot(tree) == before
    new_dir = PatchFile(
        write(tmp_path / "nd.patch", "--- /dev/null\n+++ b/d/x\n@@ -0,0 +1 @@\n+x\n")
    )
    with pytest.raises(PatchError, match="the series has put d/x in a directory"):
        apply_series(tree, [new_dir, symlink_patch(tmp_path, "d.patch", "d", "sub")], package="p")
    # a link on disk pointing out: neither the link nor a file under it is written
    (tree / "out").symlink_to(outside, target_is_directory=True)
    (tree / "outf").symlink_to(outside / "f")
    for pf in (
        PatchFile(
            write(tmp_path / "o1.patch", "--- /dev/null\n+++ b/out/new\n@@ -0,0 +1 @@\n+x\n")
        ),
        hand_patch(tmp_path, "o2.patch", "a/outf"),
        hand_patch(tmp_path, "o3.patch", "a/out/f"),
    ):
        with pytest.raises(PatchError, match="outside the source tree") as err:
            apply_series(tree, [pf], package="p")
        assert pf.path.name in str(err.value)
    assert snapshot(outside) == before_outside
    assert not (tree / "lnk").exists()


def test_changing_or_deleting_a_symlink_is_refused_by_name(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree", {"f": "x\n"})
    (tree / "l").symlink_to("f")
    deletion = write(
        tmp_path / "del.patch",
        "diff --git a/l b/l\ndeleted file mode 120000\nindex 1234567..0000000\n"
        "--- a/l\n+++ /dev/null\n@@ -1 +0,0 @@\n-f\n\\ No newline at end of file\n",
    )
    with pytest.raises(PatchError, match=r"del\.patch line 4 deletes the symbolic link l"):
        apply_series(tree, [PatchFile(deletion)], package="p")
    assert (tree / "l").readlink() == Path("f")
