"""Benchmark: fwbuild.patching.apply_series against GNU patch on a realistic series.

The series: 5 patches produced by GNU ``diff -urN`` over a tree of 300 C-like files (about 250
lines each), about 2000 hunks in total, with file creations and deletions. Both sides start from
a fresh copy of the tree each round (copying is not timed); the best of 3 rounds counts. GNU
patch runs once per patch (``patch -p1 --batch -F0 -i ...``), which is how a build would use it.

Run standalone: ``python bench/bench_patch.py`` prints the figures as JSON.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from fwbuild.patching import PatchFile, apply_series
except ImportError:  # standalone run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fwbuild.patching import PatchFile, apply_series

NFILES = 300
NPATCHES = 5
HUNKS_PER_PATCH = 400
ROUNDS = 3

_WORDS = [
    "skb",
    "dev",
    "irq",
    "dma",
    "lock",
    "unlock",
    "spin",
    "read",
    "write",
    "probe",
    "remove",
    "init",
    "exit",
    "ppp",
    "l2tp",
    "ipsec",
    "xfrm",
    "esp",
    "ah",
    "tunnel",
    "session",
    "socket",
    "buffer",
    "len",
    "flags",
    "ret",
    "err",
    "state",
    "config",
    "ctx",
    "priv",
    "netdev",
]
_BOILERPLATE = ["", "}", "\treturn 0;", "\tbreak;", "#endif", "{", "\t}", " */"]


def _line(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(_BOILERPLATE)
    words = "_".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    return "\t" * rng.randint(0, 3) + f"{words}(x, {rng.randrange(100000)});"


def _write(root: Path, files: dict[str, list[str]]) -> None:
    for name, lines in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines))


def _edit(rng: random.Random, lines: list[str], nhunks: int) -> list[str]:
    """Apply ``nhunks`` edits far enough apart to give one hunk each."""
    out = list(lines)
    spots = sorted(rng.sample(range(4, max(5, len(out) - 4), 12), k=min(nhunks, len(out) // 12)))
    for pos in reversed(spots):
        kind = rng.randrange(3)
        if kind == 0:
            out[pos:pos] = [_line(rng) for _ in range(rng.randint(1, 4))]
        elif kind == 1:
            del out[pos : pos + rng.randint(1, 3)]
        else:
            out[pos : pos + rng.randint(1, 3)] = [_line(rng) for _ in range(rng.randint(1, 3))]
    return out


def make_series(workdir: Path) -> tuple[Path, list[PatchFile], int]:
    """Write the base tree and the patches under workdir; return (tree, patches, hunks)."""
    rng = random.Random(20050302)
    dirs = ["drivers/net", "net/ipv4", "net/xfrm", "include/linux", "arch/arm/mach", "lib"]
    version = {
        f"{rng.choice(dirs)}/file{i:03d}.c": [_line(rng) for _ in range(rng.randint(150, 350))]
        for i in range(NFILES)
    }
    base = workdir / "base"
    _write(base, version)
    patches: list[PatchFile] = []
    hunks = 0
    for k in range(NPATCHES):
        nxt = dict(version)
        names = sorted(nxt)
        budget = HUNKS_PER_PATCH
        for name in rng.sample(names, k=len(names) // 2):
            if budget <= 0:
                break
            n = min(budget, rng.randint(1, 8))
            nxt[name] = _edit(rng, nxt[name], n)
            budget -= n
        del nxt[rng.choice(names)]
        nxt[f"drivers/net/new{k}.c"] = [_line(rng) for _ in range(80)]
        scratch = workdir / "scratch"
        _write(scratch / "a", version)
        _write(scratch / "b", nxt)
        result = subprocess.run(
            ["diff", "-urN", "a", "b"], cwd=scratch, capture_output=True, check=False
        )
        if result.returncode != 1:
            raise RuntimeError(result.stderr.decode())
        shutil.rmtree(scratch)
        path = workdir / f"{k + 1:04d}-bench.patch"
        path.write_bytes(result.stdout)
        hunks += result.stdout.count(b"\n@@ -")
        patches.append(PatchFile(path))
        version = nxt
    return base, patches, hunks


def _fresh(base: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest)
    return dest


def measure(workdir: Path) -> dict[str, float]:
    """Time apply_series and GNU patch on the same series; best of 3 each."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base, patches, hunks = make_series(workdir)
    if not 1800 <= hunks <= 2200:
        raise RuntimeError(f"the generated series has {hunks} hunks, expected about 2000")
    ours: list[float] = []
    gnu: list[float] = []
    for _ in range(ROUNDS):
        tree = _fresh(base, workdir / "ours")
        t0 = time.perf_counter()
        apply_series(tree, patches, package="bench")
        ours.append(time.perf_counter() - t0)

        tree = _fresh(base, workdir / "gnu")
        t0 = time.perf_counter()
        for pf in patches:
            subprocess.run(
                ["patch", "-p1", "--batch", "-F0", "-i", str(pf.path)],
                cwd=tree,
                stdout=subprocess.DEVNULL,
                check=True,
            )
        gnu.append(time.perf_counter() - t0)
    if _snapshot(workdir / "ours") != _snapshot(workdir / "gnu"):
        raise RuntimeError("apply_series and GNU patch produced different trees")
    patch_s, gnu_s = min(ours), min(gnu)
    return {
        "patch_s": patch_s,
        "gnu_patch_s": gnu_s,
        "patch_ratio": patch_s / gnu_s,
    }


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="bench-patch-") as tmp:
        print(json.dumps(measure(Path(tmp)), indent=2))
