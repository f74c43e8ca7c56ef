"""Defaults shared by the report functions and the ``report`` subcommand (no numpy here,
so that setting up the subcommand's arguments stays cheap)."""

__all__ = ["DEFAULT_GRID"]

#: Radii at which the tables report certified accuracy unless told otherwise.
DEFAULT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
