"""Certified accuracy and the average certified radius of a set of signed radii.

The conventions (a signed radius; an input that is not certified is a miss at every ``r``,
``r = 0`` included; the ACR counts it as 0) are stated in :mod:`topk_bounds.report`.
"""

from __future__ import annotations

import numpy as np

from .defaults import DEFAULT_GRID

__all__ = ["DEFAULT_GRID", "certified_accuracy", "average_certified_radius", "step_curve"]

def _as_radius(radius, name: str = "radius") -> np.ndarray:
    """A 1-d float64 copy of ``radius``, rejecting empty input and NaN."""
    r = np.asarray(radius, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {r.shape}")
    if r.size == 0:
        raise ValueError(f"{name} is empty: certified accuracy needs at least one input")
    bad = np.flatnonzero(np.isnan(r))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] is NaN; a radius must be a number (or +-inf)")
    return r


def _as_grid(radii_grid) -> np.ndarray:
    grid = np.asarray(radii_grid, dtype=np.float64)
    if grid.ndim > 1:
        raise ValueError(f"radii_grid must be a number or 1-dimensional, got shape {grid.shape}")
    bad = grid[np.isnan(grid) | (grid < 0)]
    if bad.size:
        raise ValueError(f"radii_grid must hold radii >= 0, got {bad[0]!r}")
    return grid


def certified_accuracy(radius, radii_grid) -> np.ndarray:
    """Fraction of inputs certified with a radius of at least ``r``, for each ``r`` in a grid.

    Parameters
    ----------
    radius : array_like of float, shape (N,)
        Signed radii, one per input, as returned by :func:`topk_bounds.certify`: ``> 0`` is
        certified, ``<= 0`` is not; ``+inf`` is allowed.
    radii_grid : float or array_like of float, shape (M,)
        Radii ``r >= 0`` (``+inf`` allowed) at which to evaluate.

    Returns
    -------
    ndarray of float64, same shape as ``radii_grid``
        ``mean(radius > 0 and radius >= r)`` for each ``r``. Non-increasing in ``r``.

    Raises
    ------
    ValueError
        If ``radius`` is empty, not 1-dimensional or holds NaN, or a grid value is negative or NaN.

    Notes
    -----
    An input that is not certified is a miss at every radius, ``r = 0`` included: the value
    at ``r = 0`` is the fraction certified at all, not the fraction with ``radius >= 0``.

    Examples
    --------
    Four inputs: two certified (0.5 and 1.2), one not (-0.3), and one whose bounds give
    exactly 0, which is not a certificate either.

    >>> certified_accuracy([0.5, 1.2, -0.3, 0.0], [0, 0.5, 1.0, 2.0])
    array([0.5 , 0.5 , 0.25, 0.  ])
    >>> float(certified_accuracy([0.5, 1.2, -0.3, 0.0], 0.75))
    0.25
    """
    r = _as_radius(radius)
    grid = _as_grid(radii_grid)
    certified = np.sort(r[r > 0])
    # Number of certified radii >= g is len - (number strictly below g).
    at_least = certified.size - np.searchsorted(certified, grid, side="left")
    return at_least / r.size


def average_certified_radius(radius) -> float:
    """Mean over all inputs of ``max(radius, 0)``: inputs that are not certified count as 0.

    Parameters
    ----------
    radius : array_like of float, shape (N,)
        Signed radii, as for :func:`certified_accuracy`.

    Returns
    -------
    float
        The average certified radius (ACR, Zhai et al. 2020); ``inf`` if any radius is ``+inf``
        (k >= number of labels).

    Notes
    -----
    The ACR is the area under the certified-accuracy curve:
    ``mean(max(R, 0)) = integral over r >= 0 of mean(R > 0 and R >= r) dr``.

    Examples
    --------
    >>> average_certified_radius([0.5, 1.2, -0.3, 0.0])
    0.425
    """
    r = _as_radius(radius)
    return float(np.mean(np.maximum(r, 0.0)))


def step_curve(radius: np.ndarray, x_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact step curve of certified accuracy on [0, x_max], for ``step(where="pre")``.

    On (x[i-1], x[i]] the accuracy is y[i]: it only drops just after a certified radius.
    """
    certified = np.sort(radius[radius > 0])
    knots = np.unique(certified[certified < x_max])
    x = np.concatenate(([0.0], knots, [x_max]))
    at_least = certified.size - np.searchsorted(certified, x, side="left")
    return x, at_least / radius.size
