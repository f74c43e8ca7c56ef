"""Argument types and the user-facing error shared by every ``topk-bounds`` subcommand.

One home for what :mod:`topk_bounds.cli`, :mod:`topk_bounds.report` and the ``sampler``
subcommands all need, so that none of them imports another to get it. Each factory
takes the option's name and returns an ``argparse`` ``type=`` callable whose error names
the option and the value it was given.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = ["CLIError", "finite_positive", "probability", "slack", "positive_int",
           "non_negative_int", "float_list", "grid", "k_list"]


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _float_where(test: Callable[[float], bool], allowed: str) -> Callable[[str], Callable[[str], float]]:
    """A factory of ``type=`` callables for floats that pass ``test`` (``allowed`` says
    which, after "must")."""

    def factory(name: str) -> Callable[[str], float]:
        def parse(text: str) -> float:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
            if not test(value):
                raise argparse.ArgumentTypeError(f"{name} must {allowed}, got {text!r}")
            return value

        return parse

    return factory


#: A finite number > 0.
finite_positive = _float_where(lambda v: math.isfinite(v) and v > 0, "be a finite number > 0")
#: A number in the open interval (0, 1).
probability = _float_where(lambda v: 0.0 < v < 1.0, "lie in (0, 1)")
#: A number in [0, 1) (a total-variation distance, like a sampler's delta).
slack = _float_where(lambda v: 0.0 <= v < 1.0, "lie in [0, 1)")


def _int_at_least(minimum: int) -> Callable[[str], Callable[[str], int]]:
    def factory(name: str) -> Callable[[str], int]:
        def parse(text: str) -> int:
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
            if value < minimum:
                raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {text!r}")
            return value

        return parse

    return factory


#: An integer >= 1.
positive_int = _int_at_least(1)
#: An integer >= 0.
non_negative_int = _int_at_least(0)


def float_list(text: str, kind, what: str) -> list:
    """Comma-separated values of type ``kind`` (at least one)."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"{what} is empty")
    return values


def grid(text: str) -> list[float]:
    """``--grid``: comma-separated finite radii >= 0."""
    values = float_list(text, float, "--grid")
    if any(not math.isfinite(g) or g < 0 for g in values):
        raise argparse.ArgumentTypeError(f"--grid must hold finite radii >= 0, got {text!r}")
    return values


def k_list(text: str) -> list[int]:
    """``--k`` of ``report``: comma-separated top-k sizes >= 1, sorted, without repeats."""
    ks = float_list(text, int, "--k")
    if any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"--k values must be >= 1, got {text!r}")
    return sorted(set(ks))
