"""Which URLs the downloader (fwbuild.fetch) can fetch, checked when a project loads.

Kept apart from fetch.py, which re-exports both names and dispatches on SUPPORTED_SCHEMES: the
project loader checks every recipe URL on each doit start-up, and importing fetch.py there would
add its import time to a no-op build.
"""

from __future__ import annotations

import urllib.parse

from fwbuild.errors import ConfigError

__all__ = ["SUPPORTED_SCHEMES", "check_url"]

#: The URL schemes the downloader fetches; recipes and mirrors may use no other. The git+ ones
#: are the git method (fwbuild.gitsource): ``git+https://host/repo.git@<commit>[#file]``.
SUPPORTED_SCHEMES = ("http", "https", "file", "git+https", "git+http", "git+file")


def check_url(url: object, *, where: str) -> None:
    """Raise ConfigError unless the downloader can fetch ``url``.

    ``where`` names its origin for the message, e.g. "recipe recipes/ppp.py". The project loader
    calls this for every recipe URL so that a URL no build could use is refused when the
    project loads, not found out while a download fails.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}: the URL {url!r} is not a non-empty string; fix or remove it.")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    supported = ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES)
    if scheme not in SUPPORTED_SCHEMES:
        raise ConfigError(
            f"{where}: the URL {url} uses {scheme + '://' if scheme else 'no scheme'}, which the "
            f"downloader does not fetch (it supports {supported}); remove the URL or replace it "
            "with an http(s) address of the same file."
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise ConfigError(f"{where}: the URL {url} names no host; fix or remove it.")
    if scheme.startswith("git+"):
        from fwbuild.gitsource import parse_git_url

        try:
            parse_git_url(url)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: the git URL {url} is not usable: {exc}. Write it as "
                "git+https://host/repo.git@<40-hex commit>, with #<path> for one file in it."
            ) from None
