"""Generated boards of many trivial packages, for the scaling bench and the deep-chain test.

Each package is a recipe of a few lines with ``toolchain = "none"``, no download and no compiler:
its install stage writes one small file. Only the dependency shape differs:

* ``chain``: p0001 depends on p0000, p0002 on p0001, … (depth N: the worst case for walks over
  transitive dependencies);
* ``fanin``: one package depending directly on N-1 independent ones;
* ``dag``: a random DAG (fixed seed), each package depending on up to 3 earlier ones.
"""

from __future__ import annotations

import random
from pathlib import Path

SHAPES = ("chain", "fanin", "dag")

RECIPE = """\
{imports}from fwbuild.recipe import Package


class P(Package):
    name = "{name}"
    version = "1"
    license = "MIT"
    toolchain = "none"
    depends = {depends!r}

    def install(self, ctx):
{install}        (ctx.staging / "{name}").write_text("{name}\\n")
"""


def recipe(
    name: str, depends: tuple[str, ...] = (), *, imports: str = "", install: str = ""
) -> str:
    """A trivial package's recipe: its install writes one file, after ``install`` (lines of the
    method's body, indented 8 spaces) with ``imports`` (lines at the top of the module)."""
    return RECIPE.format(name=name, depends=tuple(depends), imports=imports, install=install)


BOARD = """\
[board]
name = "{name}"
packages = {packages}
jobs = 1

[target]
arch = "x86"
cpu = "i586"
libc = "musl"
triplet = "i586-linux-musl"

[paths]
build = "build"
downloads = "dl"
output = "output"
"""


def minimal_board(name: str, packages: list[str]) -> str:
    """A board file naming only what the engine needs (no toolchain is used by packages whose
    ``toolchain = "none"``); the tests that write generated recipes share it."""
    return BOARD.format(name=name, packages="[" + ", ".join(f'"{p}"' for p in packages) + "]")


DODO = """\
from pathlib import Path

from fwbuild.dodo import load

globals().update(load(Path(__file__).parent / "configs" / "board.toml"))
"""


def name_of(i: int) -> str:
    return f"p{i:05d}"


def dependencies(n: int, shape: str, seed: int = 15) -> dict[str, tuple[str, ...]]:
    """Package name -> its direct dependencies, for ``n`` packages of the given shape."""
    if shape == "chain":
        return {name_of(i): (name_of(i - 1),) if i else () for i in range(n)}
    if shape == "fanin":
        top = {name_of(n - 1): tuple(name_of(i) for i in range(n - 1))}
        return {**{name_of(i): () for i in range(n - 1)}, **top}
    if shape == "dag":
        rng = random.Random(seed)
        return {
            name_of(i): tuple(sorted({name_of(rng.randrange(i)) for _ in range(min(i, 3))}))
            for i in range(n)
        }
    raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")


def make_scale_project(root: Path, n: int, shape: str) -> Path:
    """Write a project of ``n`` trivial packages; the board lists the ones nothing depends on."""
    deps = dependencies(n, shape)
    wanted = set(deps) - {d for ds in deps.values() for d in ds}
    (root / "recipes").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "dodo.py").write_text(DODO)
    (root / "configs" / "board.toml").write_text(minimal_board("scale", sorted(wanted)))
    for name, depends in deps.items():
        (root / "recipes" / f"{name}.py").write_text(recipe(name, depends))
    return root
