"""Tests of the arbitrary-precision Clopper-Pearson bounds in ``topk_bounds._mp_beta``.

Reference values come from computations that share no code with the module (which
integrates the Beta density by Gauss-Legendre quadrature and solves by Halley's
method in the logit):

* the literal binomial sum ``sum_k C(n, k) p^k (1 - p)^(n - k)`` over the shorter
  side, with exact integer binomial coefficients (``math.comb``), at
  ``100 + log10(1 / min(beta, 1 - beta))`` digits, solved for ``logit(p)`` by
  bisection and then ``mpmath.findroot`` (secant);
* ``mpmath.betainc`` (its hypergeometric series), for small ``n``, solved likewise;
* the pmf series summed from ``k = x`` downwards (log-gamma start, ratio
  recurrence), for a few cases in the bulk;
* scipy's float64 ``betainccinv``.

Tolerances: the module returns ``dps`` digits rounded toward the safe side (upper
bounds and complements up, lower bounds down), within ``2**(3 - prec)`` (1.1e-50 at
``dps = 50``); the tests allow 1e-45 and check the side against references computed
with twice the digits.
"""

from __future__ import annotations

import math
import os

import mpmath
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf
from scipy import special

from topk_bounds import limits
from topk_bounds._mp_beta import N_MAX, mp_cp_lower, mp_cp_lower_complement, mp_cp_upper

DPS = 50
#: Relative tolerance against the independent high-precision references at DPS = 50
#: (measured: < 2e-51, i.e. the final rounding).
REF_RTOL = mpf("1e-45")
#: Digits the references are computed with.
REF_DPS = 100

#: Examples per property: 20 under the quick profiles, so that the file runs in
#: about 20 s; a profile asking for more than 100 (conftest's "ci") gets its own
#: count, and TOPK_MP_BETA_EXAMPLES overrides both.
_EXAMPLES = settings.default.max_examples
SETTINGS = settings(
    max_examples=int(os.environ.get("TOPK_MP_BETA_EXAMPLES", _EXAMPLES if _EXAMPLES > 100 else 20)),
    deadline=None,
)


#: The properties added with the safe-side rounding and the direct lower bound: at most
#: 60 examples even under the "ci" profile, to keep CI's total time in bounds.
SETTINGS_60 = settings(SETTINGS, max_examples=min(SETTINGS.max_examples, 60))
#: The two slowest properties (two or three bounds per example, at up to 60 digits): at
#: most 250 examples, since the check of every result on its safe side made each bound
#: about 1.5 times as costly (under "ci" they took 82 s and 62 s with 500).
SETTINGS_250 = settings(SETTINGS, max_examples=min(SETTINGS.max_examples, 250))


@pytest.fixture(autouse=True)
def _mp_dps_unchanged():
    """Every test must leave mpmath's global precision as it found it."""
    mp.dps = 15
    yield
    dps = mp.dps
    mp.dps = 15
    assert dps == 15, f"mpmath.mp.dps changed to {dps}"


# ----------------------------------------------------------------------------------
# strategies and references
# ----------------------------------------------------------------------------------
@st.composite
def trial_counts(draw, max_n=N_MAX):
    """n roughly log-uniform in [1, max_n]."""
    digits = draw(st.integers(0, len(str(max_n)) - 1))
    lo = 10 ** (digits - 1) if digits else 1
    return draw(st.integers(lo, min(10**digits, max_n)))


@st.composite
def short_side_cases(draw, max_short=30, max_n=N_MAX):
    """(x, n) with min(x, n - x) <= max_short: x near 0 or near n."""
    n = draw(trial_counts(max_n))
    short = draw(st.integers(0, min(n, max_short)))
    x = short if draw(st.booleans()) else n - short
    return x, n


@st.composite
def any_cases(draw):
    """(x, n) anywhere: near 0, near n, near n / 2 or uniform."""
    n = draw(trial_counts())
    where = draw(st.sampled_from(["low", "high", "half", "uniform"]))
    if where == "low":
        x = draw(st.integers(0, min(n, 50)))
    elif where == "high":
        x = n - draw(st.integers(0, min(n, 50)))
    elif where == "half":
        x = min(n, max(0, n // 2 + draw(st.integers(-3, 3))))
    else:
        x = draw(st.integers(0, n))
    return x, n


levels = st.one_of(
    st.floats(1e-300, 1e-3),
    st.floats(1e-3, 1 - 1e-9),
    st.sampled_from([0.5, 0.05, 1e-7, 1 - 2.0**-53, 5e-324]),
)


def _binom_cdf_literal(x, n, p):
    """P(Bin(n, p) <= x) summed literally over the shorter side, at the current precision."""
    q = 1 - p
    if x <= n - x:
        return mp.fsum(mpf(math.comb(n, k)) * p**k * q ** (n - k) for k in range(x + 1))
    return 1 - mp.fsum(mpf(math.comb(n, k)) * p**k * q ** (n - k) for k in range(x + 1, n + 1))


def _binom_sf_literal(x, n, p):
    """P(Bin(n, p) >= x) summed literally over k >= x (short when n - x is small)."""
    q = 1 - p
    return mp.fsum(mpf(math.comb(n, k)) * p**k * q ** (n - k) for k in range(x, n + 1))


def _betainc_upper_tail(x, n, p):
    """P(Beta(x + 1, n - x) > p) = P(Beta(n - x, x + 1) < 1 - p) = P(Bin(n, p) <= x).

    By mpmath.betainc from 0 (its series; ``betainc(a, b, p, 1)`` would cancel).
    """
    return mpmath.betainc(n - x, x + 1, 0, 1 - p, regularized=True)


def _ref_dps(beta):
    """Digits for a reference: 1 - p can be as small as ~beta**(1/2) when x = n - 2."""
    with mp.workdps(30):
        return REF_DPS + int(-mp.log10(min(mpf(beta), 1 - mpf(beta))))


def _reference_root(tail, x, n, beta, p0=None, increasing=False):
    """The root p of ``log tail(x, n, p) = log beta``, by ``mpmath.findroot`` (secant).

    Solved for ``s = logit(p)``, so that p and 1 - p both come out to full relative
    precision. ``tail`` must be monotone in p (decreasing unless ``increasing``).
    Without a start ``p0`` one is found by bisection in s (so neither scipy nor the
    module under test is consulted).
    """
    with mp.workdps(_ref_dps(beta)):
        log_beta = mp.log(mpf(beta))

        def h(s):
            value = tail(x, n, 1 / (1 + mp.exp(-s)))  # may round to <= 0 far from the root
            return mp.log(value) - log_beta if value > 0 else mp.ninf

        if p0 is None:
            lo, hi = -2.3 * mp.dps, 2.3 * mp.dps
            while hi - lo > 1e-4:
                mid = (lo + hi) / 2
                if (h(mid) > 0) == increasing:
                    hi = mid
                else:
                    lo = mid
            s0 = (lo + hi) / 2
        else:
            s0 = mp.log(p0) - mp.log1p(-p0)
        # stop once a step is below 1e-100 (the secant converges superlinearly)
        s = mp.findroot(h, (s0, s0 + mpf("1e-8")), solver="secant", tol=mpf(10) ** -REF_DPS)
        return 1 / (1 + mp.exp(-s))


def _rel_err(value, reference):
    with mp.workdps(max(REF_DPS, mp.dps)):
        return abs(mpf(value) / reference - 1)


def _on_safe_side(value, reference, up):
    """``value`` >= (``up``) or <= the reference, up to the reference's own 1e-90."""
    with mp.workdps(REF_DPS + 20):
        slack = abs(reference) * mpf("1e-90")
        return value >= reference - slack if up else value <= reference + slack


def _binom_sf_short(x, n, p):
    """P(Bin(n, p) >= x), summed literally over the shorter side."""
    return _binom_sf_literal(x, n, p) if n - x < x else 1 - _binom_cdf_literal(x - 1, n, p)


def _scipy_rtol(x, n, beta):
    """Relative accuracy of scipy 1.17's betainccinv(x + 1, n - x, beta), as measured.

    Off by up to 3e-8 for few successes in 1e5 to 5e9 trials at beta < 1/2 (e.g.
    x = 1, n = 1e9, beta = 0.3: 1.4e-8, confirmed by the literal binomial sum; the
    module's own values there agree with the literal sum to 1e-51). Elsewhere its error
    grows with n: over 240 random bulk cases (x from 1% to 99% of n, n from 1e3 to 1e12)
    the worst per decade of n was 1e-13 up to n = 1e9, 1.8e-11 at 1e10 and 5.4e-11 at
    1e11, and hypothesis found 1.0e-11 at n = 2.6e8 (x = 52573517, beta = 0.921875) and
    3.3e-11 at n = 1.6e11 (x = 80134995820, beta = 0.25): allowed here as
    4e-15 sqrt(n), six times the worst of those, and never below 1e-12.
    """
    if x <= 64 and 10**5 <= n <= 5 * 10**9 and beta < 0.5:
        return 1e-7
    return max(1e-12, 4e-15 * math.sqrt(n))


# ----------------------------------------------------------------------------------
# agreement with independent computations
# ----------------------------------------------------------------------------------
@SETTINGS
@given(case=short_side_cases(), beta=levels)
@example(case=(1, 1), beta=0.3)
@example(case=(0, 1), beta=0.3)
@example(case=(1, 10**12), beta=1e-300)
@example(case=(1, 10**12), beta=0.5)
@example(case=(10**12 - 1, 10**12), beta=1e-7)
@example(case=(10**12 - 2, 10**12), beta=1 - 2.0**-53)
@example(case=(30, 10**12), beta=5e-324)
@example(case=(1, 10**9), beta=0.3)  # where scipy loses 8 digits
@example(case=(8, 10), beta=0.5)
def test_upper_equals_root_of_literal_binomial_sum(case, beta):
    x, n = case
    p = mp_cp_upper(x, n, beta, DPS)
    if x == n:
        assert p == 1
        return
    reference = _reference_root(_binom_cdf_literal, x, n, beta)
    assert _rel_err(p, reference) <= REF_RTOL
    assert _on_safe_side(p, reference, up=True)


@SETTINGS_60
@given(case=short_side_cases(), beta=levels)
@example(case=(1, 10**12), beta=1e-10)  # closed form; 1 - complement kept 28 of 50 digits
@example(case=(5, 10**12), beta=1e-10)  # solved directly, not as 1 - complement
@example(case=(2, 10**12), beta=1e-300)
@example(case=(10**12 - 1, 10**12), beta=0.3)
@example(case=(10**12, 10**12), beta=1e-7)
@example(case=(3, 10), beta=1 - 2.0**-53)
def test_lower_equals_root_of_literal_binomial_sum_and_is_rounded_down(case, beta):
    x, n = case
    low = mp_cp_lower(x, n, beta, DPS)
    if x == 0:
        assert low == 0
        return
    reference = _reference_root(_binom_sf_short, x, n, beta, increasing=True)
    assert _rel_err(low, reference) <= REF_RTOL
    assert _on_safe_side(low, reference, up=False)


@pytest.mark.parametrize(("x", "n", "beta"), [(1000, 10**9, 1e-3), (1000, 137_000_000, 1e-3),
                                              (1000, 10**12, 0.5)])
def test_a_bad_float_start_still_converges_to_the_literal_root(x, n, beta):
    """scipy's betaincinv(1000, n - 999, 1e-3) is a factor 2 too large here, and started
    from it (mirrored, for upper(n - 1000)) the solver stalled after 100 iterations. At
    n = 1e12, beta = 1/2 its start is 15 times the root, where the tail is 1 to 30
    digits: Newton's first step went to s = -5e4862 and the solver gave up (an
    ArithmeticError) until steps towards an open end of the bracket were capped.

    Reference: the root of 1 - sum_{k < x} C(n, k) p^k (1 - p)^(n - k) = beta with exact
    integer C(n, k), by ``mpmath.findroot`` (secant) at 50 digits, started from a
    float64 quantile for x - 10 successes (so neither the module nor the bad start is
    used); its error is below 1e-40.
    """
    coefs = [1]
    for k in range(x - 1):
        coefs.append(coefs[-1] * (n - k) // (k + 1))
    with mp.workdps(50):
        def g(p):
            q = 1 - p
            return 1 - mp.fsum(mpf(c) * p**k * q ** (n - k) for k, c in enumerate(coefs)) - beta

        start = mpf(special.betaincinv(x - 10, n - x + 11, beta))
        reference = mp.findroot(g, (start, start * (1 + mpf("1e-6"))), solver="secant", tol=mpf("1e-90"))
    low, upper_of_rest = mp_cp_lower(x, n, beta, 30), mp_cp_upper(n - x, n, beta, 30)
    with mp.workdps(60):
        assert _rel_err(low, reference) <= mpf("1e-29") and low <= reference * (1 + mpf("1e-40"))
        # 30 digits of an upper bound 1 - 9e-7 hold 24 of its complement
        assert _rel_err(upper_of_rest, 1 - reference) <= mpf("1e-29")
        assert upper_of_rest >= (1 - reference) * (1 - mpf("1e-40"))


def test_a_start_on_the_wrong_side_of_the_mode_is_dropped_not_integrated():
    """scipy's start for upper(n - 1000) at beta = 3e-199, n = 4.8e9 is 7 times too far
    from 1, on the bulk side of the mode, where the quadrature took 25 s; the model used
    to vet starts mistook it for a tail there. Reference: the root of
    sum_{k >= 1000} C(n, k) p^k (1 - p)^(n - k) = beta (exact integer coefficients,
    summed until the terms fall below 1e-60 of the sum; they fall by n p / k < 1/3 per
    step) by ``mpmath.findroot`` at 60 digits; it is 1 - upper(n - 1000)."""
    n, x, beta = 4780502389, 1000, 3.133849749386888e-199
    coef0 = math.comb(n, x)
    with mp.workdps(60):
        def g(p):
            q, total, coef, k = 1 - p, mp.zero, coef0, x
            while True:
                term = mpf(coef) * p**k * q ** (n - k)
                total += term
                if term < total * mpf("1e-60"):
                    return mp.log(total) - mp.log(beta)
                coef = coef * (n - k) // (k + 1)
                k += 1

        start = mpf(6.7e-8)
        lower = mp.findroot(g, (start, start * (1 + mpf("1e-6"))), solver="secant", tol=mpf("1e-50"))
    upper = mp_cp_upper(n - x, n, beta, 20)
    with mp.workdps(60):
        assert upper >= 1 - lower and abs((1 - upper) / lower - 1) < mpf("1e-12")  # 20 digits of 1 - 7e-8


@SETTINGS_60
@given(case=any_cases(), beta=levels)
@example(case=(3, 10), beta=0.05)
@example(case=(5 * 10**11, 10**12), beta=1e-7)
def test_lower_and_one_minus_the_complement_agree(case, beta):
    x, n = case
    low, comp = mp_cp_lower(x, n, beta, 30), mp_cp_lower_complement(x, n, beta, 30)
    with mp.workdps(60):  # both are below the exact lower bound, by at most ~1e-30
        assert abs(low - (1 - comp)) <= mpf("1e-28")


@SETTINGS
@given(n=st.integers(1, 200), data=st.data(), beta=levels)
@example(n=2, data=None, beta=0.5)
@example(n=200, data=None, beta=1e-300)
def test_upper_equals_root_of_mpmath_betainc_for_small_n(n, data, beta):
    x = n // 2 if data is None else data.draw(st.integers(0, n - 1), label="x")
    p = mp_cp_upper(x, n, beta, DPS)
    reference = _reference_root(_betainc_upper_tail, x, n, beta)
    assert _rel_err(p, reference) <= REF_RTOL


@pytest.mark.parametrize(
    ("x", "n", "beta"),
    [(500_000, 10**6, 0.05), (10**12 - 3000, 10**12, 1e-7)],
)
def test_upper_equals_root_of_truncated_binomial_sum_in_the_bulk(x, n, beta):
    """Far from both ends, against the pmf summed from ``k = x`` downwards.

    The terms are generated by the ratio recurrence from ``pmf(x)`` (log-gamma) and
    summed until they fall below 1e-110 of the sum (they decrease geometrically
    below ``x``, which lies under the mean ``n p``): a series, not a quadrature.
    """

    def cdf(x, n, p):
        q = 1 - p
        log_pmf_x = (
            mp.loggamma(n + 1) - mp.loggamma(x + 1) - mp.loggamma(n - x + 1)
            + x * mp.log(p) + (n - x) * mp.log(q)
        )
        term, total, k = mp.exp(log_pmf_x), mp.zero, x
        while k >= 0 and (k == x or term > total * mpf("1e-110")):
            total += term
            term *= k * q / ((n - k + 1) * p)
            k -= 1
        return total

    p = mp_cp_upper(x, n, beta, DPS)
    start = special.betainccinv(x + 1, n - x, beta)  # to save the bisection's ~30 sums
    reference = _reference_root(cdf, x, n, beta, p0=start)
    assert _rel_err(p, reference) <= REF_RTOL


@SETTINGS
@given(case=any_cases(), beta=st.floats(1e-12, 0.999))
@example(case=(5 * 10**11, 10**12), beta=0.3)
@example(case=(5 * 10**11, 10**12), beta=1e-7)
@example(case=(10**12 - 2, 10**12), beta=1e-3)
@example(case=(2, 10**12), beta=1e-12)
@example(case=(2, 10**5), beta=0.05)
@example(case=(52573517, 264192715), beta=0.921875)  # scipy off by 1.0e-11
@example(case=(80134995820, 160269991641), beta=0.25)  # scipy off by 3.3e-11
def test_upper_agrees_with_scipy_betainccinv(case, beta):
    x, n = case
    p = mp_cp_upper(x, n, beta, 20)
    expected = 1.0 if x == n else float(special.betainccinv(x + 1, n - x, beta))
    assert _rel_err(p, mpf(expected)) <= _scipy_rtol(x, n, beta)


# ----------------------------------------------------------------------------------
# closed forms, symmetry, monotonicity, precision
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 10, 10**6, 10**12])
@pytest.mark.parametrize("beta", [1e-300, 1e-7, 0.05, 0.5, 1 - 2.0**-53])
def test_edge_counts_are_closed_forms(n, beta):
    with mp.workdps(80):
        b = mpf(beta)
        zero_successes = 1 - b ** (mpf(1) / n)
        all_but_one = (1 - b) ** (mpf(1) / n)
        assert _rel_err(mp_cp_upper(0, n, beta, DPS), zero_successes) <= REF_RTOL
        assert _rel_err(mp_cp_upper(n - 1, n, beta, DPS), all_but_one) <= REF_RTOL
        assert mp_cp_upper(n, n, beta, DPS) == 1
        assert mp_cp_lower_complement(0, n, beta, DPS) == 1
        assert _rel_err(mp_cp_lower_complement(n, n, beta, DPS), zero_successes) <= REF_RTOL


@SETTINGS
@given(case=any_cases(), beta=levels)
@example(case=(0, 1), beta=0.5)
@example(case=(1, 10**12), beta=1e-7)
@example(case=(10**12 - 1, 10**12), beta=1e-7)
def test_lower_complement_is_upper_bound_of_the_other_count(case, beta):
    x, n = case
    assert mp_cp_lower_complement(x, n, beta, 30) == mp_cp_upper(n - x, n, beta, 30)


@pytest.mark.parametrize(
    ("x", "n", "beta"),
    [(3, 20, 0.05), (19, 20, 0.9), (7, 10**12, 0.3), (10**12 - 5, 10**12, 1e-7)],
)
def test_lower_complement_is_one_minus_root_of_literal_upper_binomial_tail(x, n, beta):
    """1 - complement solves P(Bin(n, lower) >= x) = beta, summed literally."""

    def sf(x, n, p):  # the shorter side of P(Bin(n, p) >= x)
        return _binom_sf_literal(x, n, p) if n - x < x else 1 - _binom_cdf_literal(x - 1, n, p)

    complement = mp_cp_lower_complement(x, n, beta, DPS)
    lower = _reference_root(sf, x, n, beta, increasing=True)
    with mp.workdps(_ref_dps(beta)):
        assert _rel_err(complement, 1 - lower) <= REF_RTOL
        assert _on_safe_side(complement, 1 - lower, up=True)
        assert _rel_err(mp_cp_lower(x, n, beta, DPS), lower) <= REF_RTOL


@SETTINGS_250
@given(case=any_cases(), beta=levels, factor=st.floats(1.5, 1e6))
@example(case=(0, 1), beta=0.5, factor=1.5)
@example(case=(5 * 10**11, 10**12), beta=1e-7, factor=10.0)
@example(case=(10**12 - 2, 10**12), beta=1e-300, factor=1e6)
@example(case=(1, 10**12), beta=1 - 2.0**-53, factor=2.0)
def test_upper_increases_with_x_and_decreases_with_beta(case, beta, factor):
    x, n = case
    p = mp_cp_upper(x, n, beta, 30)
    if x == n:
        assert p == 1
        return
    # strictly, unless both round to 1 at 30 digits (e.g. 1 - p ~ 1e-151 for x = n - 2)
    strictly = 1 - p > mpf("1e-28")
    for larger in (mp_cp_upper(x + 1, n, beta, 30), mp_cp_upper(x, n, mpf(beta) / factor, 30)):
        assert larger > p if strictly else larger >= p


@SETTINGS_250
@given(case=any_cases(), beta=levels)
@example(case=(5 * 10**11, 10**12), beta=0.5)
@example(case=(2, 10**12), beta=1e-300)
@example(case=(10**12 - 2, 10**12), beta=1 - 2.0**-53)
@example(case=(1, 1), beta=1e-7)
def test_results_at_30_and_60_digits_agree_to_1e_25(case, beta):
    x, n = case
    assert _rel_err(mp_cp_upper(x, n, beta, 30), mp_cp_upper(x, n, beta, 60)) <= mpf("1e-25")


@pytest.mark.parametrize(
    ("x", "n", "exponent", "near_one"),
    [
        (3, 10**12, -5000, False),  # beta = 1e-5000: p ~ 1e-8, P(Bin <= 3) = beta
        (1, 10, -400, True),  # beta = 1 - 1e-400: p ~ 1.5e-201, P(Bin >= 2) = 1e-400
    ],
)
def test_mpf_levels_beyond_the_float_range(x, n, exponent, near_one):
    """mpf levels below 1e-308 or within 1e-400 of 1, where scipy cannot help."""
    with mp.workdps(600):
        small = mpf(10) ** exponent
        level = 1 - small if near_one else small
    p = mp_cp_upper(x, n, level, DPS)

    def tail(p):  # the smaller of P(Bin(n, p) <= x) and P(Bin(n, p) > x), literally
        return _binom_sf_literal(x + 1, n, p) if near_one else _binom_cdf_literal(x, n, p)

    with mp.workdps(REF_DPS):
        log_small = mp.log(small)
        p1 = mpf(p) * (1 + mpf("1e-10"))
        reference = mp.findroot(lambda q: mp.log(tail(q)) - log_small, (mpf(p), p1), solver="secant")
    assert _rel_err(p, reference) <= REF_RTOL


# ----------------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": -1}, r"x \(-1\)"),
        ({"x": 11}, r"x \(11\).*0 <= x <= n = 10"),
        ({"x": 2.0}, r"x \(2\.0\) must be an integer"),
        ({"x": True}, r"x \(True\) must be an integer"),
        ({"n": 0}, r"n \(0\).*1 <= n"),
        ({"n": N_MAX + 1}, r"n \(1000000000001\)"),
        ({"beta": 0.0}, r"beta \(0\.0\).*0 < beta < 1"),
        ({"beta": 1.0}, r"beta \(1\.0\)"),
        ({"beta": float("nan")}, r"beta \(nan\)"),
        ({"beta": "0.05"}, r"beta \('0\.05'\) must be a float or an mpmath\.mpf"),
        ({"dps": 0}, r"dps \(0\) must be an integer >= 15$"),
        ({"dps": 14}, r"dps \(14\) must be an integer >= 15$"),
        ({"dps": 30.0}, r"dps \(30\.0\) must be an integer"),
    ],
)
@pytest.mark.parametrize("func", [mp_cp_upper, mp_cp_lower, mp_cp_lower_complement])
def test_invalid_arguments_raise_value_error_naming_them(func, kwargs, match):
    args = {"x": 3, "n": 10, "beta": 0.05, "dps": 30} | kwargs
    with pytest.raises(ValueError, match=match):
        func(**args)


def test_the_largest_n_is_the_one_constant_of_topk_bounds_limits():
    assert N_MAX is limits.N_MAX


def test_numpy_scalars_are_accepted():
    np = pytest.importorskip("numpy")
    assert mp_cp_upper(np.int64(3), np.int64(10), np.float64(0.05), 30) == mp_cp_upper(3, 10, 0.05, 30)
