"""Arbitrary-precision one-sided Clopper-Pearson bounds, for n up to 10**12.

The one-sided Clopper-Pearson upper bound at level ``beta`` for ``x`` successes
out of ``n`` trials is the unique ``p`` in (0, 1] with ``P(Bin(n, p) <= x) = beta``,
that is the ``(1 - beta)``-quantile of ``Beta(x + 1, n - x)``. The lower bound is
the ``beta``-quantile of ``Beta(x, n - x + 1)`` and by symmetry
``1 - lower(x) = upper(n - x)``. This module computes both to (nearly) any number
of decimal digits with mpmath; it is the reference the float64 code is checked
against, and it is meant for counts as large as ``n = 10**12``.

Why not ``mpmath.betainc``? Its series converges very slowly around ``n = 1e5``
and not at all near ``n = 1e9``. Summing the binomial tail term by term needs
about ``15 * sqrt(x)`` terms at 50 digits, too many for ``x ~ 1e11``.

Algorithm
---------
Write ``a = x + 1``, ``b = n - x`` and ``f(t) = (a-1) log t + (b-1) log1p(-t)
- log B(a, b)``, the log-density of ``Beta(a, b)``. The edges are closed forms
and never reach the solver: ``x = n`` gives 1, ``x = 0`` gives
``-expm1(log(beta) / n)`` and ``x = n - 1`` gives ``(1 - beta)**(1/n)``. Otherwise
``a, b >= 2``, the density is log-concave and vanishes at both ends, and:

1. *Which tail, which variable.* The equation is put in the form ``T(z) = tau``
   where ``T`` is the smaller tail: the upper tail ``Q(z) = P(Beta(a, b) > z)``
   with ``tau = beta`` when ``beta <= 1/2``, the lower tail with
   ``tau = 1 - beta`` otherwise (no digits are lost to ``1 - T`` when ``beta``
   is near 1). The unknown is ``s = logit(z)``: ``z = 1 / (1 + exp(-s))`` and
   ``1 - z = 1 / (1 + exp(s))`` both keep full relative precision, so a bound
   1e-150 away from 1 (``x = n - 2``, ``beta = 1e-300``) is found as accurately
   as one 1e-150 away from 0.
2. *Tail by quadrature.* ``T(z) = exp(f(z)) * w * I`` with
   ``I = integral_0^U exp(g(u)) du`` and ``g(u) = f(z +- w u) - f(z)``
   ``= (a-1) log1p(+-w u / z) + (b-1) log1p(-+w u / (1 - z))``, the sign pointing
   away from the bulk. The scale ``w = 1 / max(|f'(z)|, sqrt(-f''(z)))`` is the
   density's local width (its standard deviation in the bulk, its decay length
   in a far tail), so ``g`` changes by O(1) per unit of ``u``. ``I`` is summed over
   the pieces ``[0, 1], [1, 2], [2, 4], ...`` with Gauss-Legendre quadrature
   (``mpmath.quad``, tanh-sinh as a fallback; each piece's error estimate is
   checked) until, by log-concavity, the rest of the integral, at most
   ``exp(g(U)) / |g'(U)|``, is below ``10**-(dps + 10)`` of the sum. Only ``f(z)``
   holds the huge cancellation of ``log B(a, b)`` (terms of size ``n log n``);
   it is computed once per iterate with ``dps + 30`` digits. The integrand
   cancels at most ``log10(150 sqrt(n))`` digits and is evaluated with
   ``dps + 20`` digits (a precision that depends on ``dps`` only, so mpmath's
   cached nodes are reused across calls).
3. *Solve.* ``F(s) = log T(z) - log tau = 0`` by Halley's method with exact
   derivatives (``dT/dz = -+exp(f(z))``, so ``d log T / dz = -+1/(w I)``,
   ``d2 log T / dz2 = (d log T / dz) (f'(z) - d log T / dz)``), safeguarded by a
   bracket (bisection when a step leaves it). The start is scipy's float64
   ``betainccinv`` / ``betaincinv`` (for ``z > 1/2`` the mirrored call, which
   gives ``1 - z`` to full relative precision); when scipy cannot help
   (``tau < 1e-300``, an mpf level) a quadrature-free model,
   ``log T ~ f(z) + log w``, is bisected instead. Iteration stops once a step is
   below ``10**-((dps + 6)/2)`` of the width ``w`` (cubic convergence makes the
   next error negligible) or below ``10**-(dps + 8)`` in ``s``; the result is
   rounded once to ``dps`` digits. From a float64 start this takes two or three
   quadratures; scipy's start is off by up to 3e-8 for ``x <= ~40`` and
   ``1e5 <= n <= 5e9`` (scipy 1.17), which costs one more.

A direct sum of the binomial pmf would be as fast for small ``x`` (or small
``n - x``), but one algorithm everywhere keeps a single code path, and the
literal binomial sum stays available as an independent check in the tests.

Accuracy and speed
------------------
Against independent computations at ``dps = 50`` (``mpmath.findroot`` on the
literal binomial sum ``sum_{k<=x} C(n, k) p^k (1-p)^(n-k)`` with exact binomial
coefficients, for ``min(x, n - x) <= 30`` and any ``n`` up to 10**12; on
``mpmath.betainc`` for ``n <= 200``; on a truncated pmf series in the bulk at
``n = 10**6`` and ``10**12``) the largest relative error measured is 1.1e-51,
i.e. the final rounding; ``tests/test_mp_beta.py`` asserts 1e-45. Results at
``dps = 50`` and ``dps = 90`` agree to 1.3e-51 over a random sweep.

One call at ``dps = 50`` takes 5 to 40 ms for ``n <= 10`` or ``x`` near ``n`` and
50 to 400 ms otherwise (``n`` up to 10**12, ``x`` near 0 or ``n/2``, ``beta``
in {1e-3, 1e-7, 0.3}; measured on a shared, loaded 2-core machine), plus a
one-time 0.3 to 0.6 s per ``dps`` for mpmath's Gauss-Legendre nodes. Cost grows
with ``dps``: about 0.5 s at ``dps = 100`` and 1.3 s at ``dps = 200`` (after the
first call, which computes the nodes: 2 s and 11 s).

Every function runs inside ``mpmath.workdps`` and leaves ``mpmath.mp.dps``
unchanged; the returned ``mpf`` is rounded to ``dps`` digits.
"""

from __future__ import annotations

import numbers

import mpmath
import numpy as np
from mpmath import mp
from scipy import special

__all__ = ["mp_cp_upper", "mp_cp_lower_complement", "N_MAX"]

#: Largest number of trials accepted (the guard digits are sized for it).
N_MAX = 10**12

# Guard digits: ``f(z)`` holds terms of size ~ n log n ~ 3e13 that cancel to O(1);
# the quadrature integrand cancels terms of size <= ~150 sqrt(n) ~ 2e8.
_GUARD_F = 30
_GUARD_QUAD = 20
# The rest of the tail integral may be left off once below 10**-(dps + this) of it.
_GUARD_CUTOFF = 10
_MAX_ITER = 100


# ----------------------------------------------------------------------------------
# argument checking
# ----------------------------------------------------------------------------------
def _as_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} ({value!r}) must be an integer")
    return int(value)


def _check(x, n, beta, dps):
    """Validate the arguments; return ``(x, n, beta as an exact mpf, dps)``."""
    n = _as_int("n", n)
    if not 1 <= n <= N_MAX:
        raise ValueError(f"n ({n!r}) must be an integer with 1 <= n <= {N_MAX}")
    x = _as_int("x", x)
    if not 0 <= x <= n:
        raise ValueError(f"x ({x!r}) must be an integer with 0 <= x <= n = {n}")
    dps = _as_int("dps", dps)
    if dps < 1:
        raise ValueError(f"dps ({dps!r}) must be an integer >= 1")
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


def _model_start(am1, bm1, log_tau, log_beta_fn, upper):
    """logit of a rough root, from ``log tail ~ min(0, f(z) + log w(z))`` (no quadrature).

    The fallback when scipy cannot give a start (``tau`` below 1e-300, or a failure).
    Bisects in ``s = logit(z)`` on the tail side of the mode, where the model is
    monotone, until the bracket is narrower than the local width.
    """

    def model(s):
        z, zc = _expit_pair(s)
        lz, lzc = _logs_of_pair(s)
        return min(mp.zero, am1 * lz + bm1 * lzc - log_beta_fn + mp.log(_width(am1, bm1, z, zc)))

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
        s = _float_start(a, b, tau, upper)
        if s is None:
            s = _model_start(am1, bm1, log_tau, log_beta_fn, upper)
        # F(s) = log tail(z) - log tau: decreasing in s for the upper tail, increasing
        # for the lower one; the root lies in (s_lo, s_hi).
        sign = -1 if upper else 1
        s_lo, s_hi = mp.ninf, mp.inf
        accept_u = mp.mpf(10) ** (-(dps + 6) / 2.0)
        tiny = mp.mpf(10) ** -(dps + 8)
        for _ in range(_MAX_ITER):
            z, zc = _expit_pair(s)
            lz, lzc = _logs_of_pair(s)
            w, integral = _scaled_tail(am1, bm1, z, zc, upper, dps)
            F = am1 * lz + bm1 * lzc - log_beta_fn + mp.log(w) + mp.log(integral) - log_tau
            if F == 0:
                return z, zc
            if (F > 0) == (sign > 0):
                s_hi = min(s_hi, s)
            else:
                s_lo = max(s_lo, s)
            # dF/dz = sign / (w I) and d2F/dz2 = F_z (f'(z) - F_z); chain rule to s,
            # with dz/ds = z (1 - z)
            Fz = sign / (w * integral)
            Fzz = Fz * (am1 / z - bm1 / zc - Fz)
            jac = z * zc
            Fs = jac * Fz
            Fss = jac * (zc - z) * Fz + jac * jac * Fzz
            step = -F / Fs
            denom = 1 - F * Fss / (2 * Fs * Fs)
            if denom > 0.5:
                step = step / denom  # Halley
            s_new = s + step
            if not s_lo < s_new < s_hi:  # safeguard: bisect the bracket
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
    raise ArithmeticError(
        f"Clopper-Pearson solver failed to converge for Beta({a}, {b}), tail {mp.nstr(tau, 10)}"
    )


# ----------------------------------------------------------------------------------
# public functions
# ----------------------------------------------------------------------------------
def mp_cp_upper(x: int, n: int, beta, dps: int) -> mpmath.mpf:
    """Exact one-sided Clopper-Pearson upper bound, to ``dps`` significant digits.

    Parameters
    ----------
    x : int
        Number of successes, ``0 <= x <= n``.
    n : int
        Number of trials, ``1 <= n <= 10**12``.
    beta : float or mpmath.mpf
        The level, ``0 < beta < 1``: the probability that the bound falls below
        the true proportion. A float is taken as the exact binary number it is.
    dps : int
        Decimal digits wanted, ``>= 1``.

    Returns
    -------
    mpmath.mpf
        The unique ``p`` in (0, 1] with ``P(Bin(n, p) <= x) = beta``, the
        ``(1 - beta)``-quantile of ``Beta(x + 1, n - x)``, rounded to ``dps``
        digits (relative error about ``10**-dps``).

    Raises
    ------
    ValueError
        If an argument is outside the ranges above.

    Notes
    -----
    ``x = n`` gives 1, ``x = 0`` gives ``1 - beta**(1/n)`` (computed as
    ``-expm1(log(beta) / n)``) and ``x = n - 1`` gives ``(1 - beta)**(1/n)``;
    otherwise the module's quadrature-and-Halley solver is used. Global mpmath
    precision is left unchanged.

    Examples
    --------
    Zero successes in ten trials, 95% one-sided bound: ``1 - 0.05**(1/10)``.

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
        p = mp.one
    elif x == 0:
        with mp.workdps(dps + 10):
            p = -mp.expm1(mp.log(beta) / n)
    elif x == n - 1:
        with mp.workdps(dps + 10):
            p = mp.exp(mp.log1p(-beta) / n)
    else:
        a, b = x + 1, n - x
        with mp.workdps(dps + _GUARD_F):
            if beta <= 0.5:  # solve P(Beta(a, b) > p) = beta
                p, _ = _solve(a, b, +beta, True, dps)
            else:  # solve P(Beta(a, b) < p) = 1 - beta, the smaller tail
                p, _ = _solve(a, b, 1 - beta, False, dps)
    with mp.workdps(dps):
        return +p


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
        Decimal digits wanted, ``>= 1``.

    Returns
    -------
    mpmath.mpf
        ``1 - lower(x)``: exactly 1 at ``x = 0``, ``-expm1(log(beta) / n)`` at
        ``x = n``.

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
        with mp.workdps(dps):
            return +mp.one
    return mp_cp_upper(n - x, n, beta, dps)
