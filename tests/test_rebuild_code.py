"""Rebuild tracking of the code that builds a package, not only its recipe file.

A stage key covers the recipe, every module of ``recipes/`` it imports (transitively, a
function-local import included) and the engine modules defining the classes in its MRO
(fwbuild.codedigest). Each step below edits one file and states the full set of tasks that
must run, on a project of packages that need no download and no compiler (seconds).

The engine is a copy of ``fwbuild/`` in the test's directory, first on PYTHONPATH, so the test
edits a real engine base class and doit imports the edited one.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.doitrun import doit_env, run_doit
from support.scalepkgs import DODO, minimal_board

import fwbuild
from fwbuild.codedigest import _imported_names

BOARD = minimal_board("codeboard", ["alpha", "beta", "gamma", "delta"])

# Shared by alpha (at the top) and beta (only inside install); it imports a helper of its own.
HELPER = """\
from _quote import quoted


def line(name):
    return quoted(name) + " uses the helper\\n"
"""
QUOTE = """\
def quoted(word):
    return '"' + word + '"'
"""

ALPHA = """\
from _helper import line

from fwbuild.recipe import Package


class Alpha(Package):
    name = "alpha"
    version = "1"
    license = "MIT"
    toolchain = "none"
    target_files = {"alpha": 0o644}

    def install(self, ctx):
        (ctx.staging / "alpha").write_text(line("alpha"))
"""

BETA = """\
from fwbuild.recipe import Package


class Beta(Package):
    name = "beta"
    version = "1"
    license = "MIT"
    toolchain = "none"
    target_files = {"beta": 0o644}

    def install(self, ctx):
        from _helper import line  # only when it runs: still part of its key

        (ctx.staging / "beta").write_text(line("beta"))
"""

GAMMA = """\
from fwbuild.recipe import Package


class Gamma(Package):
    name = "gamma"
    version = "1"
    license = "MIT"
    toolchain = "none"
    target_files = {"gamma": 0o644}

    def install(self, ctx):
        (ctx.staging / "gamma").write_text("gamma\\n")
"""

# A package kind of the engine's own, in a module of its own (as a new kinds module would be).
TEXT_KIND = '''\
"""A kind whose install writes ``text`` to ``path``."""

from fwbuild.recipe import Package


class TextPackage(Package):
    path = "text"
    text = ""

    def install(self, ctx):
        (ctx.staging / self.path).write_text(self.text + "\\n")
'''

DELTA = """\
from fwbuild.textkind import TextPackage


class Delta(TextPackage):
    name = "delta"
    version = "1"
    license = "MIT"
    toolchain = "none"
    path = "delta"
    text = "delta"
    target_files = {"delta": 0o644}
"""

CONFIGURE_ON = ("configure", "build", "install")


def tasks(*packages: str) -> set[str]:
    return {f"{s}:{p}" for p in packages for s in CONFIGURE_ON}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def make_code_project(root: Path) -> tuple[Path, Path]:
    """The project and the engine copy it runs with."""
    engine = root / "engine"
    shutil.copytree(
        Path(fwbuild.__file__).parent, engine / "fwbuild", ignore=shutil.ignore_patterns("*.pyc")
    )
    (engine / "fwbuild" / "textkind.py").write_text(TEXT_KIND)
    proj = root / "proj"
    recipes = proj / "recipes"
    recipes.mkdir(parents=True)
    (proj / "configs").mkdir()
    (proj / "configs" / "board.toml").write_text(BOARD)
    (proj / "dodo.py").write_text(DODO)
    files = {"_helper": HELPER, "_quote": QUOTE, "alpha": ALPHA, "beta": BETA, "gamma": GAMMA}
    for name, text in {**files, "delta": DELTA}.items():
        (recipes / f"{name}.py").write_text(text)
    return proj, engine


def test_code_edits_rebuild_exactly_the_packages_running_that_code(tmp_path: Path) -> None:
    proj, engine = make_code_project(tmp_path)
    env = doit_env(PYTHONPATH=str(engine))
    first = run_doit(proj, "rootfs", env=env)
    assert first.returncode == 0, first.output
    rootfs = proj / "build" / "rootfs"
    assert (rootfs / "beta").read_text() == '"beta" uses the helper\n'
    kind = engine / "fwbuild" / "textkind.py"
    recipes = proj / "recipes"

    steps: list[tuple[str, Callable[[], None], set[str]]] = [
        ("nothing", lambda: None, set()),
        (
            "the shared helper (imported at the top by alpha, inside install by beta)",
            lambda: edit(recipes / "_helper.py", '" uses the helper', '" uses the helper, v2'),
            tasks("alpha", "beta") | {"rootfs"},
        ),
        (
            "a helper the shared helper imports",
            lambda: edit(recipes / "_quote.py", "'\"' + word + '\"'", "'«' + word + '»'"),
            tasks("alpha", "beta") | {"rootfs"},
        ),
        (
            "a method of the engine kind delta is made of",
            lambda: edit(kind, 'self.text + "\\n"', 'self.text + " (kind v2)\\n"'),
            tasks("delta") | {"rootfs"},
        ),
        (
            "a method of the engine's Package, the base of every kind",
            lambda: edit(
                engine / "fwbuild" / "recipe.py",
                '"""Install into ``ctx.staging`` (the package\'s own DESTDIR)."""',
                '"""Install into ``ctx.staging`` (the package\'s own DESTDIR), edited."""',
            ),
            tasks("alpha", "beta", "gamma", "delta") | {"rootfs"},
        ),
        (
            "an engine module no package kind lives in",
            lambda: (engine / "fwbuild" / "sbom.py").write_text(
                (engine / "fwbuild" / "sbom.py").read_text() + "\n# edited\n"
            ),
            set(),
        ),
        ("nothing, again", lambda: None, set()),
    ]
    for description, change, expected in steps:
        change()
        run = run_doit(proj, "rootfs", env=env)
        assert run.returncode == 0, f"{description}:\n{run.output}"
        assert run.ran == expected, f"after editing {description}: ran {sorted(run.ran)}"
    # the edits reached the image: the code that ran is the code the keys hashed
    assert (rootfs / "alpha").read_text() == "«alpha» uses the helper, v2\n"
    assert (rootfs / "beta").read_text() == "«beta» uses the helper, v2\n"
    assert (rootfs / "delta").read_text() == "delta (kind v2)\n"
    assert (rootfs / "gamma").read_text() == "gamma\n"


def test_readme_rebuild_matrix_names_existing_tests() -> None:
    """Every row of the README's rebuild matrix names a test that exists."""
    repo = Path(__file__).resolve().parents[1]
    text = (repo / "README.md").read_text()
    section = text.split("## What a change rebuilds", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert len(rows) >= 10, "the rebuild matrix is missing or was cut"
    for row in rows:
        named = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", row)
        assert named, f"row names no test: {row}"
        for file, name in named:
            assert re.search(rf"(?m)^def {name}\(", (repo / file).read_text()), (file, name)


IMPORT_FORMS = {
    "after a semicolon": ("x = 1; import _a\n", "_a"),
    "after a colon": ("if x: import _b\n", "_b"),
    "backslash continued": ("from _c \\\n    import d\n", "_c.d"),
    "parenthesised, in a function": ("def f():\n    from _e import (\n        g,\n    )\n", "_e"),
    "in an except clause": ("try:\n    pass\nexcept ImportError:\n    import _j\n", "_j"),
    "after a docstring naming import": ('"""\nimport the thing\n"""\nimport _m\n', "_m"),
    "in a match case": ("match x:\n    case 1:\n        import _n\n", "_n"),
    "deep in a method": (
        "class A:\n    def f(self):\n        with x:\n            for i in y:\n"
        "                import _o\n",
        "_o",
    ),
}


@pytest.mark.parametrize(("source", "module"), IMPORT_FORMS.values(), ids=IMPORT_FORMS.keys())
def test_every_form_of_import_statement_is_found(source: str, module: str) -> None:
    """The cheap pattern plus its fall-back to a full parse find an import written any way."""
    assert module in _imported_names(source.encode(), "recipe.py")
