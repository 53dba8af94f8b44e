"""Board templates: ``string.Template`` files (``$name`` / ``${name}``) rendered strictly.

``$`` placeholders suit configuration languages full of braces (racoon.conf, C). A placeholder
without a value is an error naming the template, the line and the name; ``$$`` is a literal ``$``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path

from fwbuild.errors import ConfigError


def render(template: Path, values: Mapping[str, object]) -> str:
    text = template.read_text()
    try:
        return string.Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        name = exc.args[0]
        line = next(
            (
                n
                for n, t in enumerate(text.splitlines(), 1)
                if f"${name}" in t or f"${{{name}}}" in t
            ),
            0,
        )
        raise ConfigError(
            f"{template}:{line}: placeholder ${name} has no value; "
            f"known: {', '.join(sorted(values))}"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{template}: {exc}; write a literal $ as $$") from None
