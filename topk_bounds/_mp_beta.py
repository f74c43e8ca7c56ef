"""Arbitrary-precision one-sided Clopper-Pearson bounds, for n up to 10**12.

The one-sided Clopper-Pearson upper bound at level ``beta`` for ``x`` successes
out of ``n`` trials is the unique ``p`` in (0, 1] with ``P(Bin(n, p) <= x) = beta``,
that is the ``(1 - beta)``-quantile of ``Beta(x + 1, n - x)``. The lower bound is
the ``beta``-quantile of ``Beta(x, n - x + 1)`` and by symmetry
``1 - lower(x) = upper(n - x)``. This module computes all three to (nearly) any
number of decimal digits with mpmath, each rounded toward its safe side; it is the
reference the float64 code is checked against, and it is meant for counts as large
as ``n = limits.N_MAX = 10**12``.

Why not ``mpmath.betainc``? Its series converges very slowly around ``n = 1e5``
and not at all near ``n = 1e9``. Summing the binomial tail term by term needs
about ``15 * sqrt(x)`` terms at 50 digits, too many for ``x ~ 1e11``.

Algorithm
---------
Each bound is the root ``z`` of ``T(z) = tau`` for one tail ``T`` of one Beta
density: the upper bound of ``x`` solves it for ``Beta(x + 1, n - x)``, the lower
bound for ``Beta(x, n - x + 1)`` (directly, so a lower bound of 1e-200 keeps all its
digits). Write ``f(t) = (a-1) log t + (b-1) log1p(-t) - log B(a, b)`` for the
log-density of ``Beta(a, b)``. The edges are closed forms and never reach the
solver: upper(n) = 1, upper(0) = ``-expm1(log(beta) / n)``, upper(n - 1) =
``(1 - beta)**(1/n)``, lower(0) = 0, lower(1) = ``-expm1(log1p(-beta) / n)``,
lower(n) = ``beta**(1/n)``. Otherwise ``a, b >= 2``, the density is log-concave and
vanishes at both ends, and:

1. *Which tail, which variable.* ``T`` is the smaller tail: the one whose level is
   ``beta`` when ``beta <= 1/2``, the other one with ``tau = 1 - beta`` otherwise
   (no digits are lost to ``1 - T`` when ``beta`` is near 1). The unknown is
   ``s = logit(z)``: ``z = 1 / (1 + exp(-s))`` and ``1 - z = 1 / (1 + exp(s))``
   both keep full relative precision, so a bound 1e-150 away from 1 (``x = n - 2``,
   ``beta = 1e-300``) is found as accurately as one 1e-150 away from 0.
2. *Tail by quadrature.* ``T(z) = exp(f(z)) * w * I`` with
   ``I = integral_0^U exp(g(u)) du`` and ``g(u) = f(z +- w u) - f(z)``
   ``= (a-1) log1p(+-w u / z) + (b-1) log1p(-+w u / (1 - z))``, the sign pointing
   along the tail. The scale ``w = 1 / max(|f'(z)|, sqrt(-f''(z)))`` is the
   density's local width (its standard deviation in the bulk, its decay length
   in a far tail), so ``g`` changes by O(1) per unit of ``u``. ``I`` is summed over
   the pieces ``[0, 1], [1, 2], [2, 4], ...`` with Gauss-Legendre quadrature
   (``mpmath.quad``, tanh-sinh as a fallback; each piece's error estimate must be
   below ``10**-(dps + 8)`` of the sum) until, by log-concavity, the rest of the
   integral, at most ``exp(g(U)) / |g'(U)|``, is below ``10**-(dps + 10)`` of the
   sum. Only ``f(z)`` holds the huge cancellation of ``log B(a, b)`` (terms of size
   ``n log n``); it is computed once per iterate with ``dps + 30`` digits. The
   integrand cancels at most ``log10(150 sqrt(n))`` digits and is evaluated with
   ``dps + 20`` digits (a precision that depends on ``dps`` only, so mpmath's
   cached nodes are reused across calls).
3. *Solve.* ``F(s) = log T(z) - log tau = 0`` by Halley's method with exact
   derivatives (``dT/dz = -+exp(f(z))``, so ``d log T / dz = -+1/(w I)``,
   ``d2 log T / dz2 = (d log T / dz) (f'(z) - d log T / dz)``), kept inside a
   bracket of points known to lie on either side (bisection when a step leaves
   it, plain Newton far from the root, where Halley's correction stalls). The start
   is scipy's float64 ``betainccinv`` / ``betaincinv`` (for ``z > 1/2`` the mirrored
   call, which gives ``1 - z`` to full relative precision). scipy's inverse can be
   far off (a factor of two for x = 1000, n = 1e9) and cannot help below 1e-300, so
   a quadrature-free model, ``log T ~ min(0, f(z) + log w)``, vets it first (a start
   where the model is off by more than 3 is dropped), and when ``|F|`` at the start
   exceeds 1, or there is none, the model is bisected for a second start and the
   better one is kept. Iteration stops once a step is below ``10**-((dps + 6)/2)`` of the width
   ``w`` (cubic convergence makes the next error negligible) or below
   ``10**-(dps + 8)`` in ``s``.
4. *Round to the safe side, and check.* The root is widened by ``2**(1 - prec)``
   relative (at least one unit in the last place of the ``prec = dps_to_prec(dps)``
   bits returned) toward the safe side (upper bounds and complements up, lower
   bounds down) and rounded to ``prec`` bits in the same direction. The tail is then
   evaluated *at the returned number* and must confirm its side, ``F`` of the right
   sign and larger than ``10**-(dps + 5)``, a tenfold cushion over the errors of
   step 2. Should it not (never seen), the widening grows eightfold, twice; then an
   ``ArithmeticError`` names the bound.

A direct sum of the binomial pmf would be as fast for small ``x`` (or small
``n - x``), but one algorithm everywhere keeps a single code path, and the
literal binomial sum stays available as an independent check in the tests.

Accuracy and speed
------------------
Every result is on the safe side of the exact bound (checked by step 4) and within
``2**(3 - prec)`` relative of it (about 1.1e-50 at ``dps = 50``): the widening, the
directed rounding and the solver's error (below ``10**-(dps + 4)``). Against
independent computations at ``dps = 50`` (``mpmath.findroot`` on the literal
binomial sum ``sum_{k<=x} C(n, k) p^k (1-p)^(n-k)`` with exact binomial
coefficients, for ``min(x, n - x) <= 30`` and any ``n`` up to 10**12; on
``mpmath.betainc`` for ``n <= 200``; on a truncated pmf series in the bulk at
``n = 10**6`` and ``10**12``) ``tests/test_mp_beta.py`` asserts 1e-45 relative and
the side.

One call at ``dps = 50`` takes 5 to 140 ms (``n`` from 10 to 10**12, ``x`` near 0,
``n/2`` or ``n``, ``beta`` in {1e-3, 1e-7, 0.3}; CPU time on a shared 2-core machine),
plus a one-time 0.3 to 0.6 s per ``dps`` for mpmath's Gauss-Legendre nodes. The check
of step 4 is one more quadrature: over the bounds of realistic inputs (n = 1e5) a call
costs 1.5 times what it did without it. Cost grows with ``dps``: about 0.5 s at
``dps = 100`` and 1.3 s at ``dps = 200`` before the check (after the first call, which
computes the nodes: 2 s and 11 s).

Every function runs inside ``mpmath.workdps`` and leaves ``mpmath.mp.dps``
unchanged; the returned ``mpf`` has ``dps_to_prec(dps)`` bits.
"""

from __future__ import annotations

import numbers

import mpmath
import numpy as np
from mpmath import libmp, mp
from scipy import special

from .limits import DPS_MIN, N_MAX

__all__ = ["mp_cp_upper", "mp_cp_lower", "mp_cp_lower_complement", "N_MAX"]

# Guard digits: ``f(z)`` holds terms of size ~ n log n ~ 3e13 that cancel to O(1);
# the quadrature integrand cancels terms of size <= ~150 sqrt(n) ~ 2e8.
_GUARD_F = 30
_GUARD_QUAD = 20
# The rest of the tail integral may be left off once below 10**-(dps + this) of it.
_GUARD_CUTOFF = 10
# The check of a rounded result needs |F| above 10**-(dps + this): F's error is below
# 10**-(dps + 6) (the quadrature pieces at 10**-(dps + 8) each, f(z) at dps + 30 digits).
_GUARD_CHECK = 5
_MAX_ITER = 200


# ----------------------------------------------------------------------------------
# argument checking
# ----------------------------------------------------------------------------------
def _as_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} ({value!r}) must be an integer")
    return int(value)


def _check(x, n, beta, dps):
    """Validate the arguments; return ``(x, n, beta as an exact mpf, dps)``.

    Any level ``0 < beta < 1`` is accepted here, also an ``mpf`` far below the float
    range (this module is the reference); the public functions of
    :mod:`topk_bounds.bounds` impose ``limits.LEVEL_MIN``.
    """
    n = _as_int("n", n)
    if not 1 <= n <= N_MAX:
        raise ValueError(f"n ({n!r}) must be an integer with 1 <= n <= {N_MAX}")
    x = _as_int("x", x)
    if not 0 <= x <= n:
        raise ValueError(f"x ({x!r}) must be an integer with 0 <= x <= n = {n}")
    dps = _as_int("dps", dps)
    if dps < DPS_MIN:
        raise ValueError(f"dps ({dps!r}) must be an integer >= {DPS_MIN}")
    if isinstance(beta, mpmath.mpf):
        beta_mp = beta
    elif isinstance(beta, (float, np.floating)) and not isinstance(beta, bool):
        beta_mp = mpmath.mpf(float(beta))  # exact: a double is a binary fraction
    else:
        raise ValueError(f"beta ({beta!r}) must be a float or an mpmath.mpf with 0 < beta < 1")
    if not (0 < beta_mp < 1):  # also rejects nan
        raise ValueError(f"beta ({beta!r}) must satisfy 0 < beta < 1")
    return x, n, beta_mp, dps


# ----------------------------------------------------------------------------------
# the tail integral
# ----------------------------------------------------------------------------------
def _width(am1, bm1, z, zc):
    """Local width ``1 / max(|f'(z)|, sqrt(-f''(z)))`` of the Beta density at z."""
    d1 = am1 / z - bm1 / zc
    d2 = am1 / z**2 + bm1 / zc**2
    return 1 / max(abs(d1), mp.sqrt(d2))


def _scaled_tail(am1, bm1, z, zc, upper, dps):
    """Return ``(w, I)`` with ``tail(z) = exp(f(z)) * w * I`` for Beta(am1 + 1, bm1 + 1).

    ``zc = 1 - z`` (passed separately so that both keep full relative precision).
    ``upper`` selects the tail ``integral_z^1`` (else ``integral_0^z``). Works at
    ``dps + _GUARD_QUAD`` digits. Assumes ``am1, bm1 >= 1`` and ``0 < z < 1``.
    """
    with mp.workdps(dps + _GUARD_QUAD):
        z, zc = +z, +zc
        w = _width(am1, bm1, z, zc)
        s = 1 if upper else -1
        cz = s * w / z
        cc = -s * w / zc
        umax = (zc if upper else z) / w
        log1p, exp = mp.log1p, mp.exp

        def g(u):
            e1, e2 = cz * u, cc * u
            if e1 <= -1 or e2 <= -1:  # at or beyond an end of (0, 1): density 0
                return mp.ninf
            return am1 * log1p(e1) + bm1 * log1p(e2)

        def dg(u):
            return am1 * cz / (1 + cz * u) + bm1 * cc / (1 + cc * u)

        def integrand(u):
            return exp(g(u))

        cutoff = mp.mpf(10) ** -(dps + _GUARD_CUTOFF)
        tol = mp.mpf(10) ** -(dps + _GUARD_CUTOFF - 2)
        total = mp.zero
        lo, hi = mp.zero, mp.one
        while True:
            last = hi >= umax
            if last:
                hi = umax
            piece, err = mp.quad(integrand, [lo, hi], method="gauss-legendre", error=True)
            if err > tol * max(piece, total):
                piece, err = mp.quad(integrand, [lo, hi], method="tanh-sinh", error=True)
                if err > tol * max(piece, total):
                    raise ArithmeticError(
                        f"quadrature of the Beta({am1 + 1}, {bm1 + 1}) tail did not converge "
                        f"on [{mp.nstr(lo, 5)}, {mp.nstr(hi, 5)}] (estimated error {mp.nstr(err, 3)})"
                    )
            total += piece
            if last:
                break
            slope = dg(hi)
            # log-concave integrand, decreasing at hi: the rest is <= exp(g(hi)) / |g'(hi)|
            if slope < 0 and exp(g(hi)) < cutoff * total * (-slope):
                break
            lo, hi = hi, 2 * hi
        return w, total


# ----------------------------------------------------------------------------------
# the solver
# ----------------------------------------------------------------------------------
def _expit_pair(s):
    """``(z, 1 - z)`` for ``z = 1 / (1 + exp(-s))``, both to full relative precision."""
    return 1 / (1 + mp.exp(-s)), 1 / (1 + mp.exp(s))


def _logs_of_pair(s):
    """``(log z, log(1 - z))`` for ``z = expit(s)``."""
    return -mp.log1p(mp.exp(-s)), -mp.log1p(mp.exp(s))


def _float_start(a, b, tau, upper):
    """logit of the float64 root of tail_{a,b}(z) = tau, as an mpf; None if scipy fails."""
    tau_f = float(tau)
    if not tau_f >= 1e-300:
        return None
    a_f, b_f = float(a), float(b)
    with np.errstate(all="ignore"):
        z = float(special.betainccinv(a_f, b_f, tau_f) if upper else special.betaincinv(a_f, b_f, tau_f))
        if not 0 < z < 1:
            return None
        if z <= 0.5:
            return mp.log(z) - mp.log1p(-z)
        # 1 - z from the mirrored tail: P(Beta(a, b) > z) = P(Beta(b, a) < 1 - z)
        zc = float(special.betaincinv(b_f, a_f, tau_f) if upper else special.betainccinv(b_f, a_f, tau_f))
    if not 0 < zc < 1:
        return None
    return mp.log1p(-zc) - mp.log(zc)


def _model_log_tail(am1, bm1, log_beta_fn, s, upper):
    """A quadrature-free model of log P(Beta > z) (``upper``) or log P(Beta < z) at
    ``z = expit(s)``: ``min(0, f(z) + log w(z))`` on the tail's side of the mode, within
    log 2 of the truth at the roots measured, and 0 on the other side, where the tail
    holds the mode (and at least about half the mass)."""
    beyond_mode = s < mp.log(mp.mpf(am1) / bm1) if upper else s > mp.log(mp.mpf(am1) / bm1)
    if beyond_mode:
        return mp.zero
    z, zc = _expit_pair(s)
    lz, lzc = _logs_of_pair(s)
    return min(mp.zero, am1 * lz + bm1 * lzc - log_beta_fn + mp.log(_width(am1, bm1, z, zc)))


def _model_start(am1, bm1, log_tau, log_beta_fn, upper):
    """logit of a rough root, from :func:`_model_log_tail` (no quadrature).

    The fallback when scipy cannot give a start (``tau`` below 1e-300, or a failure),
    or gives a poor one. Bisects in ``s = logit(z)`` on the tail side of the mode,
    where the model is monotone, until the bracket is narrower than the local width.
    """

    def model(s):
        return _model_log_tail(am1, bm1, log_beta_fn, s, upper)

    direction = 1 if upper else -1
    s_mode = mp.log(mp.mpf(am1) / bm1)
    if model(s_mode) <= log_tau:
        return s_mode
    near, step = s_mode, mp.one
    far = s_mode + direction * step
    while model(far) > log_tau:
        near, step = far, 2 * step
        far = s_mode + direction * step
    for _ in range(400):
        mid = (near + far) / 2
        z, zc = _expit_pair(mid)
        if abs(far - near) * z * zc < _width(am1, bm1, z, zc):
            break
        if model(mid) > log_tau:
            near = mid
        else:
            far = mid
    return (near + far) / 2


def _log_tail_minus(am1, bm1, z, zc, lz, lzc, log_beta_fn, log_tau, upper, dps):
    """``(F, dF/dz, w)`` with ``F = log tail(z) - log tau`` (one quadrature)."""
    w, integral = _scaled_tail(am1, bm1, z, zc, upper, dps)
    F = am1 * lz + bm1 * lzc - log_beta_fn + mp.log(w) + mp.log(integral) - log_tau
    return F, (-1 if upper else 1) / (w * integral), w


def _solve(a, b, tau, upper, dps):
    """Solve ``tail_{a,b}(z) = tau``; return ``(z, 1 - z)`` at ``dps + _GUARD_F`` digits.

    ``tail`` is ``P(Beta(a, b) > z)`` if ``upper`` else ``P(Beta(a, b) < z)``;
    ``a, b >= 2`` and ``0 < tau <= 1/2`` (assumed). The unknown is
    ``s = logit(z)``, which carries both ``z`` and ``1 - z`` to full relative
    precision.
    """
    am1, bm1 = a - 1, b - 1
    with mp.workdps(dps + _GUARD_F):
        log_tau = mp.log(tau)
        log_beta_fn = mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)
        # F(s) = log tail(z) - log tau: decreasing in s for the upper tail, increasing
        # for the lower one; the root lies in (s_lo, s_hi).
        sign = -1 if upper else 1
        s_lo, s_hi = mp.ninf, mp.inf

        def evaluate(s):
            z, zc = _expit_pair(s)
            lz, lzc = _logs_of_pair(s)
            F, Fz, w = _log_tail_minus(am1, bm1, z, zc, lz, lzc, log_beta_fn, log_tau, upper, dps)
            return F, Fz, w, z, zc

        def below_root(s, F):  # s < root, given F(s) != 0 (F increases with s iff sign > 0)
            return (F > 0) != (sign > 0)

        s = _float_start(a, b, tau, upper)
        # scipy's inverse can be far off (a factor 2 for x = 1000, n = 1e9): a start whose
        # model tail is off by more than e**3 is not worth its quadrature (on the wrong
        # side of the mode that takes seconds)
        if s is not None and abs(_model_log_tail(am1, bm1, log_beta_fn, s, upper) - log_tau) > 3:
            s = None
        state = evaluate(s) if s is not None else None
        if state is None or abs(state[0]) > 1:
            # scipy's start is missing or poor (its tail is off by more than a factor
            # e): try the model's start too and keep the better of the two
            s_model = _model_start(am1, bm1, log_tau, log_beta_fn, upper)
            state_model = evaluate(s_model)
            if state is not None and state[0] != 0:
                if below_root(s, state[0]):
                    s_lo = s
                else:
                    s_hi = s
            if state is None or abs(state_model[0]) < abs(state[0]):
                s, state = s_model, state_model
        accept_u = mp.mpf(10) ** (-(dps + 6) / 2.0)
        tiny = mp.mpf(10) ** -(dps + 8)
        for _ in range(_MAX_ITER):
            F, Fz, w, z, zc = state
            if F == 0:
                return z, zc
            if below_root(s, F):
                s_lo = max(s_lo, s)
            else:
                s_hi = min(s_hi, s)
            # dF/dz = sign / (w I) and d2F/dz2 = F_z (f'(z) - F_z); chain rule to s,
            # with dz/ds = z (1 - z)
            Fzz = Fz * (am1 / z - bm1 / zc - Fz)
            jac = z * zc
            Fs = jac * Fz
            Fss = jac * (zc - z) * Fz + jac * jac * Fzz
            step = -F / Fs
            denom = 1 - F * Fss / (2 * Fs * Fs)
            if 0.5 < denom < 2:
                step = step / denom  # Halley; far from the root its correction would stall
            # Towards an open end of the bracket, a step is capped at 2 max(1, |s|): from
            # a start where the tail is saturated (T ~ 1, so F ~ -log tau and F' ~ 0,
            # e.g. scipy's start 15x above the root for x = 1000, n = 1e12, tau = 1/2)
            # Newton's step is astronomically long (s = -5e4862 there).
            reach = 2 * max(1, abs(s))
            if step < -reach and s_lo == mp.ninf:
                step = -reach
            elif step > reach and s_hi == mp.inf:
                step = reach
            s_new = s + step
            if not s_lo < s_new < s_hi:  # safeguard: bisect the bracket, or widen it
                if s_lo == mp.ninf:
                    s_new = s_hi - 2 * max(1, abs(s_hi))
                elif s_hi == mp.inf:
                    s_new = s_lo + 2 * max(1, abs(s_lo))
                else:
                    s_new = (s_lo + s_hi) / 2
                step = s_new - s
            s = s_new
            # Halley converges cubically: once a step is below 10**-((dps+6)/2) of the
            # width the next error is far below 10**-dps; a step below 10**-(dps+8)
            # in s is below the precision wanted in z and 1 - z.
            if abs(step) * jac <= accept_u * w or abs(step) <= tiny:
                return _expit_pair(s)
            state = evaluate(s)
    raise ArithmeticError(
        f"Clopper-Pearson solver failed to converge for Beta({a}, {b}), tail {mp.nstr(tau, 10)}"
    )


def _round(value, prec, up):
    """``value`` rounded to ``prec`` bits toward +inf (``up``) or -inf."""
    return mp.make_mpf(libmp.mpf_pos(value._mpf_, prec, "c" if up else "f"))


def _widen(value, prec, up, ulps=2):
    """``value * (1 +- ulps 2**-prec)`` rounded to ``prec`` bits in the same direction."""
    with mp.workprec(prec + 64):
        moved = value * (1 + (1 if up else -1) * mp.mpf(ulps) * mp.mpf(2) ** -prec)
    return _round(moved, prec, up)


def _closed_form(compute, dps, up):
    """A closed-form bound computed at ``dps + 10`` digits (within a few units of its
    last place), widened by ``2**(1 - prec)`` toward the safe side and rounded there."""
    prec = libmp.dps_to_prec(dps)
    with mp.workdps(dps + 10):
        value = compute()
    return min(_widen(value, prec, up), mp.one) if up else _widen(value, prec, up)


def _safe_root(a, b, beta, lower_quantile, up, dps, what):
    """The ``beta``-quantile (``lower_quantile``) or ``(1 - beta)``-quantile of
    ``Beta(a, b)``, rounded to ``dps_to_prec(dps)`` bits toward +inf (``up``) or
    -inf, and checked by evaluating the tail at the rounded number.

    The quantile ``z`` solves ``P(Beta(a, b) < z) = beta`` (``lower_quantile``) or
    ``P(Beta(a, b) > z) = beta``; the smaller tail is solved (step 1 of the module
    docstring). ``what`` names the bound in an error message.
    """
    # the tail that is solved, and its level
    if beta <= 0.5:
        upper_tail, tau = (not lower_quantile), beta
    else:
        with mp.workdps(dps + _GUARD_F):
            upper_tail, tau = lower_quantile, 1 - beta
    z, _ = _solve(a, b, tau, upper_tail, dps)
    prec = libmp.dps_to_prec(dps)
    am1, bm1 = a - 1, b - 1
    # F = log tail - log tau decreases in z for the upper tail; moving z up (``up``)
    # from the root must therefore leave F < 0 for the upper tail, F > 0 otherwise
    want = (-1 if upper_tail else 1) * (1 if up else -1)
    with mp.workdps(dps + _GUARD_F):
        log_tau = mp.log(tau)
        log_beta_fn = mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)
        eps = mp.mpf(10) ** -(dps + _GUARD_CHECK)
        for ulps in (2, 16, 128):
            cand = _widen(z, prec, up, ulps)
            if cand >= 1:
                return mp.one  # only when rounding up: 1 is a valid upper bound
            zc = 1 - cand
            F, _, _ = _log_tail_minus(am1, bm1, cand, zc, mp.log(cand), mp.log(zc),
                                      log_beta_fn, log_tau, upper_tail, dps)
            if want * F > eps:
                return cand
    raise ArithmeticError(
        f"the {what} could not be confirmed on its safe side after rounding to {dps} digits "
        f"(tail residual {mp.nstr(F, 3)} at {mp.nstr(cand, 20)})"
    )


# ----------------------------------------------------------------------------------
# public functions
# ----------------------------------------------------------------------------------
def mp_cp_upper(x: int, n: int, beta, dps: int) -> mpmath.mpf:
    """Exact one-sided Clopper-Pearson upper bound, to ``dps`` digits, rounded up.

    Parameters
    ----------
    x : int
        Number of successes, ``0 <= x <= n``.
    n : int
        Number of trials, ``1 <= n <= 10**12`` (``limits.N_MAX``).
    beta : float or mpmath.mpf
        The level, ``0 < beta < 1``: the probability that the bound falls below
        the true proportion. A float is taken as the exact binary number it is, an
        ``mpf`` as it is (never rounded to a float).
    dps : int
        Decimal digits wanted, ``>= 15`` (``limits.DPS_MIN``).

    Returns
    -------
    mpmath.mpf
        The unique ``p`` in (0, 1] with ``P(Bin(n, p) <= x) = beta``, the
        ``(1 - beta)``-quantile of ``Beta(x + 1, n - x)``, rounded *up* to
        ``prec = dps_to_prec(dps)`` bits: never below the exact bound, and within
        ``2**(3 - prec)`` relative of it (1.1e-50 at ``dps = 50``).

    Raises
    ------
    ValueError
        If an argument is outside the ranges above.
    ArithmeticError
        If the solver fails, or the tail at the rounded result does not confirm its
        side (neither has been seen).

    Notes
    -----
    ``x = n`` gives 1, ``x = 0`` gives ``1 - beta**(1/n)`` (computed as
    ``-expm1(log(beta) / n)``) and ``x = n - 1`` gives ``(1 - beta)**(1/n)``;
    otherwise the module's quadrature-and-Halley solver is used. Global mpmath
    precision is left unchanged.

    Examples
    --------
    Zero successes in ten trials, 95% one-sided bound: ``1 - 0.05**(1/10)``
    = 0.258865550893052278559385...

    >>> import mpmath
    >>> from topk_bounds._mp_beta import mp_cp_upper
    >>> p = mp_cp_upper(0, 10, 0.05, 20)
    >>> mpmath.nstr(p, 20)
    '0.25886555089305227856'

    The result carries ``dps`` digits whatever the global precision (15 here);
    print it with ``mpmath.nstr``. With half of a million trials successful the
    bound sits about 1.645 standard deviations (0.0005 each) above one half:

    >>> mpmath.nstr(mp_cp_upper(500_000, 10**6, 0.05, 15), 15)
    '0.500822926050523'

    Three successes in 10**12 trials, at level 1e-9:

    >>> mpmath.nstr(mp_cp_upper(3, 10**12, 1e-9, 30), 30)
    '2.91538065633615730666101183854e-11'
    """
    x, n, beta, dps = _check(x, n, beta, dps)
    if x == n:
        return mp.one
    if x == 0:
        return _closed_form(lambda: -mp.expm1(mp.log(beta) / n), dps, up=True)
    if x == n - 1:
        return _closed_form(lambda: mp.exp(mp.log1p(-beta) / n), dps, up=True)
    return _safe_root(x + 1, n - x, beta, False, True, dps,
                      f"upper bound for x = {x}, n = {n}, beta = {mp.nstr(beta, 17)}")


def mp_cp_lower(x: int, n: int, beta, dps: int) -> mpmath.mpf:
    """Exact one-sided Clopper-Pearson lower bound, to ``dps`` digits, rounded down.

    The ``beta``-quantile of ``Beta(x, n - x + 1)`` (the ``p`` with
    ``P(Bin(n, p) >= x) = beta``), solved for directly, so that a small bound keeps
    its full relative precision (``1 - mp_cp_lower_complement`` would lose the digits
    of the complement); ``lower(0) = 0``, ``lower(1) = 1 - (1 - beta)**(1/n)``,
    ``lower(n) = beta**(1/n)``. Parameters are those of :func:`mp_cp_upper`.

    Returns
    -------
    mpmath.mpf
        The lower bound rounded *down* to ``prec = dps_to_prec(dps)`` bits: never
        above the exact bound, and within ``2**(3 - prec)`` relative of it.

    Examples
    --------
    One success in 10**12 trials at level 1e-10 (the double 1.0000000000000000364e-10):
    ``1 - (1 - beta)**(1/n)``, about ``(beta / n) (1 + beta / 2)``, to all its digits
    (``1 - mp_cp_lower_complement`` would keep only the first 28 of them).

    >>> import mpmath
    >>> from topk_bounds._mp_beta import mp_cp_lower
    >>> mpmath.nstr(mp_cp_lower(1, 10**12, 1e-10, 50), 30)
    '1.00000000005000000036435480652e-22'
    """
    x, n, beta, dps = _check(x, n, beta, dps)
    if x == 0:
        return mp.zero
    if x == n:
        return _closed_form(lambda: mp.exp(mp.log(beta) / n), dps, up=False)
    if x == 1:
        return _closed_form(lambda: -mp.expm1(mp.log1p(-beta) / n), dps, up=False)
    return _safe_root(x, n - x + 1, beta, True, False, dps,
                      f"lower bound for x = {x}, n = {n}, beta = {mp.nstr(beta, 17)}")


def mp_cp_lower_complement(x: int, n: int, beta, dps: int) -> mpmath.mpf:
    """``1 - lower(x)`` for the one-sided Clopper-Pearson lower bound, to ``dps`` digits.

    ``lower(x)`` is the ``beta``-quantile of ``Beta(x, n - x + 1)`` (the ``p`` with
    ``P(Bin(n, p) >= x) = beta``); ``lower(0) = 0`` and ``lower(n) = beta**(1/n)``.
    Its complement equals ``mp_cp_upper(n - x, n, beta, dps)`` and is computed as
    that, so a lower bound close to 1 keeps full relative precision in ``1 - lower``.

    Parameters
    ----------
    x : int
        Number of successes, ``0 <= x <= n``.
    n : int
        Number of trials, ``1 <= n <= 10**12``.
    beta : float or mpmath.mpf
        The level, ``0 < beta < 1``.
    dps : int
        Decimal digits wanted, ``>= 15``.

    Returns
    -------
    mpmath.mpf
        ``1 - lower(x)`` rounded *up* (never below the exact complement, within
        ``2**(3 - prec)`` relative of it): exactly 1 at ``x = 0``,
        ``-expm1(log(beta) / n)`` at ``x = n``.

    Raises
    ------
    ValueError
        If an argument is outside the ranges above.

    Examples
    --------
    All ten of ten trials succeed: the lower bound is ``0.05**(1/10)``.

    >>> import mpmath
    >>> from topk_bounds._mp_beta import mp_cp_lower_complement
    >>> mpmath.nstr(mp_cp_lower_complement(10, 10, 0.05, 20), 20)
    '0.25886555089305227856'
    """
    x, n, beta, dps = _check(x, n, beta, dps)
    if x == 0:
        return mp.one
    return mp_cp_upper(n - x, n, beta, dps)
