"""doit entry point for the SISO VPN router firmware. ``doit list`` shows what it can do.

The board (target, variants, packages, paths) is ``configs/siso.toml``; set FWBUILD_BOARD to build
another board file with the same recipes.
"""

import os
from pathlib import Path

from fwbuild.dodo import load

HERE = Path(__file__).parent
globals().update(load(HERE / os.environ.get("FWBUILD_BOARD", "configs/siso.toml"), HERE))
