"""Proven lower bounds on roots s_t close to 0, with full relative precision.

The root s_t of h(s) = log Phi(z_a - s) - log Phi(z_B + s) + log t (z_a = Phi^{-1}(a),
z_B = Phi^{-1}(B_t); t = 1 is the closed form s_1 = (z_a - z_B) / 2) is found by
:mod:`topk_bounds.radius` from float enclosures of z_a and z_B. Their widths (the ndtri
error model, ``_float.NDTRI_RTOL`` times |z|) and the error bound of ``log_ndtr`` leave an
absolute uncertainty of about 1e-14 (1 + |z|) in s: fine for s of order 1, but for a root
near 0 (a near tie, e.g. B_t close to t a) it is a large *relative* error.

Here the same inequality is proven without evaluating z_a or z_B to full precision. With
lambda = phi / Phi (the derivative of log Phi), for s >= 0

    h(s) = log(t a / B) - int_{z_a - s}^{z_a} lambda - int_{z_B}^{z_B + s} lambda,

and for s = -w < 0 the two integrals (over [z_a, z_a + w] and [z_B - w, z_B]) are added.
The position of each window is uncertain only by the width of the z enclosure, and moving
a window of length |s| by dz changes its integral by at most |s| dz (|lambda'| < 1), a
relative error of order dz, not dz / s.

* log(t a / B) is computed from a and the exact partial sum B (TwoSum, TwoProduct):
  near a tie as log1p((t a - B) / B), where t a - B is exact up to terms of order u^2.
* lambda is decreasing and convex (Sampford 1953, for the reflected hazard rate), so
  an integral over a window is at most the composite trapezoid rule of ``PANELS`` panels
  (upper bounds of lambda at the window placed as far left as its enclosure allows) and at
  least the composite midpoint rule (placed as far right); the rule's own error is about
  s^3 lambda'' / (12 PANELS^2), negligible for the small s this module is used for.

A candidate s is accepted only when the resulting lower bound on h(s) is positive, which
proves s < s_t. Inputs are scaled by an exact power of two when tiny, so that the
error-free transformations cannot underflow.
"""

from __future__ import annotations

import numpy as np

from . import _float as fl

__all__ = ["near_tie_roots"]

#: Panels of the composite trapezoid / midpoint rules.
PANELS = 8
#: Candidates tried per element (Newton on the proven bound, then backing off).
_ROUNDS = 6
#: Relative distance below the bound's root that each Newton step aims for.
_AIM = 1e-12

U = fl.ULP / 2  # unit roundoff of float64
_SPLIT = 134217729.0  # 2**27 + 1, Dekker's splitting constant
_SCALE = 2.0**600
_TINY = 2.0**-1000


def _two_sum(x, y):
    s = x + y
    bp = s - x
    return s, (x - (s - bp)) + (y - bp)


def _split(v):
    c = _SPLIT * v
    hi = c - (c - v)
    return hi, v - hi


def _two_product(x, y):
    p = x * y
    xh, xl = _split(x)
    yh, yl = _split(y)
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def _compensated_partial_sums(b):
    """Partial sums of the columns of b (N, k), as hi + lo with an error bound on lo."""
    hi = np.empty_like(b)
    lo = np.zeros_like(b)
    err = np.zeros_like(b)
    hi[:, 0] = b[:, 0]
    acc_lo = np.zeros(b.shape[0])
    acc_err = np.zeros(b.shape[0])
    acc = b[:, 0].copy()
    for j in range(1, b.shape[1]):
        acc, e = _two_sum(acc, b[:, j])
        acc_lo = acc_lo + e
        acc_err = acc_err + 2.0 * U * np.abs(acc_lo)
        hi[:, j], lo[:, j], err[:, j] = acc, acc_lo, acc_err
    return hi, lo, err


def _log_ratio_lower(a, t, hi, lo, err):
    """A lower bound on log(t a / B) for B in [hi + lo - err, hi + lo + err] (all > 0)."""
    p, e = _two_product(t, a)
    r = p / hi
    near = (r >= 0.5) & (r <= 1.5)
    out = np.empty_like(a)
    if near.any():
        pn, en, hn, ln, rn = p[near], e[near], hi[near], lo[near], err[near]
        d = (pn - hn) + (en - ln)  # pn - hn exact (Sterbenz)
        d_err = 2.0 * U * (np.abs(en) + np.abs(ln) + np.abs(d)) + rn + _TINY
        num = d - d_err  # <= t a - B for every B in the enclosure
        x = num / hn
        rel = 2.0 * (np.abs(ln) + rn) / hn + 4.0 * U
        rho = fl.down(x - np.abs(x) * rel)  # <= (t a - B) / B
        v = np.log1p(rho)  # rho > -1: r >= 1/2 up to a few ulps
        out[near] = fl.down(v - 4.0 * U * np.abs(v) - _TINY)
    far = ~near
    if far.any():
        pf, ef, hf, lf, rf = p[far], e[far], hi[far], lo[far], err[far]
        lp, lb = np.log(pf), np.log(hf)
        v = lp - lb
        slack = 4.0 * U * (np.abs(lp) + np.abs(lb) + np.abs(v)) + 2.0 * (np.abs(ef) / pf + (np.abs(lf) + rf) / hf)
        out[far] = fl.down(v - slack - 4.0 * U)
    return out


def _offsets(length, m):
    """m + 1 increasing offsets from 0 to ``length`` (inclusive), shape (M, m + 1).

    A window is integrated in its own coordinate v (the point is base + v or base - v):
    the window's length is then exact, which float ends near |z| ~ 1 could not give
    for a length of 1e-9.
    """
    frac = np.arange(m + 1) / m
    v = length[:, None] * frac[None, :]
    v[:, 0], v[:, -1] = 0.0, length
    return np.maximum.accumulate(v, axis=1)


def _trapezoid_upper(base, sign, length):
    """An upper bound on the integral of lambda(base + sign * v) over v in [0, length]."""
    v = _offsets(length, PANELS)
    points = base[:, None] + sign * v
    lam = fl.mills_upper(fl.down(points))  # lambda decreases: bound it a hair to the left
    widths = fl.up(np.diff(v, axis=1))
    total = np.sum(widths * (lam[:, :-1] + lam[:, 1:]) * 0.5, axis=1)
    return fl.up(total * (1.0 + (2 * PANELS + 4) * U)), lam[:, 0], lam[:, -1]


def _midpoint_lower(base, sign, length):
    """A lower bound on the integral of lambda(base + sign * v) over v in [0, length].

    On each panel with centre c (the float nearest the exact centre), convexity gives
    lambda(x) >= lambda(c) + lambda'(c) (x - c), and |lambda'| < 1, so the panel's
    integral is at least its width times lambda(c) - |c - exact centre|.
    """
    v = _offsets(length, PANELS)
    mid_v = 0.5 * (v[:, :-1] + v[:, 1:])
    centre = base[:, None] + sign * mid_v
    lam = fl.mills_lower(centre) - (U * (np.abs(centre) + 2.0 * mid_v) + _TINY)
    widths = fl.down(np.diff(v, axis=1))
    total = np.sum(widths * np.maximum(lam, 0.0), axis=1)
    return np.maximum(fl.down(total * (1.0 - (2 * PANELS + 4) * U)), 0.0), lam[:, 0], lam[:, -1]


def _h_lower(s, log_ratio, za_lo, za_hi, zb_lo, zb_hi):
    """A lower bound on h(s), and the slope -h'(s) (an estimate, for Newton).

    s >= 0: the windows [z_a - s, z_a] and [z_B, z_B + s] are placed as far left as
    the enclosures allow (lambda decreases, so that maximizes both integrals); s < 0: the
    windows [z_a, z_a + w] and [z_B - w, z_B] as far right (minimizing them).
    """
    out = np.empty_like(s)
    slope = np.empty_like(s)
    pos = s >= 0
    if pos.any():
        sp = s[pos]
        ia, la, _ = _trapezoid_upper(za_lo[pos], -1.0, sp)
        ib, _, lb = _trapezoid_upper(zb_lo[pos], 1.0, sp)
        out[pos] = fl.down(log_ratio[pos] - ia - ib - 2.0 * U * (np.abs(log_ratio[pos]) + ia + ib))
        slope[pos] = la + lb
    neg = ~pos
    if neg.any():
        w = -s[neg]
        ia, _, la = _midpoint_lower(za_hi[neg], 1.0, w)
        ib, _, lb = _midpoint_lower(zb_hi[neg], -1.0, w)
        out[neg] = fl.down(log_ratio[neg] + ia + ib - 2.0 * U * (np.abs(log_ratio[neg]) + ia + ib))
        slope[neg] = la + lb
    return out, np.maximum(slope, 1e-300)


def near_tie_roots(a, b_sorted, q_a, ts, mask=None):
    """Proven lower bounds on s_t for rows of bounds, -inf where no proof was found.

    Parameters
    ----------
    a : ndarray (M,)
        Lower bounds on p_l, floats in (0, 1).
    b_sorted : ndarray (M, k)
        The k largest upper bounds of the other labels, ascending, each clipped to q_a.
    q_a : ndarray (M,)
        Upper bounds on 1 - a (B_t is the smaller of the partial sum and 1 - a).
    ts : sequence of int
        The t (1-based) to solve for.
    mask : ndarray of bool (M, len(ts)), optional
        Which (row, t) to solve; the others are -inf.

    Returns
    -------
    ndarray (M, len(ts))
    """
    scale = np.where(a < 2.0**-400, _SCALE, 1.0)
    a_s = a * scale
    hi, lo, err = _compensated_partial_sums(b_sorted * scale[:, None])
    cols = np.asarray(ts) - 1
    hi, lo, err = hi[:, cols], lo[:, cols], err[:, cols]
    # B_t is clipped at 1 - a: exactly 1 - a (as hi + lo), or q_a where that is smaller (a
    # certify bound of the complement); either is >= 1 - (the true p_l), which is all the
    # proof needs, and the exact 1 - a keeps a tie at the clip (t a = 1 - a) precise
    c_hi, c_lo = _two_sum(scale, -a_s)
    q_s = q_a * scale
    use_q = (q_s < c_hi) | ((q_s == c_hi) & (c_lo > 0))
    c_hi, c_lo = np.where(use_q, q_s, c_hi)[:, None], np.where(use_q, 0.0, c_lo)[:, None]
    clip = (hi - c_hi) + (lo - c_lo) >= 0  # either choice is sound; this one is precise
    hi = np.where(clip, c_hi, hi)
    lo = np.where(clip, c_lo, lo)
    err = np.where(clip, 0.0, err)
    shape = hi.shape
    a_rep = np.broadcast_to(a[:, None], shape).ravel()
    t_rep = np.broadcast_to(np.asarray(ts, dtype=float)[None, :], shape).ravel()
    hi, lo, err = hi.ravel(), lo.ravel(), err.ravel()
    inv = np.broadcast_to((1.0 / scale)[:, None], shape).ravel()
    out = np.full(hi.size, -np.inf)
    live = hi > 0
    if mask is not None:
        live &= np.asarray(mask, dtype=bool).ravel()
    if not live.any():
        return out.reshape(shape)
    idx = np.flatnonzero(live)
    a_l, t_l = a_rep[idx], t_rep[idx]
    log_ratio = _log_ratio_lower(np.broadcast_to(a_s[:, None], shape).ravel()[idx], t_l,
                                 hi[idx], lo[idx], err[idx])
    b_lo = fl.down(fl.down(hi[idx] + lo[idx] - err[idx]) * inv[idx])
    b_hi = fl.up(fl.up(hi[idx] + lo[idx] + err[idx]) * inv[idx])
    za_lo, za_hi = fl.ndtri_lower(a_l), fl.ndtri_upper(a_l)
    zb_lo, zb_hi = fl.ndtri_lower(np.maximum(b_lo, 0.0)), fl.ndtri_upper(np.minimum(b_hi, 1.0))
    ok = np.isfinite(za_lo) & np.isfinite(za_hi) & np.isfinite(zb_lo) & np.isfinite(zb_hi)
    ok &= np.isfinite(log_ratio)
    idx, log_ratio = idx[ok], log_ratio[ok]
    za_lo, za_hi, zb_lo, zb_hi = za_lo[ok], za_hi[ok], zb_lo[ok], zb_hi[ok]
    if idx.size == 0:
        return out.reshape(shape)
    # first-order start: h(s) ~ log_ratio - s (lambda(z_a) + lambda(z_B))
    s = log_ratio / (fl.mills_upper(za_lo) + fl.mills_upper(zb_lo))
    proven = np.full(idx.size, -np.inf)
    todo = np.arange(idx.size)
    for rnd in range(_ROUNDS):
        h, slope = _h_lower(s[todo], log_ratio[todo], za_lo[todo], za_hi[todo], zb_lo[todo], zb_hi[todo])
        good = h > 0
        proven[todo[good]] = np.maximum(proven[todo[good]], s[todo][good])
        # Newton on the proven bound (its root lies below s_t), aiming 1e-12 below that root:
        # a proven candidate whose step is that small is within 1e-11 of the bound's root
        step = h / slope
        nxt = s[todo] + step
        nxt = nxt - (_AIM * np.abs(nxt) + 1e-300)
        done = good & (np.abs(step) <= 10 * _AIM * np.maximum(np.abs(s[todo]), 1e-300))
        s[todo] = np.where(done, s[todo], nxt)
        todo = todo[~done]
        if todo.size == 0:
            break
    out[idx] = proven
    return out.reshape(shape)
