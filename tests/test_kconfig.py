"""Fragments merge into .config, and a value that did not stick is named with its dependencies."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwbuild.errors import BuildError, ConfigError
from fwbuild.kconfig import merge, parse_fragment, read_config, verify

pytestmark = pytest.mark.unit  # in-process only: tests/support/layers.py

KCONFIG = """\
config PPP
\ttristate "PPP support"

config PPP_MPPE_MPPC
\ttristate "MPPE/MPPC"
\tdepends on PPP && EXPERIMENTAL
\tselect CRYPTO_ARC4
"""


def test_merge_replaces_and_adds(tmp_path: Path) -> None:
    config = tmp_path / ".config"
    config.write_text("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n")
    fragment = tmp_path / "frag"
    fragment.write_text('# why\nCONFIG_B=y\n# CONFIG_A is not set\nCONFIG_D="x y"\n')
    merge(config, parse_fragment(fragment))
    assert read_config(config) == {
        "CONFIG_A": "n",
        "CONFIG_B": "y",
        "CONFIG_C": "m",
        "CONFIG_D": '"x y"',
    }


def test_bad_fragment_line_is_named(tmp_path: Path) -> None:
    fragment = tmp_path / "frag"
    fragment.write_text("CONFIG_A=y\nPPP=y\n")
    with pytest.raises(ConfigError, match=r"frag:2: 'PPP=y'"):
        parse_fragment(fragment)


def test_value_that_did_not_stick_names_its_dependencies(tmp_path: Path) -> None:
    (tmp_path / "drivers").mkdir()
    (tmp_path / "drivers" / "Kconfig").write_text(KCONFIG)
    config = tmp_path / ".config"
    # what an oldconfig leaves when EXPERIMENTAL is off: the MPPC symbol silently dropped
    config.write_text("CONFIG_PPP=y\n# CONFIG_EXPERIMENTAL is not set\n")
    wanted = {"CONFIG_PPP": "y", "CONFIG_PPP_MPPE_MPPC": "y", "CONFIG_NOSUCH": "y"}
    with pytest.raises(BuildError) as err:
        verify(config, wanted, tmp_path, package="linux", source=tmp_path / "frag")
    message = str(err.value)
    assert message.startswith("linux: 2 value(s) from")
    assert "CONFIG_PPP_MPPE_MPPC: wanted y, got n; it depends on PPP && EXPERIMENTAL" in message
    assert "EXPERIMENTAL=n, PPP=y" in message
    assert "CONFIG_NOSUCH: wanted y, got n; no Kconfig file of this tree defines it" in message
    config.write_text(
        "CONFIG_PPP=y\nCONFIG_EXPERIMENTAL=y\nCONFIG_PPP_MPPE_MPPC=y\nCONFIG_NOSUCH=y\n"
    )
    verify(config, wanted, tmp_path, package="linux", source=tmp_path / "frag")
