"""fwbuild: a small, board-agnostic firmware build engine on top of doit."""
