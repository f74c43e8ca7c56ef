"""Directed (safe-side) float64 evaluation of the special functions the certificate needs.

Every function here returns a value on a *known side* of the exact result, so that the
radius built from them can only be understated. Each rests on one stated accuracy bound
of a scipy special function; ``tests/test_bounds.py`` measures those functions
against mpmath and checks that the measured error is well inside the bound used here.

========================  ===========================  ==================================
scipy function            measured max error           bound assumed here
========================  ===========================  ==================================
``ndtri``                 < 3 ulp relative             ``NDTRI_RTOL`` = 32 ulp
``log_ndtr(x)``, x <= 0   < 3 ulp relative             ``LOG_NDTR_RTOL`` = 32 ulp
``log_ndtr(x)``, x > 0    < 1 ulp * (1 + x**2)         ``LOG_NDTR_RTOL * (1 + x**2)``
========================  ===========================  ==================================

:func:`mills_upper` / :func:`mills_lower` bound phi / Phi from these and ``exp`` (within an
ulp); ``tests/test_radius.py`` checks them against mpmath on [-40, 40].
"""

from __future__ import annotations

import numpy as np
from scipy import special

ULP = 2.0**-52
TINY = 1e-300
NDTRI_RTOL = 32 * ULP
LOG_NDTR_RTOL = 32 * ULP

_POS_INF = np.inf
_NEG_INF = -np.inf


def up(x):
    """The next float above ``x`` (a one-ulp safety step for a correctly rounded op)."""
    return np.nextafter(x, _POS_INF)


def down(x):
    """The next float below ``x``."""
    return np.nextafter(x, _NEG_INF)


def _ndtri(p):
    """scipy's ndtri, with one Newton step in logs below 1e-290 where it is inaccurate."""
    z = special.ndtri(p)
    tiny = (p > 0) & (p < 1e-290)
    if np.any(tiny):
        zt, pt = z[tiny], p[tiny]
        ratio = np.exp(-0.5 * zt * zt - 0.5 * np.log(2 * np.pi) - special.log_ndtr(zt))
        z[tiny] = zt - (special.log_ndtr(zt) - np.log(pt)) / ratio
    return z


def ndtri_upper(p):
    """An upper bound on Phi^{-1}(p), elementwise; -inf at p = 0, +inf at p = 1."""
    p = np.asarray(p, dtype=float)
    z = _ndtri(p)
    with np.errstate(invalid="ignore"):
        bumped = up(z + (NDTRI_RTOL * np.abs(z) + TINY))
    return np.where(np.isfinite(z), bumped, z)


def ndtri_lower(p):
    """A lower bound on Phi^{-1}(p), elementwise."""
    p = np.asarray(p, dtype=float)
    z = _ndtri(p)
    with np.errstate(invalid="ignore"):
        bumped = down(z - (NDTRI_RTOL * np.abs(z) + TINY))
    return np.where(np.isfinite(z), bumped, z)


def log_ndtr_err(x, value):
    """A bound on |log_ndtr(x) - log Phi(x)| for the computed ``value`` (x exact)."""
    scale = 1.0 + np.square(np.maximum(x, 0.0))
    return LOG_NDTR_RTOL * scale * np.abs(value) + TINY


def log_ndtr_lower(x):
    """A lower bound on log Phi(x) at the *exact* real number that ``x`` rounds.

    ``x`` is the rounded result of one float operation, so the exact argument lies within
    half an ulp of it; the argument is first stepped one ulp down.
    """
    xd = down(np.asarray(x, dtype=float))
    v = special.log_ndtr(xd)
    return down(v - log_ndtr_err(xd, v))


def log_ndtr_upper(x):
    """An upper bound on log Phi(x) at the exact value that ``x`` rounds (see above)."""
    xu = up(np.asarray(x, dtype=float))
    v = special.log_ndtr(xu)
    return np.minimum(up(v + log_ndtr_err(xu, v)), 0.0)


_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def mills_upper(x):
    """An upper bound on lambda(x) = phi(x) / Phi(x) at the float x (0 at +inf).

    lambda = exp(log phi - log Phi): -x**2 / 2 - log sqrt(2 pi) carries (x**2 / 2 + 1) * 3
    ulp absolute, log Phi the bound of :func:`log_ndtr_lower`, the subtraction one ulp of
    the result and exp one ulp relative.
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        log_phi = -0.5 * x * x - _LOG_SQRT_2PI
        err = (0.5 * x * x + 1.0) * 3.0 * ULP
        e = log_phi - log_ndtr_lower(x)
        e = up(e + err + np.abs(e) * ULP)
        return up(np.exp(e) * (1.0 + 2.0 * ULP))


def mills_lower(x):
    """A lower bound on lambda(x) = phi(x) / Phi(x) at the float x (see :func:`mills_upper`)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        log_phi = -0.5 * x * x - _LOG_SQRT_2PI
        err = (0.5 * x * x + 1.0) * 3.0 * ULP
        e = log_phi - log_ndtr_upper(x)
        e = down(e - err - np.abs(e) * ULP)
        return np.maximum(down(np.exp(e) * (1.0 - 2.0 * ULP)), 0.0)
