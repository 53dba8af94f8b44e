"""Engine work run as a doit action: a failure the user can fix becomes doit's ``TaskFailed``
with just our message (one paragraph, no traceback).

Every task module (``fwbuild.tasks``, ``graphs``, ``cve``, ``sourcecheck``) runs its work through
``guarded``; the project is passed in, never looked up in a registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fwbuild.errors import BuildError

if TYPE_CHECKING:
    from fwbuild.project import Project


def guarded(project: Project, func: Callable[[], Any]) -> Any:
    """Run an action; a BuildError becomes doit's TaskFailed with just our message."""
    from doit.exceptions import TaskFailed

    try:
        func()
    except BuildError as exc:
        failed = TaskFailed(str(exc))
        # doit passes the failure object to the reporter (pickled from a worker with -n): the
        # log travels as an attribute of it, a plain string
        failed.log = str(exc.log) if exc.log else None
        return failed
    except KeyboardInterrupt:
        raise
    except OSError as exc:
        # A disk that fills up or turns read-only under any stage: named, not a traceback.
        from fwbuild.steps import storage_error

        paths = project.board.paths
        where = [paths.build, paths.rootfs, paths.output]
        error = storage_error(exc, writing=False, candidates=where)
        if error is None:
            raise
        return TaskFailed(str(error))
    return None
