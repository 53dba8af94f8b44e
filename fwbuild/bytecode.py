"""Recipe bytecode that is reused only for the very source it was compiled from.

Python reuses a module's cached bytecode (``__pycache__/*.pyc``) while the source's mtime, in
whole seconds, and its size are the ones recorded in it. A recipe edited twice within one second
to the same size (one sha256 replaced by another, a version "1.0.1" by "1.0.2") keeps running
the first edit's code: its declarations, hence its keys, would not change, and the build would
stay stale. A *checked hash-based* pyc (PEP 552) is checked against a hash of the source's bytes
on every import instead, and once one is there Python writes that kind again whenever the source
changes. :func:`use_checked_bytecode` gives every module of a directory one before it is
imported: the recipes, and the helper modules they import by name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import py_compile
import sys

_CHECKED_HASH = 0b11  # the pyc header's flags: hash-based, checked against the source


def use_checked_bytecode(directory: str) -> None:
    """Give each ``.py`` file below ``directory`` a checked hash-based pyc, unless it has one.

    A file without a pyc gets none when bytecode writing is off (PYTHONDONTWRITEBYTECODE):
    Python then compiles it from source. A timestamp pyc is replaced even then, since Python
    would still read it. A file that cannot be compiled or a pyc that cannot be written is left
    to the import, which reports a broken recipe by name."""
    for parent, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                _check(os.path.join(parent, name))


def _check(source: str) -> None:
    cached = importlib.util.cache_from_source(source)
    try:
        with open(cached, "rb") as fh:
            header = fh.read(8)
    except OSError:
        header = b""
    if len(header) == 8 and int.from_bytes(header[4:8], "little") == _CHECKED_HASH:
        return
    if not header and sys.dont_write_bytecode:
        return
    with contextlib.suppress(py_compile.PyCompileError, OSError):
        py_compile.compile(
            source,
            cfile=cached,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
