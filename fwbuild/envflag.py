"""The on/off settings from the environment (``FWBUILD_OFFLINE=1``, ``FWBUILD_NO_WAIT=yes``…),
read one way everywhere; a module of its own so that a run that reads nothing else of the board
(fwbuild.noop, fwbuild.lock) need not import fwbuild.config."""

from __future__ import annotations

import os

from fwbuild.errors import ConfigError

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off", ""}


def env_flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        f"environment variable {name}={raw!r} is not a boolean; use 1/0, yes/no or true/false"
    )
