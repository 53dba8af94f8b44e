"""The one exception type the engine raises for problems a user can fix.

Every message is a single paragraph that names the file, package or option at fault and says what
to do about it. doit prints it as the task's failure, so keep it self-contained.
"""

from __future__ import annotations

from pathlib import Path


class BuildError(Exception):
    """A failure with a message meant for the person running the build.

    ``log`` is the log file that tells more (a failed command's), carried as data: the build
    report names it without reading it out of the message."""

    def __init__(
        self, message: str, *, package: str | None = None, log: Path | None = None
    ) -> None:
        self.package = package
        self.log = log
        text = " ".join(message.split()) if "\n" not in message.strip() else message.strip()
        if package and not text.startswith(f"{package}:"):
            text = f"{package}: {text}"
        super().__init__(text)


class DownloadError(BuildError):
    """No mirror delivered a file with the expected digest, or downloads are disabled."""


class DigestMismatch(DownloadError):
    """A downloaded or local file does not match its pinned digest."""


class PatchError(BuildError):
    """A patch series does not apply cleanly; the tree was left untouched."""


class UnpackError(BuildError):
    """An archive is unreadable or holds an entry that would escape the tree."""


class ConfigError(BuildError):
    """The board file, a recipe or an override file is invalid."""


class StepError(BuildError):
    """A configure/build/install command failed; the message shows the log's tail, ``log`` is
    the log's path."""
