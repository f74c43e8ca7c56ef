"""The certified top-k radius of Theorem 1 in Jia, Cao, Wang and Gong (ICLR 2020).

Given a lower bound ``a`` on the probability p_l that the base classifier returns label l
under Gaussian noise, and upper bounds ``b_j`` on the probabilities of the other labels,
the smoothed classifier keeps l among its top-k labels for every l2 perturbation of norm
below

    R_l = sigma * max_{t=1..k} s_t,   Phi(Phi^{-1}(a) - s_t) = Phi(Phi^{-1}(B_t) + s_t) / t,

where B_t = min(sum of the t smallest of the k largest b_j, 1 - a), each b_j first clipped
to 1 - a. This module computes R_l in two ways:

* float64, vectorized, with every rounding directed so that the result never exceeds the
  exact radius of the given bounds (:mod:`topk_bounds._float` lists the accuracy each step
  relies on), and within about 1e-13 of it;
* arbitrary precision with mpmath (``dps=N``), rounded down to N digits (never above the
  exact radius either, and within 10^(1 - N) of it relative).

The radius is *signed*: R_l <= 0 means l is not certified even at delta = 0.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import mpmath
import numpy as np
from scipy import special

from . import _float as fl
from .limits import DPS_MIN
from ._near_tie import near_tie_roots

__all__ = ["topk_radius"]

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
_MAX_NEWTON = 100
_MAX_BACKOFF = 12
#: Below this |s| (radius / sigma) the roots are also proven by :mod:`topk_bounds._near_tie`.
NEAR_TIE_S = 0.05


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _check_k(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _check_real(name: str, value, allowed: str, ok) -> float:
    """``float(value)`` if it is finite and passes ``ok``; otherwise a ValueError that
    names the argument, its value and what is ``allowed``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}, got {value!r}") from None
    if not (math.isfinite(v) and ok(v)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return v


def _check_sigma(sigma) -> float:
    return _check_real("sigma", sigma, "a finite number > 0", lambda v: v > 0)


def _check_dps(dps) -> int | None:
    if dps is None:
        return None
    if isinstance(dps, bool) or not isinstance(dps, numbers.Integral) or dps < DPS_MIN:
        raise ValueError(f"dps must be None or an integer >= {DPS_MIN}, got {dps!r}")
    return int(dps)


def _check_probability(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return v


def _check_upper(p_upper) -> np.ndarray:
    try:
        arr = np.asarray(p_upper, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("p_upper must be a 1-D sequence of the c-1 other labels' upper bounds "
                         f"(probabilities in [0, 1]), got {p_upper!r:.200}") from None
    if arr.ndim != 1:
        raise ValueError(
            f"p_upper must be a 1-D sequence of the c-1 other labels' upper bounds, got shape {arr.shape}"
        )
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"p_upper must hold probabilities in [0, 1], got p_upper[{i}] = {float(arr[i])!r}")
    return arr


# --------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------
def topk_radius(p_lower, p_upper: Sequence[float], k: int, sigma: float, *, dps: int | None = None):
    """Certified l2 radius within which label l stays in the smoothed top-k (Theorem 1).

    Parameters
    ----------
    p_lower : float
        A lower bound ``a`` on p_l, the probability that the base classifier returns l
        under noise N(0, sigma^2 I).
    p_upper : sequence of float, shape (c - 1,)
        Upper bounds ``b_j`` on the probabilities of the c - 1 other labels.
    k : int
        Size of the top-k set, ``k >= 1``.
    sigma : float
        Standard deviation of the smoothing noise, ``sigma > 0``.
    dps : int, optional
        ``None`` (default) computes in float64 and returns a ``float``; an integer ``N``
        computes with mpmath at N decimal digits and returns an ``mpmath.mpf`` rounded
        down: never above the exact radius, and below it by at most
        ``10**(1 - N) |R| + 10**-(N + 4) sigma``.

    Returns
    -------
    float or mpmath.mpf
        The signed radius R_l. If the bounds hold, the smoothed classifier ranks l among
        its top k at every x + delta with ``||delta||_2 < R_l``. ``R_l <= 0`` means l is not
        certified; ``+inf`` when ``k >= c``; ``-inf`` when ``p_lower == 0``.

    Notes
    -----
    The float64 result never exceeds the exact radius of the given bounds: every rounding
    of Phi^{-1}, of the partial sums B_t and of the root-finder is directed to the safe
    side, and the root of each t >= 2 is accepted only once the defining inequality
    Phi(Phi^{-1}(a) - s) > Phi(Phi^{-1}(B_t) + s) / t is proven at it with all rounding
    errors bounded.

    Precision: within ``1e-10 * |R_l|`` of the exact radius, or ``1e-30 * sigma`` where
    R_l is that close to 0, for ``p_lower`` and the partial sums B_t of at least 1e-300
    (subnormal probabilities keep fewer digits). Roots with ``|R_l| < 0.05 sigma`` are
    also proven by quadrature of phi / Phi from ``p_lower`` and the exactly summed B_t
    (:mod:`topk_bounds._near_tie`), so near ties keep their relative precision; the
    largest relative errors measured were 3.4e-11 over 4,500 near ties and 7.5e-12 over
    3,000 bounds with p_lower between 1e-300 and 1e-100.

    For k = 1 the radius is Cohen et al.'s sigma / 2 (Phi^{-1}(a) - Phi^{-1}(b_max)).

    References
    ----------
    .. [1] J. Jia, X. Cao, B. Wang, N. Z. Gong, "Certified Robustness for Top-k
       Predictions against Adversarial Perturbations via Randomized Smoothing",
       ICLR 2020, Theorem 1.
    .. [2] J. Cohen, E. Rosenfeld, J. Z. Kolter, "Certified Adversarial Robustness via
       Randomized Smoothing", ICML 2019.

    Examples
    --------
    With k = 1 this is Cohen et al.'s closed form:

    >>> from scipy.stats import norm
    >>> r = topk_radius(0.9, [0.05, 0.03, 0.02], k=1, sigma=0.5)
    >>> abs(r - 0.25 * float(norm.ppf(0.9) - norm.ppf(0.05))) < 1e-12
    True

    A larger k certifies a larger radius:

    >>> round(topk_radius(0.6, [0.3, 0.05, 0.05], k=2, sigma=1.0), 6)
    0.9491
    >>> topk_radius(0.6, [0.3, 0.05, 0.05], k=2, sigma=1.0, dps=30)
    mpf('0.94910036504363...')

    Every label fits in the top-k when k >= c:

    >>> topk_radius(0.1, [0.5, 0.4], k=3, sigma=1.0)
    inf
    """
    a = _check_probability("p_lower", p_lower)
    b = _check_upper(p_upper)
    k = _check_k(k)
    sigma = _check_sigma(sigma)
    dps = _check_dps(dps)
    if dps is not None:
        return _radius_mp(a, b, k, sigma, dps)
    if k > b.size:  # k >= c: l is always among the top k
        return float("inf")
    top = -np.partition(-b, k - 1)[:k]
    # 1 - a is exact in float64 for a >= 1/2 (Sterbenz); below, its rounding error
    # (1 - qa) - a is computed exactly and qa stepped up only when it fell short.
    qa = 1.0 - a
    if (1.0 - qa) - a > 0:
        qa = float(fl.up(qa))
    za = -fl.ndtri_upper(np.array([qa])) if a >= 0.5 else fl.ndtri_lower(np.array([a]))
    r = radius_from_bounds(za, np.array([qa]), top[None, :], sigma, a=np.array([a]))
    return float(r[0])


# --------------------------------------------------------------------------------------
# float64 path (vectorized; shared with certify)
# --------------------------------------------------------------------------------------
def radius_from_bounds(z_a, q_a, b_top, sigma: float, z_top=None, a=None) -> np.ndarray:
    """Safe float64 radii for N inputs at once (the engine behind every float path).

    Parameters
    ----------
    z_a : ndarray, shape (N,)
        Lower bounds on Phi^{-1}(a).
    q_a : ndarray, shape (N,)
        Upper bounds on 1 - a (describing the same a as ``z_a``).
    b_top : ndarray, shape (N, k)
        Upper bounds on the probabilities of the k most likely other labels, any order.
    sigma : float
    z_top : ndarray, shape (N, k), optional
        Upper bounds on Phi^{-1}(b) for the entries of ``b_top``, when they are known
        more precisely than ``ndtri(b)`` (a bound near 1 given by its complement).
    a : ndarray, shape (N,), optional
        The exact lower bounds, when they are floats: a tie B_1 == a then gives
        s_1 = 0 exactly instead of two rounding margins.

    Returns
    -------
    ndarray, shape (N,)
        Signed radii, each at most the exact radius of the exact bounds these describe.

    Notes
    -----
    A partial sum B_t clipped at 1 - a uses Phi^{-1}(1 - a) = -Phi^{-1}(a) <= -z_a, so a
    lower bound a close to 0 loses no precision through its complement.
    """
    z_a = np.asarray(z_a, dtype=float)
    q_a = np.asarray(q_a, dtype=float)
    b_top = np.asarray(b_top, dtype=float)
    _, k = b_top.shape
    order = np.argsort(b_top, axis=1)  # ascending: the first t are the t smallest of the top k
    b = np.take_along_axis(b_top, order, axis=1)
    clipped_b = b >= q_a[:, None]
    b = np.minimum(b, q_a[:, None])
    t = np.arange(1, k + 1, dtype=float)
    # a cumsum of t non-negative floats is within (t - 1) ulps relative; round it up
    sums = np.cumsum(b, axis=1)
    # below 2**-1021 every sum of float64 numbers is exact (a multiple of 2**-1074)
    partial = np.where(sums >= 2.0**-1021, fl.up(sums * (1.0 + (t + 1.0) * fl.ULP)), sums)
    partial[:, 0] = b[:, 0]  # a single term needs no rounding
    clipped = partial >= q_a[:, None]
    clipped[:, 0] |= clipped_b[:, 0]
    z_b = fl.ndtri_upper(np.minimum(partial, q_a[:, None]))  # upper bounds on Phi^{-1}(B_t)
    if z_top is not None:
        z1 = np.take_along_axis(np.asarray(z_top, dtype=float), order[:, :1], axis=1)[:, 0]
        z_b[:, 0] = np.minimum(z_b[:, 0], z1)
    z_b = np.where(clipped, -z_a[:, None], z_b)
    if a is not None:  # Phi^{-1}(B_1) = Phi^{-1}(a) exactly when B_1 == a
        a = np.asarray(a, dtype=float)
        tie = (partial[:, 0] == a) & ~clipped[:, 0]
        z_b[:, 0] = np.where(tie, z_a, z_b[:, 0])

    with np.errstate(invalid="ignore"):
        # t = 1: closed form, rounded down; equal enclosure ends give exactly 0
        s = np.where(z_a == z_b[:, 0], 0.0, fl.down(z_a - z_b[:, 0]) * 0.5)
    s = np.where(np.isneginf(z_b[:, 0]), np.inf, s)
    s_t = s[:, None]
    if k > 1:
        s_t = np.concatenate([s_t, _solve_t(z_a, z_b[:, 1:], t[1:])], axis=1)
        s = s_t.max(axis=1)
    s = np.where(np.isneginf(z_a), -np.inf, s)
    if a is not None:
        # roots near 0: the enclosures of z_a, z_B cost too much relative precision there
        near = np.flatnonzero(np.isfinite(s) & (np.abs(s) < NEAR_TIE_S) & (a > 0))
        if near.size:
            # only the t that can attain the maximum: the proof moves a root by ~1e-13
            sn = s[near, None]
            reach = (s_t[near] >= sn - 1e-9 * (1.0 + np.abs(sn))) | np.isneginf(s_t[near])
            roots = near_tie_roots(a[near], b[near], q_a[near], range(1, k + 1), mask=reach)
            s[near] = np.maximum(s[near], roots.max(axis=1))
    with np.errstate(invalid="ignore"):
        radius = np.where(s == 0, 0.0, fl.down(sigma * s))
    return np.where(np.isfinite(s), radius, s)


def _solve_t(z_a: np.ndarray, z_b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Proven lower bounds on the roots s_t for t >= 2; -inf where no proof was found.

    h(s) = log Phi(z_a - s) - log Phi(z_b + s) + log t is strictly decreasing, h > 0 at
    s = (z_a - z_b) / 2 and h -> -inf; safeguarded Newton finds the root, which is then
    stepped down until h is provably positive there.
    """
    shape = z_b.shape
    za = np.broadcast_to(z_a[:, None], shape).ravel()
    zb = z_b.ravel()
    logt = np.broadcast_to(np.log(t)[None, :], shape).ravel()
    out = np.full(za.shape, -np.inf)
    out[np.isneginf(zb)] = np.inf
    live = np.isfinite(za) & np.isfinite(zb)
    if live.any():
        out[live] = _newton_then_prove(za[live], zb[live], logt[live])
    return out.reshape(shape)


def _h(s, za, zb, logt):
    return special.log_ndtr(za - s) - special.log_ndtr(zb + s) + logt


def _h_and_slope(s, za, zb, logt, *, parts=False):
    """h(s) and -h'(s) > 0, sharing the two log_ndtr evaluations (and those, and h''(s),
    if ``parts``)."""
    x1, x2 = za - s, zb + s
    l1, l2 = special.log_ndtr(x1), special.log_ndtr(x2)
    m1 = np.exp(-0.5 * x1 * x1 - _LOG_SQRT_2PI - l1)  # Mills ratios phi / Phi
    m2 = np.exp(-0.5 * x2 * x2 - _LOG_SQRT_2PI - l2)
    slope = m1 + m2
    if parts:
        # h'' = -m1 (x1 + m1) + m2 (x2 + m2), from d(phi/Phi)/dx = -(phi/Phi)(x + phi/Phi)
        return l1 - l2 + logt, slope, l1, l2, m2 * (x2 + m2) - m1 * (x1 + m1)
    return l1 - l2 + logt, slope


def _newton_then_prove(za, zb, logt):
    """Each element iterates on its own (converged ones leave the working set), so a
    row's result never depends on the rest of the batch."""
    lo = 0.5 * (za - zb)  # h(lo) = log t > 0
    step = np.ones_like(lo)
    hi = lo + step
    h_lo, h_hi = logt.copy(), np.zeros_like(lo)
    idx = np.arange(lo.size)
    for _ in range(2000):  # expand until h(hi) < 0; h -> -inf quadratically
        h_i = _h(hi[idx], za[idx], zb[idx], logt[idx])
        h_hi[idx] = h_i
        grow = h_i >= 0
        h_lo[idx[grow]] = h_i[grow]
        idx = idx[grow]
        if idx.size == 0:
            break
        lo[idx] = hi[idx]
        step[idx] *= 2
        hi[idx] = lo[idx] + step[idx]
    # start at the secant point of the bracket (its middle where that is degenerate)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = lo + (hi - lo) * (h_lo / (h_lo - h_hi))
    s = np.where((s > lo) & (s < hi), s, 0.5 * (lo + hi))
    # h, -h' and the two log Phi values at each element's last iterate, for the proof
    last = np.zeros((4, s.size))
    idx = np.arange(s.size)
    for _ in range(_MAX_NEWTON):
        si = s[idx]
        h, slope, l1, l2, curv = _h_and_slope(si, za[idx], zb[idx], logt[idx], parts=True)
        last[:, idx] = h, slope, l1, l2
        lo_i = np.where(h > 0, si, lo[idx])
        hi_i = np.where(h < 0, si, hi[idx])
        lo[idx], hi[idx] = lo_i, hi_i
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # Halley's step (cubic convergence; Newton's where the correction is large)
            newton = h / slope
            damp = 1.0 - 0.5 * newton * curv / slope
            new = si + np.where(np.abs(damp - 1.0) < 0.5, newton / damp, newton)
        # a converged step may round back onto si (a bracket end): that is not a reason to
        # bisect, which restarted the descent of about a fifth of all roots
        scale = np.maximum(np.abs(si), 1.0)
        done = (np.abs(new - si) <= 2 * fl.ULP * scale) | (h == 0)
        # a Halley step below 1e-6 leaves an error of order 1e-18: take it as the last
        # iterate, with h there from the quadratic model (it only sizes the first proof)
        close = ~done & (np.abs(new - si) <= 1e-6 * scale) & (new > lo_i) & (new < hi_i)
        if close.any():
            d = (new - si)[close]
            last[0, idx[close]] = h[close] - slope[close] * d + 0.5 * curv[close] * d * d
            done |= close
        new = np.where(done | ((new > lo_i) & (new < hi_i)), new, 0.5 * (lo_i + hi_i))
        s[idx] = new
        idx = idx[~done]
        if idx.size == 0:
            break
    return _prove_below_root(_first_candidate(s, za, zb, logt, *last), za, zb, logt)


def _first_candidate(s, za, zb, logt, h, slope, l1, l2):
    """s stepped down by what :func:`_h_lower`'s error bound will cost there (predicted
    from the last Newton iterate), so that the first proof attempt usually succeeds
    instead of failing at the root itself."""
    x1, x2 = za - s, zb + s
    gap = (fl.log_ndtr_err(x1, l1) + fl.log_ndtr_err(x2, l2)
           + 4 * fl.ULP * (np.abs(l1) + np.abs(l2) + 2 * logt)
           + 2 * fl.ULP * np.maximum(np.maximum(np.abs(x1), np.abs(x2)), 1.0) * slope)
    with np.errstate(invalid="ignore"):
        step = (1.25 * gap - h) / np.maximum(slope, 1e-300)
    return s - np.maximum(np.where(np.isfinite(step), step, 0.0), 4 * fl.ULP * np.maximum(np.abs(s), 1.0))


def _h_lower(s, za, zb, logt):
    """A rigorous lower bound on h(s), for the exact reals za, zb, s and integer t."""
    l1 = fl.log_ndtr_lower(za - s)
    l2 = fl.log_ndtr_upper(zb + s)
    logt_lo = fl.down(logt * (1.0 - 2 * fl.ULP))  # np.log is within an ulp
    # three additions of terms bounded by |l1|, |l2|, log t: each rounds by <= 1 ulp
    slack = 4 * fl.ULP * (np.abs(l1) + np.abs(l2) + logt)
    return fl.down(l1 - l2 + logt_lo - slack)


def _prove_below_root(s, za, zb, logt):
    """Step each candidate down until h(s) > 0 is proven; -inf where that fails.

    Since h is decreasing, a proven h(s) > 0 means s < s_t: s is a safe radius.
    """
    s = s.copy()
    proven = np.zeros(s.shape, dtype=bool)
    for _ in range(_MAX_BACKOFF):
        idx = np.flatnonzero(~proven)
        if idx.size == 0:
            break
        h_lo = _h_lower(s[idx], za[idx], zb[idx], logt[idx])
        proven[idx[h_lo > 0]] = True
        idx, h_lo = idx[h_lo <= 0], h_lo[h_lo <= 0]
        if idx.size == 0:
            break
        st = s[idx]
        h_mid, slope = _h_and_slope(st, za[idx], zb[idx], logt[idx])
        gap = h_mid - h_lo  # what the error bound costs here
        # aim for h >= 1.25 * gap (so that h - gap > 0) under a linear model of h around s
        step = (1.25 * gap - h_mid) / np.maximum(slope, 1e-300)
        s[idx] = st - np.maximum(step, 4 * fl.ULP * np.maximum(np.abs(st), 1.0))
    return np.where(proven, s, -np.inf)


# --------------------------------------------------------------------------------------
# mpmath path
# --------------------------------------------------------------------------------------
_EXACT_PREC = 1200  # bits: sums and complements of float64 inputs are exact at this precision


def mp_log_ndtr(x):
    """log Phi(x) at the current mpmath precision, accurate in both tails."""
    if x < 0:
        return mpmath.log(mpmath.ncdf(x))
    return mpmath.log1p(-mpmath.ncdf(-x))


def mp_ndtri(p, q=None):
    """Phi^{-1}(p) at the current precision; pass q = 1 - p (exact) for p near 1."""
    if q is None:
        q = 1 - p
    if p == 0:
        return mpmath.ninf
    if q == 0:
        return mpmath.inf
    if p > q:
        return -mp_ndtri(q, p)
    target = mpmath.log(p)
    z = mpmath.mpf(float(special.ndtri(max(float(p), 5e-324))))
    tol = mpmath.mpf(2) ** (-mpmath.mp.prec + 4)
    for _ in range(200):
        logphi = mp_log_ndtr(z)
        ratio = mpmath.exp(-z * z / 2 - logphi) / mpmath.sqrt(2 * mpmath.pi)
        dz = (logphi - target) / ratio
        z -= dz
        if abs(dz) <= tol * max(1, abs(z)):
            break
    return z


def _radius_mp(a: float, b: np.ndarray, k: int, sigma: float, dps: int):
    if k > b.size:
        return mp_radius(a, [], k, sigma, dps)
    top = -np.sort(-b)[:k]  # only the k largest bounds matter
    return mp_radius(a, [float(x) for x in top], k, sigma, dps)


def mp_radius(p_lower, p_upper, k: int, sigma, dps: int, *, p_lower_complement=None):
    """Theorem 1's radius at ``dps`` digits from bounds given as mpmath numbers.

    The reference for everything else: ``p_lower``, the entries of ``p_upper`` and
    ``sigma`` may be floats, strings or ``mpf`` (e.g. exact Clopper-Pearson bounds from
    :func:`topk_bounds.clopper_pearson_upper` with ``dps``). ``p_lower_complement``,
    if given, is 1 - p_lower to full precision (for p_lower close to 1). Sums and
    complements are formed exactly for inputs of up to 1200 bits.

    The result is rounded down (toward the safe side): it never exceeds the exact radius
    of the given bounds, and lies within ``10**(1 - dps) |R| + 10**-(dps + 4) sigma`` of
    it (the computation carries 15 guard digits and steps down by ``10**-(dps + 5)
    (|R| + sigma)`` before rounding).
    """
    if k > len(p_upper):
        with mpmath.workdps(dps):
            return +mpmath.inf
    with mpmath.workprec(_EXACT_PREC):
        a = mpmath.mpf(p_lower)
        qa = 1 - a if p_lower_complement is None else mpmath.mpf(p_lower_complement)
        if a == 0:
            with mpmath.workdps(dps):
                return -mpmath.inf
        top = sorted(min(mpmath.mpf(x), qa) for x in p_upper)[-k:]  # k largest, ascending
        sums, acc = [], mpmath.mpf(0)
        for x in top:
            acc += x
            sums.append(min(acc, qa))
        comps = [a if s == qa else 1 - s for s in sums]
    with mpmath.workdps(dps + 15):
        za = mp_ndtri(a, qa)
        best = mpmath.ninf
        for t, (bt, cbt) in enumerate(zip(sums, comps), start=1):
            if bt == 0:
                best = mpmath.inf
                break
            zb = mp_ndtri(bt, cbt)
            st = (za - zb) / 2 if t == 1 else _mp_root(za, zb, t)
            best = max(best, st)
        result = mpmath.mpf(sigma) * best
        if mpmath.isfinite(result):
            # every step above is accurate to far better than 10**-(dps + 5) of |R| + sigma
            # (15 guard digits): step down by that much, so that rounding cannot overstate
            result -= (abs(result) + abs(mpmath.mpf(sigma))) * mpmath.mpf(10) ** -(dps + 5)
    return _round_down(result, dps)


def _round_down(x, dps: int):
    """x rounded toward -inf to ``dps`` digits (as many bits as mpmath gives them)."""
    prec = mpmath.libmp.dps_to_prec(dps)
    if not mpmath.isfinite(x):
        with mpmath.workdps(dps):
            return +x
    with mpmath.workprec(prec):
        return mpmath.mpf(mpmath.libmp.mpf_pos(x._mpf_, prec, mpmath.libmp.round_floor))


def _mp_root(za, zb, t):
    """The root of log Phi(za - s) - log Phi(zb + s) + log t at the current precision."""
    logt = mpmath.log(t)

    def h(s):
        return mp_log_ndtr(za - s) - mp_log_ndtr(zb + s) + logt

    def ratio(x):
        return mpmath.exp(-x * x / 2 - mp_log_ndtr(x)) / mpmath.sqrt(2 * mpmath.pi)

    lo = (za - zb) / 2
    step = mpmath.mpf(1)
    hi = lo + step
    while h(hi) >= 0:
        lo, step = hi, 2 * step
        hi = lo + step
    f_za, f_zb = float(za), float(zb)
    s0 = float(_newton_then_prove(np.array([f_za]), np.array([f_zb]), np.array([np.log(t)]))[0])
    s = mpmath.mpf(s0) if np.isfinite(s0) and lo < s0 < hi else (lo + hi) / 2
    # the guard digits of the caller (15) leave room to stop well above the noise floor
    tol = mpmath.mpf(2) ** (-mpmath.mp.prec + 24)
    for _ in range(200):
        hv = h(s)
        if hv > 0:
            lo = s
        elif hv < 0:
            hi = s
        else:
            return s
        step = hv / (ratio(za - s) + ratio(zb + s))
        if abs(step) <= tol * max(1, abs(s)) or hi - lo <= tol * max(1, abs(s)):
            return s + step
        s = s + step
        if not lo < s < hi:
            s = (lo + hi) / 2
    raise ArithmeticError("mpmath root-finder for the top-k radius did not converge")
