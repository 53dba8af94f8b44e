"""The board as a recipe sees it: everything but the sections' raw contents.

A package's configure key covers the board sections it declares (``board_sections``) and the
board files it declares (``board_files``), nothing else. A recipe that read ``self.board.data``
directly could depend on a section no key covers, and a change there would never rebuild it.
So ``Package.board`` is this view: paths, name, target and the rest of the board as they are;
the sections only through ``Package.setting(section)`` (or the typed
``self.board.settings(section)``) and the variants only through ``variant(name)``, each of which
refuses what the recipe did not declare.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fwbuild.errors import ConfigError

if TYPE_CHECKING:
    from fwbuild.config import Board
    from fwbuild.recipe import Package

# Board attributes that carry section contents (raw, typed, per file): only through setting().
HIDDEN = frozenset({"data", "typed", "layers"})


class BoardView:
    __slots__ = ("_board", "_package")

    def __init__(self, board: Board, package: Package) -> None:
        self._board = board
        self._package = package

    def __getattr__(self, attr: str) -> Any:
        if attr in HIDDEN:
            pkg = self._package
            raise ConfigError(
                f"{pkg.recipe_file}: the recipe reads the board's sections directly "
                f"(self.board.{attr}); read a section with self.setting(name), after adding it "
                "to board_sections = (...), so that a change to it rebuilds the package",
                package=pkg.name,
            )
        return getattr(self._board, attr)

    def settings(self, section: str) -> Any:
        """``Board.settings`` (the section validated and typed), for a declared section only."""
        self._package.check_section(section)
        return self._board.settings(section)

    def variant(self, name: str) -> bool:
        """``Board.variant``, for a variant the recipe declares only (as ``Package.variant``)."""
        if name not in self._package.used_variants():
            return self._package.variant(name)  # refuses it, naming the recipe
        return self._board.variant(name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BoardView):
            return self._board == other._board
        return self._board == other

    def __repr__(self) -> str:
        return f"BoardView({self._board!r})"


def unwrap(board: Board | BoardView) -> Board:
    """The board behind a view: for the engine and the accessors, never for a recipe's steps."""
    return board._board if isinstance(board, BoardView) else board
