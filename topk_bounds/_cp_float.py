"""Clopper-Pearson quantiles in float64 that are *verified* to lie on the safe side.

``scipy.special.betainccinv`` is usually accurate to an ulp, but not always: for n near
1e9 and a handful of successes it can be off by 3e-9 relative. So its answer is only
a candidate. Each candidate ``p`` is moved to the safe side by a margin derived from
the slope of the tail, and accepted only when the binomial tail at ``p``, evaluated
with a bounded error, proves it safe:

* upper bound u of x successes: F(u) = P(Bin(n, u) <= x) <= beta  (so u >= the root);
* lower bound l: G(l) = P(Bin(n, l) >= x) <= beta  (so l <= the root).

If the proof fails, Newton steps on the tail (in logs) polish the candidate and the
margin grows until it succeeds.

Tail evaluation and its error bound
-----------------------------------
* F for x <= ``SMALL_X``: the sum of the binomial terms from j = 0, pmf_0 =
  exp(n log1p(-p)) and pmf_{j+1} = pmf_j (n - j) p / ((j + 1)(1 - p)). With correctly
  rounded basic operations and log1p, exp within an ulp, its relative error is at most
  (2 |n log1p(-p)| + 2 |log F| + 6 x + 8) ulp: a rigorous bound.
* G for x <= ``SMALL_X_G``: the sum upward from j = x plus a geometric bound on the
  terms left out; the same kind of bound.
* otherwise scipy's ``betaincc`` / ``betainc`` (Boost's ibeta), whose relative errors
  are *assumed* to be at most ``BOOST_RTOL_F`` / :func:`boost_rtol_g`;
  ``tests/test_bounds.py`` measures them against the mpmath reference for n up to
  1e12 and checks a safety factor of at least 10.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from . import _float as fl

SMALL_X = 128
SMALL_X_G = 4096
#: Relative error assumed for scipy.special.betaincc (the upper tail F) beyond SMALL_X:
#: measured below 1e-13 for n up to 1e12, assumed 3.6e-12.
BOOST_RTOL_F = 2.0**-38
#: Relative error assumed for scipy.special.betainc (the lower tail G) beyond SMALL_X_G:
#: BOOST_G_COEF * (sqrt(x) + 1) ulp. It grows with the count: measured up to
#: 8 sqrt(x) ulp (3.3e-10 at x = 1e11), assumed 16 times that.
BOOST_G_COEF = 128.0
_MAX_ROUNDS = 60
_POLISH = 1  # Newton steps before the first proof attempt


def _log_density(a, b, p):
    """log of the Beta(a, b) density at p (for Newton steps only: modest accuracy)."""
    return (a - 1.0) * np.log(p) + (b - 1.0) * np.log1p(-p) - special.betaln(a, b)


_BIG = 2.0**600  # exact power-of-two rescaling keeps the term products in range
_LOG_BIG = 600.0 * np.log(2.0)


def _cdf_small(x, n, p):
    """P(Bin(n, p) <= x) for x <= SMALL_X by direct summation, with its error bound.

    Terms are relative to pmf_0; when they grow past 2**600 the running term and sum
    are scaled down by that exact power of two and the scale is kept in logs.
    """
    log_p0 = n * np.log1p(-p)
    odds = p / (1.0 - p)
    term = np.ones_like(p)
    total = np.ones_like(p)
    log_scale = np.zeros_like(p)
    for j in range(int(x.max()) if x.size else 0):
        active = j < x
        term = np.where(active, term * ((n - j) / (j + 1.0)) * odds, term)
        total = np.where(active, total + term, total)
        big = term > _BIG
        if big.any():
            term, total = np.where(big, term / _BIG, term), np.where(big, total / _BIG, total)
            log_scale = log_scale + np.where(big, _LOG_BIG, 0.0)
    log_value = log_p0 + log_scale + np.log(total)
    with np.errstate(under="ignore"):
        value = np.exp(log_value)
    rtol = (2.0 * np.abs(log_p0) + 2.0 * log_scale + 2.0 * np.abs(log_value) + 6.0 * x + 8.0) * fl.ULP
    return value, rtol


def _sf_small(x, n, p, extra: int = 1200):
    """P(Bin(n, p) >= x) for 1 <= x <= SMALL_X_G by direct summation upward from j = x.

    The terms after j = x shrink at least geometrically once their ratio is below 1;
    the sum stops after ``extra`` terms and adds a geometric bound on the rest, so the
    value returned is never below the exact tail by more than its rounding bound.
    The term at j = x is carried as a mantissa and an exact power-of-two scale.
    """
    log_p0 = n * np.log1p(-p)
    odds = p / (1.0 - p)
    term = np.ones_like(p)
    log_scale = np.zeros_like(p)
    for j in range(int(x.max())):
        term = np.where(j < x, term * ((n - j) / (j + 1.0)) * odds, term)
        big, small = term > _BIG, term < 1.0 / _BIG
        if big.any() or small.any():
            with np.errstate(over="ignore", under="ignore"):
                term = np.where(big, term / _BIG, np.where(small, term * _BIG, term))
            log_scale = log_scale + np.where(big, _LOG_BIG, np.where(small, -_LOG_BIG, 0.0))
    total = term.copy()
    j = x.copy()
    ratio = np.zeros_like(p)
    live = np.ones(p.shape, dtype=bool)  # per element, so a row never depends on its batch
    for _ in range(extra):
        new_ratio = ((n - j) / (j + 1.0)) * odds
        ratio = np.where(live, new_ratio, ratio)
        term = np.where(live, np.where(j < n, term * new_ratio, 0.0), term)
        total = np.where(live, total + term, total)
        j += 1.0
        live &= ~((term <= 1e-18 * total) & (ratio < 0.5))
        if not live.any():
            break
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = np.where(ratio < 1.0, term * ratio / (1.0 - ratio), np.inf)
        total = total + rest
        log_value = log_p0 + log_scale + np.log(total)
    with np.errstate(under="ignore"):
        value = np.exp(log_value)
    rtol = (2.0 * np.abs(log_p0) + 2.0 * np.abs(log_scale) + 2.0 * np.abs(log_value)
            + 6.0 * (x + extra) + 8.0) * fl.ULP
    return value, rtol


def _tail(kind: str, x, n, p):
    """The tail that must stay <= beta (F for 'upper', G for 'lower') and its error bound."""
    if kind == "upper":
        small = x <= SMALL_X
        value = np.empty_like(p)
        rtol = np.full_like(p, BOOST_RTOL_F)
        if small.any():
            value[small], rtol[small] = _cdf_small(x[small], n[small], p[small])
        big = ~small
        if big.any():
            value[big] = special.betaincc(x[big] + 1.0, n[big] - x[big], p[big])
        return value, rtol
    small = x <= SMALL_X_G
    value = np.empty_like(p)
    rtol = boost_rtol_g(x)
    if small.any():
        value[small], rtol[small] = _sf_small(x[small], n[small], p[small])
    big = ~small
    if big.any():
        value[big] = special.betainc(x[big], n[big] - x[big] + 1.0, p[big])
    return value, rtol


def boost_rtol_g(x):
    """The relative error assumed for ``scipy.special.betainc(x, n - x + 1, p)``."""
    return BOOST_G_COEF * (np.sqrt(x) + 1.0) * fl.ULP


def _slope(kind: str, x, n, p, value):
    """|d log T / d log p| at p, where T(p) = value (the tail's slope in logs)."""
    if kind == "upper":
        log_dens = _log_density(x + 1.0, n - x, p)
    else:
        log_dens = _log_density(x, n - x + 1.0, p)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        slope = np.exp(log_dens + np.log(p) - np.log(value))
    return np.where(np.isfinite(slope) & (slope > 0), slope, 1.0)


def _newton(kind: str, x, n, p, beta: float):
    """One Newton step on log T(p) = log beta in log p; returns (new p, |dlogT/dlogp|)."""
    value, _ = _tail(kind, x, n, p)
    slope = _slope(kind, x, n, p, value)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = (np.log(value) - np.log(beta)) / slope
    step = np.where(np.isfinite(step), np.clip(step, -0.5, 0.5), 0.0)
    sign = 1.0 if kind == "upper" else -1.0
    return np.clip(p * np.exp(sign * step), 5e-324, 1.0), slope


def _rtol_guess(kind: str, x, n, p, beta: float):
    """The error bound :func:`_tail` will report near the root (sizes the first margin)."""
    if kind == "upper":
        small, big_rtol, extra = x <= SMALL_X, BOOST_RTOL_F, 0.0
    else:
        small, big_rtol, extra = x <= SMALL_X_G, boost_rtol_g(x), 1200.0
    with np.errstate(divide="ignore"):  # p = 1 gives an infinite guess: the margin saturates
        direct = (2.0 * np.abs(n * np.log1p(-p)) + 2.0 * abs(np.log(beta)) + 6.0 * (x + extra) + 8.0) * fl.ULP
    return np.where(small, direct, big_rtol)


def safe_quantile(kind: str, x, n, beta: float):
    """Verified-safe Clopper-Pearson bounds for 0 < x < n (float arrays of equal shape).

    ``kind='upper'`` returns values >= the exact upper bound, ``kind='lower'`` values
    <= the exact lower bound. Each element is handled on its own, so a result never
    depends on the other elements of the batch.
    """
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    if kind == "upper":
        p = special.betainccinv(x + 1.0, n - x, beta)
        sign, small = 1.0, x <= SMALL_X
    else:
        p = special.betaincinv(x, n - x + 1.0, beta)
        sign, small = -1.0, x <= SMALL_X_G
    p = np.clip(p, 5e-324, 1.0)
    # scipy's inverse can be far off (3e-8 for small x at n ~ 1e9, 0.4% for x = 999):
    # polish small x up front, where the tail is a cheap exact sum; elsewhere it is
    # usually good to ~1e-14, so it is verified first and polished only if that fails
    slope = _slope(kind, x, n, p, np.full_like(p, beta))
    if small.any():
        p[small], slope[small] = _newton(kind, x[small], n[small], p[small], beta)
    out = np.empty_like(p)
    todo = np.arange(p.size)
    grow = np.ones_like(p)
    best = np.full_like(p, 1.0 if sign > 0 else 0.0)  # the tightest proven so far
    for _ in range(_MAX_ROUNDS):
        xs, ns, ps = x[todo], n[todo], p[todo]
        margin = grow[todo] * (2.0 * _rtol_guess(kind, xs, ns, ps, beta) / slope[todo] + 4.0 * fl.ULP)
        cand = ps * (1.0 + sign * margin)
        cand = np.clip(fl.up(cand) if sign > 0 else fl.down(cand), 0.0, 1.0)
        cv, cr = _tail(kind, xs, ns, cand)
        # T(cand) <= cv (1 + cr) <= beta proves cand safe (one more ulp for the product);
        # it is accepted only if also tight: within a few margins of the root, not a
        # safe but loose start (scipy's inverse can be off by 0.4% on either side)
        proven = fl.up(cv + fl.up(cv * cr)) <= beta
        tight = cv >= beta * (1.0 - 8.0 * margin * slope[todo])
        edge = (cand == 1.0) if sign > 0 else (cand == 0.0)
        done = (proven & tight) | edge
        pick = np.minimum if sign > 0 else np.maximum
        best[todo] = np.where(proven, pick(best[todo], cand), best[todo])
        out[todo[done]] = cand[done]
        todo, margin, proven = todo[~done], margin[~done], proven[~done]
        if todo.size == 0:
            return out
        # polish again; widen the margin only where the proof failed although the
        # candidate had stopped moving
        old = p[todo]
        p[todo], slope[todo] = _newton(kind, x[todo], n[todo], old, beta)
        settled = np.abs(p[todo] / old - 1.0) <= margin
        grow[todo] *= np.where(settled & ~proven, 2.0, 1.0)
    out[todo] = best[todo]  # never tight: the tightest proven (at worst the trivial bound)
    return out
