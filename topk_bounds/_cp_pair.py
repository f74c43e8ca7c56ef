"""Both Clopper-Pearson bounds of a count from one proven tail evaluation (the fast path).

For x successes out of n (``2 <= x <= n - 1``) and a level ``beta <= 1/2``, the lower
bound of x and its complement ``1 - lower(x) = upper(n - x)`` are the same root ``w*`` of

    T(w) = I_w(x, n - x + 1) = P(Bin(n, w) >= x) = P(Bin(n, 1 - w) <= n - x) = beta,

so one float point with ``T <= beta`` proven gives both: it lies at or below ``w*``, so
it is a lower bound, and its distance to 1 is at least ``1 - w*``, a complement (an
upper bound of ``n - x``). :func:`safe_pair` finds such a point next to the root:

1. *Which float.* The point is held as ``w`` itself, or as ``c = 1 - w`` where the root
   lies within 2**-10 of 1, and where ``n - x <= SMALL_X`` with ``x > SMALL_X`` (there F's
   exact sum of ``n - x`` terms is the proof: Boost's errors were measured with both of
   its parameters above ``SMALL_X``, and G's exact sum serves ``x <= SMALL_X``). ``w``
   gives lower = w and complement = 1 - w (exact for w >= 1/2 by Sterbenz's lemma; points
   in [1/4, 1/2) are moved onto the floats whose complement is a float, see
   :func:`_exact_complement`); ``c`` gives complement = c and lower = 1 - c rounded down.
   A point z is accepted only where ``1 - z >= 2**-11``, so the other bound is within
   2**-42 relative of a float point evaluated exactly: both keep full relative precision.
2. *Start.* The saddlepoint (Lugannani-Rice, in Barndorff-Nielsen's r* form)
   approximation of the Beta tail, ``T ~ Phi(r*)``, ``r* = r + log(u / r) / r`` with
   ``r = sign(w - x/N) sqrt(2 N KL(x/N || w))`` and ``u = (N w - x) sqrt(N / (x B))``
   (``B = n - x + 1``, ``N = n + 1``), solved for ``r* = Phi^{-1}(beta)`` by three Newton
   steps in ``logit(w)``: its log-tail is typically within 1e-7 (n = 1e5) to 1e-10
   (n = 1e12) of ``log beta``, at worst about 0.02 for beta >= 1e-6.
3. *Step.* At the point, T is evaluated (as a proof, with its error bound, by
   :func:`topk_bounds._cp_float.tail_pair`); ``log T`` is concave in ``s = logit(w)``
   (the tail of the log-concave density ``w^x (1 - w)^B / B(x, B)`` of ``s``), and its
   first four derivatives in s follow from T and that density in closed form, so the
   inverse Taylor series to fourth order (Newton far from the root) lands within about
   (log T - log beta)^5 of the root. The density is computed without ``betaln`` (whose
   error reaches 4e-9 at n = 1e5): ``log(w^a (1 - w)^b / B(a, b)) =
   log sqrt(a b / (2 pi N)) - (Stirling corrections) - N KL(a/N || w)``.
4. *Candidate and proof.* The next point is that estimate moved to the safe side by a
   margin of twice the tail's error bound (over the slope) plus the float spacing of the
   point, and is accepted when its tail proves ``T <= beta`` *and* lies within 8 margins'
   worth of beta (tight, as in :mod:`topk_bounds._cp_float`). Usually the second
   evaluation settles a bound: two tail evaluations for both bounds of a count, against
   scipy's inverse plus one proof for each of them before.

An element that is not settled after ``_ROUNDS`` evaluations, and every level above 1/2,
is left to :func:`topk_bounds._cp_float.safe_quantile` (two independent solves). Every
element is computed on its own: a result never depends on the rest of its batch.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from . import _float as fl
from ._cp_float import SMALL_X, safe_quantile, tail_pair

__all__ = ["safe_pair"]

#: Tail evaluations per element before the general solver takes over.
_ROUNDS = 4
#: The root is held as ``c = 1 - w`` where the start puts it within this of 1 ...
_C_REP = 2.0**-10
#: ... and a point held as ``w`` is accepted only if ``1 - w`` is at least this.
_C_ACCEPT = 2.0**-11
_U_C_REP = float(np.log1p(-_C_REP) - np.log(_C_REP))  # logit(1 - _C_REP)
_LOG_2PI = float(np.log(2.0 * np.pi))
_ULP = fl.ULP
#: The points evaluated stay inside [5e-324, 1 - 2**-53].
_Z_MIN, _Z_MAX = 5e-324, 1.0 - 2.0**-53


def _stirling_corr(z):
    """``lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2)``, within 2e-15 absolute."""
    out = np.empty_like(z)
    big = z >= 10.0
    if big.any():
        r = 1.0 / z[big]
        r2 = r * r
        out[big] = r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 * (
            1 / 1188 - r2 * (691 / 360360 - r2 / 156))))))
    small = ~big
    if small.any():
        zs = z[small]
        out[small] = special.gammaln(zs) - (zs - 0.5) * np.log(zs) + zs - 0.5 * _LOG_2PI
    return out


def _log_density_parts(a, b):
    """``(a / N, log(a^a b^b / (N^N B(a, b))))`` with ``N = a + b``: the mode's share and the
    log of ``z^a (1 - z)^b / B(a, b)`` at ``z = a / N``, from Stirling's series (no
    cancellation of the ``n log n`` terms of ``betaln``)."""
    total = a + b
    mode = (0.5 * (np.log(a) + np.log(b) - np.log(total) - _LOG_2PI)
            - (_stirling_corr(a) + _stirling_corr(b) - _stirling_corr(total)))
    return a / total, mode


def _log_density(a, b, z, share, mode):
    """``log(z^a (1 - z)^b / B(a, b))`` at the float z: ``mode - N KL(share || z)``, with
    ``N KL = -a log1p(d / share) - b log1p(-d / (1 - share))``, ``d = z - share``
    (``share`` is a/N rounded; the expression is stationary there, so the rounding is
    second order). Within about (a + |result|) ulp (measured against mpmath)."""
    d = z - share
    r1, r2 = d / share, -d / (1.0 - share)
    # log1p of a ratio near -1 would lose the digits of z (z far below the mode)
    t1 = np.where(np.abs(r1) <= 0.5, np.log1p(r1), np.log(z) - np.log(share))
    t2 = np.where(np.abs(r2) <= 0.5, np.log1p(r2), np.log1p(-z) - np.log1p(-share))
    return mode + a * t1 + b * t2


def _start(x, b, beta: float, iterations: int = 3):
    """logit of the start: the root of the r* approximation of I_w(x, b) = beta."""
    total = x + b
    share = x / total
    z_beta = special.ndtri(beta)
    scale = np.sqrt(x * b / total)  # sqrt(N share (1 - share))
    s = np.log(x) - np.log(b) + z_beta / scale
    for _ in range(iterations):
        w = special.expit(s)
        d = w - share
        kl2 = 2.0 * (-x * np.log1p(d / share) - b * np.log1p(-d / (1.0 - share)))
        r = np.sign(d) * np.sqrt(np.maximum(kl2, 0.0))
        dev = total * w - x
        u = dev * np.sqrt(total / (x * b))
        far = np.abs(r) > 0.05
        log_ratio = np.log(u / r)
        r_star = np.where(far, r + log_ratio / r, r)
        # d r* / ds, from dr/ds = (N w - x) / r and du/ds = N w (1 - w) sqrt(N / (x b))
        dr = np.where(np.abs(r) > 1e-8, dev / r, scale)
        du = total * w * (1.0 - w) * np.sqrt(total / (x * b))
        slope = np.where(far, dr * (1.0 - (log_ratio + 1.0) / (r * r)) + du / (u * r), dr)
        slope = np.where(slope > 0, slope, dr)
        s = np.clip(s + (z_beta - r_star) / slope, -744.0, 36.0)
    return s


def _step(y, g, l1, l2, l3):
    """The change of s that moves log T by ``y``, from its derivatives at the point.

    ``g`` = d log T / ds, and ``l1, l2, l3`` the derivatives of the log density in s.
    Inverse Taylor series to fourth order for |y| < 1/4, Newton otherwise.
    """
    h = l1 - g
    a1 = g
    a2 = g * h / 2.0
    a3 = g * (h * h - g * h + l2) / 6.0
    a4 = g * (h * h * h - 4.0 * g * h * h + g * g * h + 3.0 * h * l2 - g * l2 + l3) / 24.0
    t = y / a1
    series = t - (a2 / a1) * t * t + (2.0 * a2 * a2 - a1 * a3) / (a1 * a1) * t ** 3 \
        + (5.0 * a1 * a2 * a3 - a1 * a1 * a4 - 5.0 * a2 ** 3) / a1 ** 3 * t ** 4
    return np.where(np.abs(y) < 0.25, series, t)


def _exact_complement(z, c_rep, up: bool):
    """Points held as w in [1/4, 1/2) moved (down, or ``up``) onto the floats whose
    complement 1 - w is a float too (multiples of 2**-53; at most 2**-51 relative):
    Boost's ibeta works with 1 - w rounded, which at equal parameters costs it up to 6e-5
    (see :func:`topk_bounds._cp_float._symmetric_trap`), and the complement 1 - w is exact."""
    snap = ~c_rep & (z >= 0.25) & (z < 0.5)
    if not snap.any():
        return z
    zs = z[snap]
    c = 1.0 - zs
    if up:  # 1 - c >= z
        c = np.where(1.0 - c < zs, fl.down(c), c)
    else:  # 1 - c <= z
        c = np.where(1.0 - c > zs, fl.up(c), c)
    out = z.copy()
    out[snap] = 1.0 - c
    return out


def safe_pair(x, n, beta: float):
    """``(lower(x), 1 - lower(x))`` for float arrays ``2 <= x <= n - 1``: lower bounds
    rounded down and complements rounded up, both proven by one tail evaluation with a
    bounded error and tight (see the module docstring).

    Assumes ``LEVEL_MIN <= beta < 1`` and ``n <= N_MAX`` (checked by the callers); levels
    above 1/2 and elements the fast path does not settle go to
    :func:`topk_bounds._cp_float.safe_quantile`, which raises ``ArithmeticError`` for a
    bound it cannot find.
    """
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    if x.size and (x.min() < 2 or np.any(x > n - 1)):
        raise ValueError("safe_pair needs 2 <= x <= n - 1")
    lower = np.full(x.shape, np.nan)
    comp = np.full(x.shape, np.nan)
    if x.size:
        with np.errstate(all="ignore"):  # far from the root tails vanish or overflow: handled
            if beta <= 0.5:
                rest = _fast(x, n, beta, lower, comp, up=False)
            else:
                # 1 - I_w(x, n - x + 1) = I_c(n - x + 1, x) with c = 1 - w: the complement
                # is the root of the mirrored count at the exact level 1 - beta (Sterbenz),
                # and a point proven at or above it is a complement; 1 - it a lower bound
                rest = _fast(n - x + 1.0, n, 1.0 - beta, comp, lower, up=True)
    else:
        rest = np.arange(0)
    if rest.size:  # as before the fast path: the complement, and lower bounds below 1/2 directly
        xr, nr = x[rest], n[rest]
        comp[rest] = up = safe_quantile("upper", nr - xr, nr, beta)
        low = np.maximum(fl.down(1.0 - up), 0.0)
        direct = low < 0.5
        if direct.any():
            low[direct] = np.maximum(low[direct], safe_quantile("lower", xr[direct], nr[direct], beta))
        lower[rest] = low
    return lower, comp


def _fast(x, n, beta, lower, comp, up: bool):
    """The fast path of :func:`safe_pair`: a float point w next to the root of
    I_w(x, n - x + 1) = beta proven at or below it (``up`` False: ``lower`` gets w rounded
    down, ``comp`` gets 1 - w rounded up) or at or above it (``up`` True: ``lower`` gets w
    rounded up, ``comp`` 1 - w rounded down; the caller passes its arrays swapped, for
    the mirrored count). Returns the indices it leaves."""
    b = n - x + 1.0
    total = x + b
    s0 = _start(x, b, beta)
    s0 = np.where(np.isfinite(s0), s0, np.log(x) - np.log(b))
    # the representation: c = 1 - w near 1, and where only F's direct sum can prove
    # (Boost's errors were measured with both parameters above SMALL_X; G's sum serves
    # x <= SMALL_X): a point is held as w only where n - x > SMALL_X or x <= SMALL_X
    small_x, small_y = x <= SMALL_X, n - x <= SMALL_X
    c_rep = (s0 > _U_C_REP) | (small_y & (~small_x | (s0 > 0.0)))
    sign = np.where(c_rep, -1.0, 1.0)  # z = expit(sign * s), s = logit(w)
    z_all = _exact_complement(np.clip(special.expit(sign * s0), _Z_MIN, _Z_MAX), c_rep, up)
    side = 1.0 if up else -1.0  # the margin moves the point up (in w) or down
    # the density in the representation's variable: z^a (1 - z)^b' / B
    a_z = np.where(c_rep, b, x)
    b_z = np.where(c_rep, x, b)
    share, mode = _log_density_parts(a_z, b_z)
    log_beta = float(np.log(beta))
    margin = np.zeros(x.shape)
    todo = np.arange(x.size)
    for round_ in range(_ROUNDS):
        cr, z = c_rep[todo], z_all[todo]
        value, rtol, log_value = tail_pair(cr, x[todo], n[todo], z)
        log_dens = _log_density(a_z[todo], b_z[todo], z, share[todo], mode[todo])
        if round_:
            # T <= beta proven: the point is a lower bound and 1 - it a complement (0 is
            # never tight, so never accepted; a betainc value below BOOST_MIN has rtol =
            # inf), tight: T within 8 margins' worth of beta, and the float held keeps the
            # other bound precise: 1 - z at least _C_ACCEPT
            if up:  # T >= beta proven: the point is at or above the root
                proven = fl.down(value - fl.up(value * rtol)) >= beta
            else:
                proven = fl.up(value + fl.up(value * rtol)) <= beta
            with np.errstate(over="ignore", invalid="ignore"):
                spread = 8.0 * margin[todo] * np.exp(log_dens - log_value)
            tight = (proven & (np.abs(value - beta) <= beta * spread) & (spread <= 0.25)
                     & (margin[todo] < 1e-3) & (z <= 1.0 - _C_ACCEPT))
            if tight.any():
                k, zk = todo[tight], z[tight]
                ck = cr[tight]
                toward, away = (fl.up, fl.down) if up else (fl.down, fl.up)
                lower[k] = np.where(ck, toward(1.0 - zk), zk)
                comp[k] = np.where(ck, zk, np.where(zk >= 0.5, 1.0 - zk, away(1.0 - zk)))
                keep = ~tight
                todo, cr, z = todo[keep], cr[keep], z[keep]
                value, rtol, log_value, log_dens = value[keep], rtol[keep], log_value[keep], log_dens[keep]
            if todo.size == 0 or round_ == _ROUNDS - 1:
                return todo
        sg = sign[todo]
        nt = total[todo]
        dev = nt * (z - share[todo])  # N z - a: the density's slope in s is -sign * dev
        # for steering only: T = 0 (underflow) or the flag T > 1/2 of G's sum
        log_value = np.where(np.isfinite(log_value), log_value,
                             np.where(log_value > 0, np.log(0.5),
                                      log_dens - np.log(np.maximum(-sg * dev, 1.0))))
        g = np.exp(log_dens - log_value)  # d log T / ds
        # the next point: the root estimated from here, moved to the safe side (in w) by
        # the margin: twice the error bound over the slope, plus two float spacings of z
        wz = np.where(cr, 1.0 - z, z)
        l2 = -nt * wz * (1.0 - wz)
        step = _step(log_beta - log_value, g, -sg * dev, l2, l2 * (1.0 - 2.0 * wz))
        m = (2.0 * np.minimum(rtol, 1e-3) + 8.0 * _ULP) / g + 2.0 * np.spacing(z) / (z * (1.0 - z))
        move = step + side * m
        ok = np.isfinite(move) & np.isfinite(m)
        # the new point from z itself, expit(s + move) = z e / (1 + z (e - 1)) with
        # e = exp(sign move): to the precision of z (the logit s carries less); very large
        # moves through the logit
        fine = ok & (np.abs(move) < 30.0)
        e = sg * np.where(fine, move, 0.0)
        new = z * np.exp(e) / (1.0 + z * np.expm1(e))
        if not fine.all():
            s_here = sg * (np.log(z) - np.log1p(-z))
            far = special.expit(sg * np.where(ok, s_here + move, s_here - 1.0))
            new = np.where(fine, new, far)
        z_all[todo] = _exact_complement(np.clip(new, _Z_MIN, _Z_MAX), cr, up)
        margin[todo] = np.where(ok, m, 1.0)
    return todo  # pragma: no cover - the loop returns
