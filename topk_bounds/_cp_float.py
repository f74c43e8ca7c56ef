"""Clopper-Pearson quantiles in float64 that are *verified* to lie on the safe side: the
tails and their error bounds, and the general solver.

Most bounds are found by :mod:`topk_bounds._cp_pair` (both bounds of a count from one
proof, with :func:`tail_pair`); this module's :func:`safe_quantile` takes the levels above
1/2 and whatever that fast path leaves.

``scipy.special.betainccinv`` is usually accurate to an ulp, but not always: for n near
1e9 and a handful of successes it can be off by 3e-9 relative, and for x near 1000 by
0.4% to a factor of two. So its answer is only a candidate. Each candidate ``p`` is moved
to the safe side by a margin derived from the slope of the tail, and accepted only when
the binomial tail at ``p``, evaluated with a bounded error, proves it safe:

* upper bound u of x successes: F(u) = P(Bin(n, u) <= x) <= beta  (so u >= the root);
* lower bound l: G(l) = P(Bin(n, l) >= x) <= beta  (so l <= the root).

For beta > 1/2 the other tail is used, at the exact level 1 - beta: u solves
P(Bin(n, u) >= x + 1) = 1 - beta and l solves P(Bin(n, l) <= x - 1) = 1 - beta, so
a level near 1 loses no digits (the slope of log F at F ~ 1 is tiny).

The fast path is one proof attempt (after one Newton step for small x); it settles
about 99% of the bounds of a realistic certify run. The others are solved again by a
safeguarded Newton iteration on log T = log tau in the logit of p (which keeps both
ends of (0, 1) in view), kept inside a bracket of points proven to lie on either side
(expanding or bisecting it when a step would leave it), with proof attempts once it
has converged. log T is concave in log p for both tails (``docs/numerics.md``), so
Newton steps rarely overshoot far; the bracket makes every round count whatever they
do. A bound is returned only when proven safe *and* tight (within a few error bounds
of the root, or bracketed by a proven-unsafe point within 2**-40 relative); a bound
that cannot be found raises ``ArithmeticError`` naming x, n and beta. It is never
replaced by the trivial 0 or 1.

Tail evaluation and its error bound
-----------------------------------
* F for x <= ``SMALL_X``: the sum of the binomial terms from j = 0, pmf_0 =
  exp(n log1p(-p)) and pmf_{j+1} = pmf_j (n - j) p / ((j + 1)(1 - p)). With correctly
  rounded basic operations and log1p, exp within an ulp, its relative error is at most
  (2 |n log1p(-p)| + 2 |log F| + 6 x + 8) ulp, plus one ulp per block of 32 terms: a
  rigorous bound.
* G for x <= ``SMALL_X_G`` (``SMALL_X`` in :func:`tail_pair`): the sum upward from j = x
  plus a geometric bound on the terms left out; the same kind of bound, with 6 (x + m)
  ulp for the m terms added.
* otherwise scipy's ``betaincc`` / ``betainc`` (Boost's ibeta), whose relative errors
  are *assumed* to be at most :func:`boost_rtol_f` / :func:`boost_rtol_g`;
  ``tests/test_bounds.py`` measures them against the mpmath quadrature of
  :mod:`topk_bounds._mp_beta` at float points next to the roots, for n up to 1e12 and
  levels down to 1e-300, and checks a safety factor of at least 10. A ``betainc`` value
  below ``BOOST_MIN`` (a tenth of ``limits.LEVEL_MIN``; every point next to a root lies
  above it) is not trusted: ``betainc(x, b, w)`` returns 0 for true values of 1e-246
  when b <= 39 and w is close to 1. The Chernoff bound exp(-n KL(x/n || w)) replaces it
  (:func:`chernoff_g`), which can only prove G <= beta. Neither does either function
  with equal parameters at a point below 1/2 whose complement is not a float
  (:func:`_symmetric_trap`).

The sums also give log T (no underflow far from the root) and the exact slope
d log T / d log p from their last (first) term; for Boost's tails the slope comes from
the Beta density with ``scipy.special.betaln`` (within 0.4% for n <= 1e12: it only
paces the iteration). The error bounds hold while the values compared with ``beta``
are normal numbers, which ``limits.LEVEL_MIN = 1e-300`` ensures; n is at most
``limits.N_MAX = 1e12``. The callers (:mod:`topk_bounds.bounds`) check both.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from . import _float as fl

SMALL_X = 128
SMALL_X_G = 4096
#: Relative error assumed for scipy.special.betaincc (the upper tail F) beyond SMALL_X:
#: at least BOOST_RTOL_F, and (sqrt(min(x + 1, n - x)) + 1) ulp for large counts
#: (:func:`boost_rtol_f`). Over 6,900 points next to the roots (n up to 1e12, levels down
#: to 1e-300) the error was at most 4e-13 at levels above 1e-13 and 2.4e-12 below (at
#: x = 5.9e11), at least 30 times below the model everywhere.
BOOST_RTOL_F = 2.0**-38
#: Relative error assumed for scipy.special.betainc(x, b, w) (the lower tail G) beyond
#: SMALL_X_G: BOOST_G_COEF * (sqrt(x (|log G| + 1)) + 1) ulp (:func:`boost_rtol_g`). It grows
#: with the count and with the depth of the tail: over 7,000 points next to the roots
#: (x > 128, n up to 1e12, levels down to 1e-300) the error was at most 4.9 times
#: sqrt(x (|log G| + 1)) + 1 ulp, and up to 117 (sqrt(x) + 1) ulp at levels below 1e-13
#: (the model before, 128 (sqrt(x) + 1) ulp, had been measured at levels >= 1e-9 only).
BOOST_G_COEF = 64.0
#: Boost values below this prove nothing (they may have underflowed).
BOOST_MIN = 1e-301
#: Rounds of the safeguarded solve for the bounds the fast path did not settle.
_MAX_ROUNDS = 120
#: A proven-safe candidate is also accepted when a proven-unsafe point lies this close.
_BRACKET_RTOL = 2.0**-40


def _log_density(a, b, p):
    """log of the Beta(a, b) density at p (paces the iteration only: modest accuracy)."""
    return (a - 1.0) * np.log(p) + (b - 1.0) * np.log1p(-p) - special.betaln(a, b)


_BIG = 2.0**600  # exact power-of-two rescaling keeps the term products in range
_LOG_BIG = 600.0 * np.log(2.0)


def _cdf_small(x, n, p):
    """P(Bin(n, p) <= x) for x <= SMALL_X by direct summation.

    Returns ``(value, rtol, log_value, log_slope)``: the tail, a bound on its relative
    error, its log (finite where the value underflows) and log |d log F / d log p|,
    from the last term: p |F'| = (n - x) p pmf(x) / (1 - p).
    The terms relative to pmf_0 are cumulative products of the ratios
    r_j = ((n - j) / (j + 1)) (p / (1 - p)), 32 columns at a time, each block started
    from the last term (one more rounding per term and block); where n p / (1 - p) <= 2**16
    a block grows at most 2**512, and the running term and sum are scaled down by the
    exact power of two 2**-400 before a block once the term exceeds 2**400 (the scale is
    kept in logs). Elsewhere (p near 1) they go one term at a time, rescaled past 2**600.
    """
    log_p0 = n * np.log1p(-p)
    odds = p / (1.0 - p)
    term = np.ones_like(p)
    total = np.ones_like(p)
    log_scale = np.zeros_like(p)
    blocks = (n * odds <= 2.0**16) | (x == 0)
    idx_b = np.flatnonzero(blocks)
    if idx_b.size:
        xb, nb, ob = x[idx_b], n[idx_b], odds[idx_b]
        tb, sb, lb = term[idx_b], total[idx_b], log_scale[idx_b]
        for j0 in range(0, int(xb.max()), _CDF_BLOCK):
            live = np.flatnonzero(xb > j0)  # the rows that still have terms to add
            big = tb[live] > _CDF_BIG
            if big.any():
                k = live[big]
                tb[k] /= _CDF_BIG
                sb[k] /= _CDF_BIG
                lb[k] += _LOG_CDF_BIG
            js = j0 + _CDF_COLS
            active = js < xb[live, None]
            r = np.where(active, ((nb[live, None] - js) / (js + 1.0)) * ob[live, None], 1.0)
            c = np.cumprod(r, axis=1) * tb[live, None]
            sb[live] += np.where(active, c, 0.0).sum(axis=1)
            tb[live] = c[:, -1]  # the ratios past x are 1: the last column is the last term
        term[idx_b], total[idx_b], log_scale[idx_b] = tb, sb, lb
    idx_l = np.flatnonzero(~blocks)
    for j in range(int(x[idx_l].max()) if idx_l.size else 0):
        live = idx_l[x[idx_l] > j]
        term[live] = term[live] * ((n[live] - j) / (j + 1.0)) * odds[live]
        total[live] += term[live]
        big = live[term[live] > _BIG]
        if big.size:
            term[big] /= _BIG
            total[big] /= _BIG
            log_scale[big] += _LOG_BIG
    log_value = log_p0 + log_scale + np.log(total)
    with np.errstate(under="ignore"):
        value = np.exp(log_value)
    # 6 x + 8 ulp as term by term, plus one rounding per term and block of 32
    rtol = (2.0 * np.abs(log_p0) + 2.0 * log_scale + 2.0 * np.abs(log_value) + 6.0 * x
            + np.ceil(x / _CDF_BLOCK) + 10.0) * fl.ULP
    with np.errstate(divide="ignore"):
        log_slope = np.log(p) + np.log(n - x) - np.log1p(-p) + np.log(term) - np.log(total)
    return value, rtol, log_value, log_slope


_CDF_BLOCK = 32
_CDF_COLS = np.arange(_CDF_BLOCK, dtype=float)
_CDF_BIG = 2.0**400
_LOG_CDF_BIG = 400.0 * np.log(2.0)
_BLOCK = 64  # columns of the blockwise products in _sf_small


def _sf_small(x, n, p, extra: int = 1200):
    """P(Bin(n, p) >= x) for 1 <= x <= SMALL_X_G by direct summation upward from j = x.

    pmf(x) / pmf(0) is the product of the x ratios (n - j) p / ((j + 1)(1 - p)), taken
    in blocks of ``_BLOCK`` columns as mantissas and exact power-of-two exponents
    (``frexp``), so it cannot overflow or underflow. The terms after j = x, relative to
    it, are blockwise cumulative products of the next ratios, which fall with j; the sum
    stops once a term is below 1e-18 of it with the ratio below 1/2, or after about
    ``extra`` terms, and adds a geometric bound on the rest, so the value returned is
    never below the exact tail by more than its rounding bound (each term carries at
    most 6 roundings, as in the loop it replaces). A value of +inf means G > 1/2: the
    first ratio is at least 2 (then n p > 2 x, above the median), or the terms grew
    past 1e308 (the mode lies more than 1000 above x). Returns
    ``(value, rtol, log_value, log_slope)`` as :func:`_cdf_small`, the slope from the
    first term: p G' = x pmf(x).
    """
    log_p0 = n * np.log1p(-p)
    odds = p / (1.0 - p)
    m = p.size
    # pmf(x) / pmf(0) = mant 2**expo
    mant, expo = np.ones(m), np.zeros(m, dtype=np.int64)
    cols = np.arange(_BLOCK, dtype=float)
    for j0 in range(0, int(x.max()) if m else 0, _BLOCK):
        idx = np.flatnonzero(x > j0)  # only the rows that still have ratios to multiply
        js = j0 + cols
        f = np.where(js < x[idx, None], ((n[idx, None] - js) / (js + 1.0)) * odds[idx, None], 1.0)
        fm, fe = np.frexp(f)
        mant[idx], e2 = np.frexp(mant[idx] * np.prod(fm, axis=1))
        expo[idx] += fe.sum(axis=1) + e2
    log_scale = expo * np.log(2.0) + np.log(mant)
    # the terms after x, relative to pmf(x)
    first_ratio = ((n - x) / (x + 1.0)) * odds
    total = np.ones(m)
    term = np.ones(m)
    ratio = np.zeros(m)
    count = np.zeros(m)
    live = first_ratio < 2.0  # per element, so a row never depends on its batch
    for blk in range(-(-extra // _BLOCK)):
        if not live.any():
            break
        idx = np.flatnonzero(live)
        js = x[idx, None] + (blk * _BLOCK + cols)
        r = np.where(js < n[idx, None], ((n[idx, None] - js) / (js + 1.0)) * odds[idx, None], 0.0)
        c = np.cumprod(r, axis=1) * term[idx, None]
        total[idx] += c.sum(axis=1)
        term[idx], ratio[idx] = c[:, -1], r[:, -1]
        count[idx] += _BLOCK
        live[idx] = ~((term[idx] <= 1e-18 * total[idx]) & (ratio[idx] < 0.5)) & np.isfinite(total[idx])
    rest = np.where(ratio < 1.0, term * ratio / (1.0 - ratio), np.inf)
    total = np.where((first_ratio >= 2.0) | ~np.isfinite(total), np.inf, total + rest)
    log_value = log_p0 + log_scale + np.log(total)
    log_slope = np.log(x) - np.log(total)
    value = np.where(np.isinf(total), np.inf, np.exp(log_value))
    rtol = (2.0 * np.abs(log_p0) + 2.0 * np.abs(log_scale) + 2.0 * np.abs(log_value)
            + 6.0 * (x + count) + 8.0) * fl.ULP
    return value, rtol, log_value, log_slope


def _tail(tail: str, x, n, p, logs: bool = True):
    """``F = P(Bin(n, p) <= x)`` (``tail='F'``) or ``G = P(Bin(n, p) >= x)`` (``'G'``) at p.

    Returns ``(value, rtol, log_value, log_slope)``: the value and a bound on its
    relative error (rigorous for the direct sums, assumed for Boost's), its log, and
    log |d log T / d log p| (see :func:`_cdf_small`). Without ``logs`` the last two
    are left unset for Boost's tails (a proof needs only the first two).
    """
    if tail == "F":
        small, a, b = x <= SMALL_X, x + 1.0, n - x
    else:
        small, a, b = x <= SMALL_X_G, x, n - x + 1.0
    value = np.empty_like(p)
    rtol = np.empty_like(p)
    log_value = np.empty_like(p)
    log_slope = np.empty_like(p)
    if small.any():
        tail_sum = _cdf_small if tail == "F" else _sf_small
        value[small], rtol[small], log_value[small], log_slope[small] = tail_sum(x[small], n[small], p[small])
    big = ~small
    if big.any():
        ab, bb, pb = a[big], b[big], p[big]
        if tail == "F":
            value[big] = v = special.betaincc(ab, bb, pb)
            rtol[big] = np.where(_symmetric_trap(ab, bb, pb), np.inf, boost_rtol_f(x[big], n[big], v))
        else:
            v = special.betainc(ab, bb, pb)
            v, r = _underflow_guard(ab, n[big], pb, v, boost_rtol_g(ab, v))
            value[big] = v
            rtol[big] = np.where(_symmetric_trap(ab, bb, pb), np.inf, r)
        if logs:
            log_value[big] = np.log(value[big])
            log_slope[big] = _log_density(ab, bb, pb) + np.log(pb) - log_value[big]
    return value, rtol, log_value, log_slope


def tail_pair(c_rep, x, n, z):
    """``T = I_w(x, n - x + 1) = P(Bin(n, w) >= x)`` at ``w = z`` (where ``c_rep`` is False)
    or at ``w = 1 - z`` (True: z is the complement c, and T the upper tail F of ``n - x``
    at c), for ``2 <= x <= n - 1``.

    Returns ``(value, rtol, log_value)`` as :func:`_tail`: G's direct sum for
    ``x <= SMALL_X``, else scipy's ``betainc`` (:func:`boost_rtol_g`; the caller holds a
    point as w only where ``n - x > SMALL_X`` too, the range its error was measured in);
    F's direct sum for ``n - x <= SMALL_X``, else ``betaincc`` (:func:`boost_rtol_f`).
    ``log_value`` is -inf where Boost's value underflows, +inf for G's flag ``T > 1/2``.
    """
    value, rtol, log_value = np.empty_like(z), np.empty_like(z), np.empty_like(z)
    y = n - x
    f_sum = c_rep & (y <= SMALL_X)
    g_sum = ~c_rep & (x <= SMALL_X)
    f_big = c_rep & ~f_sum
    g_big = ~c_rep & ~g_sum
    if f_sum.any():
        value[f_sum], rtol[f_sum], log_value[f_sum], _ = _cdf_small(y[f_sum], n[f_sum], z[f_sum])
    if g_sum.any():
        value[g_sum], rtol[g_sum], log_value[g_sum], _ = _sf_small(x[g_sum], n[g_sum], z[g_sum])
    if f_big.any():
        yb, nb, zb = y[f_big], n[f_big], z[f_big]
        value[f_big] = v = special.betaincc(yb + 1.0, nb - yb, zb)
        rtol[f_big] = np.where(_symmetric_trap(yb + 1.0, nb - yb, zb), np.inf, boost_rtol_f(yb, nb, v))
    if g_big.any():
        xb, nb, zb = x[g_big], n[g_big], z[g_big]
        v = special.betainc(xb, nb - xb + 1.0, zb)
        v, r = _underflow_guard(xb, nb, zb, v, boost_rtol_g(xb, v))
        value[g_big] = v
        rtol[g_big] = np.where(_symmetric_trap(xb, nb - xb + 1.0, zb), np.inf, r)
    big = f_big | g_big
    if big.any():
        with np.errstate(divide="ignore"):
            log_value[big] = np.log(value[big])
    return value, rtol, log_value


def chernoff_g(x, n, p):
    """A rigorous upper bound on G = P(Bin(n, p) >= x): exp(-n KL(x/n || p)) for
    p <= x/n (1 above), its exponent lowered by far more than its rounding (1e-10 of the
    terms' size, with every operation within a few ulp)."""
    q = x / n
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t1 = x * (np.log(q) - np.log(p))
        t2 = np.where(q < 1.0, (n - x) * (np.log1p(-q) - np.log1p(-p)), 0.0)
        exponent = -(t1 + t2) + 1e-10 * (np.abs(t1) + np.abs(t2)) + 1e-300
        bound = fl.up(np.exp(exponent) * (1.0 + 4.0 * fl.ULP))
    return np.where(p < q, np.minimum(bound, 1.0), 1.0)


def _underflow_guard(x, n, p, value, rtol):
    """Where ``betainc`` returned less than ``BOOST_MIN`` (it may have underflowed, see the
    module docstring), the Chernoff bound instead, with rtol = 1: an upper bound only,
    so it can prove ``G <= beta`` (when twice it is below) and never ``G > beta``."""
    low = value < BOOST_MIN
    if low.any():
        value = value.copy()
        rtol = rtol.copy()
        value[low] = chernoff_g(x[low], n[low], p[low])
        rtol[low] = 1.0
    return value, rtol


def _symmetric_trap(a, b, p):
    """Where Boost's ibeta(a, b, p) is not to be trusted: a == b and p < 1/2 with 1 - p
    not a float. There it works with 1 - p rounded and is off by about b 2**-54
    (6e-5 at a = b = 5e11, 6e-6 at 5e10; ``tests/test_bounds.py``); one ulp away, or
    with a != b, it is within its error bound."""
    return (a == b) & (p < 0.5) & ((1.0 - (1.0 - p)) != p)


def boost_rtol_g(x, value):
    """The relative error assumed for ``value = scipy.special.betainc(x, b, p)`` (x > 128).

    ``BOOST_G_COEF * (sqrt(x (|log value| + 1)) + 1)`` ulp; infinite (no proof) for a
    value below ``BOOST_MIN``, where Boost may have underflowed (module docstring; the
    tail evaluations put :func:`chernoff_g` there).
    """
    depth = np.abs(np.log(np.maximum(value, BOOST_MIN)))
    rtol = BOOST_G_COEF * (np.sqrt(x * (depth + 1.0)) + 1.0) * fl.ULP
    return np.where(value >= BOOST_MIN, rtol, np.inf)


def boost_rtol_f(x, n, value):
    """The relative error assumed for ``value = scipy.special.betaincc(x + 1, n - x, p)``
    (x > 128): ``max(BOOST_RTOL_F, (sqrt(min(x + 1, n - x)) + 1) ulp)``.

    Unlike ``betainc``, ``betaincc`` was not seen to underflow: at 1,110 points with
    values below 1e-300 it agreed with the mpmath quadrature (to the subnormal ulp), so
    a value of 0 still proves ``F <= beta``.
    """
    del value  # the same bound at every depth
    return np.maximum(BOOST_RTOL_F, (np.sqrt(np.minimum(x + 1.0, n - x)) + 1.0) * fl.ULP)


def _slope_at_level(tail: str, x, n, p, tau: float):
    """|d log T / d log p| at p, taking T(p) = tau (the slope at the root, if p is near it)."""
    if tail == "F":
        log_dens = _log_density(x + 1.0, n - x, p)
    else:
        log_dens = _log_density(x, n - x + 1.0, p)
    slope = np.exp(log_dens + np.log(p) - np.log(tau))
    return np.where(np.isfinite(slope) & (slope > 0), slope, 1.0)


def _newton(tail: str, x, n, p, tau: float):
    """One Newton step on log T(p) = log tau in log p, at most 0.5 in log p.

    Returns (new p, |d log T / d log p| at p).
    """
    _, _, log_value, log_slope = _tail(tail, x, n, p)
    slope = np.exp(log_slope)
    step = (log_value - np.log(tau)) / slope
    slope = np.where(np.isfinite(slope) & (slope > 0), slope, 1.0)
    step = np.where(np.isfinite(step), np.clip(step, -0.5, 0.5), 0.0)
    falls = 1.0 if tail == "F" else -1.0  # F falls with p, G rises
    return np.clip(p * np.exp(falls * step), 5e-324, 1.0), slope


def _rtol_guess(tail: str, x, n, p, tau: float):
    """The error bound :func:`_tail` will report near the root (sizes the first margin)."""
    if tail == "F":
        small, big_rtol, extra = x <= SMALL_X, boost_rtol_f(x, n, tau), 0.0
    else:
        # G's sum runs about n p + 30 terms past x (measured), at most 1200
        mean = n * p
        small, big_rtol, extra = x <= SMALL_X_G, boost_rtol_g(x, tau), np.minimum(2.0 * mean + 8.0 * np.sqrt(mean) + 50.0, 1200.0)
    # p = 1 gives an infinite guess: the margin saturates
    direct = (2.0 * np.abs(n * np.log1p(-p)) + 2.0 * abs(np.log(tau)) + 6.0 * (x + extra) + 8.0) * fl.ULP
    return np.where(small, direct, big_rtol)


def _sides(tail: str, value, rtol, tau: float):
    """``(p >= root proven, p <= root proven)`` from T(p) = ``value`` and its error bound.

    T <= tau proven puts p above the root of a falling F, below that of a rising G.
    A sum computed as 0 is below tau: F's sum is 0 only once its (accurate) log has
    fallen below -745; G's sum also when its first term underflows, at p < 1e-308,
    where G <= (n p)**x / x! < 1e-590 for x >= 2; so is Boost's F (:func:`boost_rtol_f`).
    A ``betainc`` value below ``BOOST_MIN`` carries an infinite rtol and proves nothing (Boost returns 0 for some true values of 1e-246).
    G's sum is +inf only where G >= 1/2 (:func:`_sf_small`), above every tau <= 1/2.
    """
    with np.errstate(invalid="ignore"):  # 0 * inf: a betainc value that underflowed
        err = fl.up(value * rtol)
        le = ((value == 0.0) & (rtol < np.inf)) | (fl.up(value + err) <= tau)
        gt = (value == np.inf) | (fl.down(value - err) > tau)
    return (le, gt) if tail == "F" else (gt, le)


def _tight(value, tau: float, margin, slope):
    """Whether a proven candidate, ``margin`` (relative) from the point it was moved
    from, is also close to the root: its tail within 8 margins' worth of ``tau``.

    With ``slope`` = |d log T / d log p| that puts it within about 8 ``margin`` of the
    root. Only where the linear model holds (8 margin slope <= 1/4, margin < 1e-3):
    a margin grown from a wrong slope would accept a safe but loose candidate.
    """
    spread = 8.0 * margin * slope
    return (np.abs(value - tau) <= tau * spread) & (spread <= 0.25) & (margin < 1e-3)


def _candidate(p, margin, toward_up: bool):
    """p moved by the relative ``margin`` up (or down), rounded that way, in [0, 1]."""
    if toward_up:
        return np.clip(fl.up(p * (1.0 + margin)), 0.0, 1.0)
    return np.clip(fl.down(p * (1.0 - margin)), 0.0, 1.0)


def safe_quantile(kind: str, x, n, beta: float):
    """Verified-safe Clopper-Pearson bounds (float arrays of equal shape).

    ``kind='upper'`` (0 < x < n) returns values >= the exact upper bound,
    ``kind='lower'`` (2 <= x < n; x = 1 is a closed form in :mod:`topk_bounds.bounds`)
    values <= the exact lower bound, each proven by a tail evaluation with a bounded
    error and tight (see the module docstring). Each element is handled on its own, so
    a result never depends on the other elements of the batch. Assumes
    ``LEVEL_MIN <= beta < 1`` and ``n <= N_MAX`` (checked by the callers); raises
    ``ArithmeticError`` for a bound that cannot be found.
    """
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    if x.size and (x.min() < (1 if kind == "upper" else 2) or np.any(x >= n)):
        raise ValueError(f"safe_quantile({kind!r}) needs {'0' if kind == 'upper' else '1'} < x < n")
    # the equation solved: T(p) = tau for the smaller of the two tails at the root, so
    # that a level near 1 keeps its digits (1 - beta is exact for beta >= 1/2):
    # upper: F_x = beta, or G_(x+1) = 1 - beta; lower: G_x = beta, or F_(x-1) = 1 - beta
    if beta <= 0.5:
        tail, xt, tau = ("F" if kind == "upper" else "G"), x, beta
    else:
        tail, xt, tau = ("G", x + 1.0, 1.0 - beta) if kind == "upper" else ("F", x - 1.0, 1.0 - beta)
    with np.errstate(all="ignore"):  # far from the root tails overflow or vanish: handled
        return _safe_quantile(tail, xt, n, tau, kind == "upper", (kind, x, beta))


def _safe_quantile(tail: str, x, n, tau: float, up: bool, names):
    """:func:`safe_quantile` for ``T(p) = tau`` (``T`` as in :func:`_tail` at count x):
    the root moved up (``up``, an upper bound) or down, proven and tight."""
    if tail == "F":
        p = special.betainccinv(x + 1.0, n - x, tau)
        small = x <= SMALL_X
    else:
        p = special.betaincinv(x, n - x + 1.0, tau)
        small = x <= SMALL_X_G
    p = np.where(np.isfinite(p), np.clip(p, 5e-324, 1.0), np.clip(x / n, 5e-324, 1.0))
    # scipy's inverse can be far off (3e-8 for small x at n ~ 1e9, 0.4% to a factor 2 for
    # x near 1000): polish small x up front, where the tail is a cheap exact sum;
    # elsewhere it is usually good to ~1e-14, so it is verified first
    slope = _slope_at_level(tail, x, n, p, tau)
    if small.any():
        p[small], slope[small] = _newton(tail, x[small], n[small], p[small], tau)
    margin = 2.0 * _rtol_guess(tail, x, n, p, tau) / slope + 4.0 * fl.ULP
    cand = _candidate(p, margin, up)
    cv, cr, _, _ = _tail(tail, x, n, cand, logs=False)
    # T(cand) within cv (1 +- cr) proves the side (one more ulp for the product); a
    # candidate is accepted only if also tight, not a safe but loose start
    above, below = _sides(tail, cv, cr, tau)
    done = (above if up else below) & _tight(cv, tau, margin, slope)
    out = cand
    rest = np.flatnonzero(~done)
    if rest.size:  # solved again, from the polished start
        out[rest] = _solve_safeguarded(tail, x[rest], n[rest], tau, up, p[rest],
                                       (names[0], names[1][rest], names[2]), n[rest])
    return out


def _expit(s):
    """p = 1 / (1 + exp(-s)) without overflow."""
    e = np.exp(-np.abs(s))
    return np.where(s >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _logit(p):
    return np.log(p) - np.log1p(-p)


# the logits of the smallest float and of the largest below 1: the points evaluated
_S_MIN, _S_MAX = float(_logit(5e-324)), float(_logit(1.0 - 2.0**-53))


def _solve_safeguarded(tail: str, x, n, tau: float, up: bool, p, names, n_names):
    """Bounds the fast path did not settle: safeguarded Newton in s = logit(p), then proofs.

    The logit keeps both ends in view: log F is about linear in it near p = 1 (an upper
    bound within 1e-15 of 1), log G near p = 0. Every tail evaluation whose sign is
    proven narrows a bracket [lo, hi] (in p) around the root; a Newton step that would
    leave it is replaced by an expansion from the current point (a jump in s that
    doubles each time) toward an end not yet reached, or by bisection in s. Once the
    Newton step moves p by less than 1e-4, a safe candidate and an unsafe one, a margin
    either side of the Newton point, are evaluated; the safe one is accepted when proven
    and tight, and a bracket narrower than ``_BRACKET_RTOL`` settles a bound at its safe
    end. ``names = (kind, x, beta)`` and ``n_names`` are for the error message.
    """
    falls = 1.0 if tail == "F" else -1.0  # F falls with p, G rises
    log_tau = np.log(tau)
    s = np.clip(_logit(p), _S_MIN, _S_MAX)
    # the start: p = 1 (F = 0, G = 1) and the smallest float (the exact bounds lie within)
    lo, hi = np.full_like(s, 5e-324), np.ones_like(s)
    lo_set, hi_set = np.zeros(s.shape, bool), np.zeros(s.shape, bool)
    jump = np.full_like(s, 0.25)
    grow = np.ones_like(s)
    out = np.full_like(s, np.nan)
    todo = np.arange(s.size)

    def narrow(idx, points, is_above, is_below):
        hi[idx] = np.where(is_above, np.minimum(hi[idx], points), hi[idx])
        hi_set[idx] |= is_above
        lo[idx] = np.where(is_below, np.maximum(lo[idx], points), lo[idx])
        lo_set[idx] |= is_below

    for _ in range(_MAX_ROUNDS):
        st = s[todo]
        pt = _expit(st)
        value, rtol, log_value, log_slope = _tail(tail, x[todo], n[todo], pt)
        above, below = _sides(tail, value, rtol, tau)
        narrow(todo, pt, above, below)
        slope = np.exp(log_slope)  # |d log T / d log p|; in s it is slope (1 - p)
        step = falls * (log_value - log_tau) / (slope * (1.0 - pt))
        ok_slope = np.isfinite(slope) & (slope > 0) & (pt < 1.0)
        finished = np.zeros(todo.size, bool)
        lo_before, hi_before = lo[todo], hi[todo]
        near = ok_slope & (np.abs(step) * (1.0 - pt) <= 1e-4)
        if near.any():
            # the candidates sit a margin either side of the Newton point
            k = todo[near]
            pk, sk = _expit(st[near] + step[near]), slope[near]
            margin = grow[k] * (2.0 * np.maximum(rtol[near], _rtol_guess(tail, x[k], n[k], pk, tau)) / sk
                                + 4.0 * fl.ULP)
            safe = _candidate(pk, margin, up)
            unsafe = _candidate(pk, margin, not up)
            cv, cr, _, _ = _tail(tail, np.tile(x[k], 2), np.tile(n[k], 2), np.concatenate([safe, unsafe]),
                                 logs=False)
            c_above, c_below = _sides(tail, cv, cr, tau)
            # the proven ones narrow the bracket (its width settles some bounds below)
            narrow(k, safe, c_above[:k.size], c_below[:k.size])
            narrow(k, unsafe, c_above[k.size:], c_below[k.size:])
            safe_ok = c_above[:k.size] if up else c_below[:k.size]
            accept = safe_ok & _tight(cv[:k.size], tau, margin, sk)
            out[k[accept]] = safe[accept]
            grow[k] *= np.where(safe_ok, 1.0, 2.0)
            finished[np.flatnonzero(near)[accept]] = True
        # a bracket narrower than _BRACKET_RTOL settles the bound at its safe end: proven,
        # or the end it started from (p = 1 for an upper bound, 5e-324 for a lower one;
        # both valid: every lower bound with x >= 2 exceeds 1e-170)
        p_lo, p_hi = lo[todo], hi[todo]
        closed = ~finished & (p_hi - p_lo <= _BRACKET_RTOL * p_hi)
        out[todo[closed]] = (p_hi if up else p_lo)[closed]
        finished |= closed
        # next point: Newton inside the bracket, else expand toward an end not reached (or
        # at p = 1, where s is infinite), else bisect in s. (From the unsafe side of a
        # concave log T Newton lands on the safe side, possibly far when the slope there
        # is small; from the safe side it climbs toward the root.)
        lo_s, hi_s = _logit(p_lo), _logit(p_hi)
        ok_step = ok_slope & np.isfinite(step)
        s_new = st + step
        inside = ok_step & (s_new > lo_s) & (s_new < hi_s)
        # Newton's point lies past an end a candidate just proved (next to it): go on from
        # that end, whose Newton step approaches the root from its side
        from_lo = ~inside & ok_step & (s_new <= lo_s) & (p_lo > lo_before)
        from_hi = ~inside & ok_step & (s_new >= hi_s) & (p_hi < hi_before)
        go = np.where(below, 1.0, np.where(above, -1.0, np.where(ok_step, np.sign(step), 0.0)))
        rest = ~inside & ~from_lo & ~from_hi
        expand_up = rest & (go > 0) & (~hi_set[todo] | np.isinf(hi_s))
        expand_down = rest & (go < 0) & ~lo_set[todo]
        js = jump[todo]
        s_new = np.where(inside, s_new, np.where(from_lo, lo_s, np.where(from_hi, hi_s, 0.5 * (lo_s + hi_s))))
        s_new = np.where(expand_up, np.minimum(st + js, 0.5 * (st + hi_s)), s_new)
        s_new = np.where(expand_down, np.maximum(st - js, 0.5 * (st + lo_s)), s_new)
        # the jump doubles over consecutive expansions and starts again after a Newton step
        jump[todo] = np.where(expand_up | expand_down, 2.0 * js, np.where(inside, 0.25, js))
        s[todo] = np.clip(s_new, _S_MIN, _S_MAX)
        todo = todo[~finished]
        if todo.size == 0:
            return out
    i = todo[0]
    kind, x_names, beta = names
    raise ArithmeticError(
        f"the Clopper-Pearson {kind} bound for x = {int(x_names[i])}, n = {int(n_names[i])}, "
        f"beta = {beta!r} could not be found: no proven, tight float64 value after "
        f"{_MAX_ROUNDS} rounds (bracket [{float(lo[i])!r}, {float(hi[i])!r}])"
    )
