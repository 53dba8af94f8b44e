"""The two layers of the suite, and the guard that keeps the fast one fast.

``unit``: tests that run the engine in-process and spawn nothing heavy (no doit run, no compiler,
no emulator). ``pytest -m unit`` is the edit-compile-test loop; the rest (end-to-end: doit on a
generated project, zig, qemu, the VMs) runs by default with them and alone with
``-m "not unit"``. A test is end-to-end unless it says otherwise, so a new test can never make
the fast layer slow by accident; one marked ``unit`` that spawns a heavy program fails with a
message saying so (the guard below), so the mark cannot drift from what the test does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Programs that make a test end-to-end: the build driver, compilers and linkers, emulators.
HEAVY = {"doit", "zig", "make", "gcc", "cc", "clang", "ld", "qemu-system-i386", "genext2fs"}
HEAVY_PREFIXES = ("qemu-", "i686-linux-gnu-", "i586-linux-musl-")


def heavy_program(argv: Any) -> str | None:
    """The heavy program ``argv`` starts, or None (``python -m doit`` counts as doit)."""
    args = [str(a) for a in argv] if isinstance(argv, list | tuple) else [str(argv)]
    if not args:
        return None
    prog = Path(args[0]).name
    if prog.startswith("python") and args[1:3] == ["-m", "doit"]:
        return "doit"
    if prog in HEAVY or prog.startswith(HEAVY_PREFIXES) or prog.endswith(("-gcc", "-cc", "-ld")):
        return prog
    return None


@contextmanager
def _refusing_heavy(nodeid: str) -> Iterator[None]:
    real_init = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        prog = heavy_program(args)
        if prog is not None:
            raise AssertionError(
                f"{nodeid} is marked `unit` but starts {prog} (or a fixture of it does): unit "
                "tests run the engine in-process only. Remove the `unit` mark (the test is "
                "end-to-end) or test the function it exercises directly."
            )
        real_init(self, args, *rest, **kw)

    subprocess.Popen.__init__ = guarded  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = real_init  # type: ignore[method-assign]


# Hooks, not a fixture: the guard must also cover the set-up of the fixtures a unit test asks
# for (a session fixture that runs doit would otherwise be paid for by the fast layer).
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("unit") is None:
        yield
        return
    with _refusing_heavy(item.nodeid):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("unit") is None:
        yield
        return
    with _refusing_heavy(item.nodeid):
        yield


def scan_hook() -> None:
    """FWBUILD_TEST_LAYER_SCAN=<file>: record the tests that start a heavy program (to find
    tests that could carry the ``unit`` mark); a maintenance aid, not part of a normal run."""
    out = os.environ.get("FWBUILD_TEST_LAYER_SCAN")
    if not out:
        return
    real_init = subprocess.Popen.__init__

    def recording(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        prog = heavy_program(args)
        current = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
        if prog is not None:
            with open(out, "a", encoding="utf-8") as f:
                f.write(f"{current}\t{prog}\n")
        real_init(self, args, *rest, **kw)

    subprocess.Popen.__init__ = recording  # type: ignore[method-assign]
    print(f"layer scan: recording heavy programs into {out}", file=sys.stderr)
