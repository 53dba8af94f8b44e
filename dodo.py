"""doit entry point for the SISO VPN router firmware. ``doit list`` shows what it can do.

The board (target, variants, packages, paths) is ``configs/siso.toml``; set FWBUILD_BOARD to build
another board file with the same recipes.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This checkout's engine, whichever doit runs this file: never the fwbuild of another checkout
# that some environment on the machine has installed.
sys.path.insert(0, str(HERE))

import fwbuild  # noqa: E402
from fwbuild.dodo import load  # noqa: E402

if Path(fwbuild.__file__).resolve().parent != HERE / "fwbuild":
    sys.exit(
        f"fwbuild: this checkout's dodo.py ({HERE}) loaded the engine of {fwbuild.__file__}; "
        f"run this checkout's own doit: {HERE / '.venv' / 'bin' / 'doit'} (scripts/setup-debian)"
    )
globals().update(load(HERE / os.environ.get("FWBUILD_BOARD", "configs/siso.toml"), HERE))
