"""Clopper-Pearson bounds: float64 results on the safe side of the exact (mpmath) bounds and
close to them, closed forms at the edges, and measurements of the accuracy the float path
assumes of scipy's special functions (each must sit well inside the bound used)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import special

from topk_bounds import _cp_float, _float
from topk_bounds import clopper_pearson_lower, clopper_pearson_lower_complement, clopper_pearson_upper
from topk_bounds._mp_beta import mp_cp_upper

# Float bounds agree with the exact ones to this relative error (from the margins of
# topk_bounds._cp_float: below 1e-12 wherever a rigorous tail sum or the complement
# route applies, which is everywhere these strategies reach).
REL_TOL = 1e-11


@st.composite
def trials(draw):
    n = draw(st.sampled_from([1, 2, 10, 1000, 10**5, 10**7, 10**9, 10**12])) - draw(st.integers(0, 3))
    n = max(n, 1)
    where = draw(st.sampled_from(["low", "high", "any"]))
    if where == "low":
        x = draw(st.integers(0, min(n, 300)))
    elif where == "high":
        x = n - draw(st.integers(0, min(n, 300)))
    else:
        x = draw(st.integers(0, n))
    beta = draw(st.sampled_from([1e-3, 1e-4, 1e-7, 0.05, 0.3]))
    return x, n, beta


def _rel(got, exact):
    return abs(float((mpmath.mpf(got) - exact) / exact)) if exact != 0 else abs(got)


@given(trials())
@example((2, 10**9, 0.0005))  # scipy's betainccinv is off by 3e-10 here
@example((1, 10**9, 0.0005))
@example((36, 1188158130, 1e-4))
@example((999, 10**9, 0.0005))  # scipy's inverse is 0.4% off; one Newton step overshoots
@example((0, 10**12, 1e-4))
@example((10**12, 10**12, 1e-4))
@example((10**12 - 1, 10**12, 1e-4))
@example((1, 1, 0.3))
def test_float_upper_bound_is_never_below_the_exact_bound_and_within_1e11(case):
    x, n, beta = case
    got = clopper_pearson_upper(x, n, beta)
    with mpmath.workdps(40):
        exact = mp_cp_upper(x, n, beta, 40)
        assert mpmath.mpf(got) >= exact
        assert _rel(got, exact) <= REL_TOL


@given(trials())
@example((10**12 - 5, 10**12, 1e-4))
@example((5, 10**12, 1e-4))
@example((170, 412164111, 1.1e-7))
def test_float_lower_bound_and_its_complement_are_on_the_safe_side(case):
    x, n, beta = case
    low = clopper_pearson_lower(x, n, beta)
    comp = clopper_pearson_lower_complement(x, n, beta)
    with mpmath.workdps(40):
        exact_comp = mp_cp_upper(n - x, n, beta, 40)
        exact_low = 1 - exact_comp
        assert mpmath.mpf(low) <= exact_low
        assert mpmath.mpf(comp) >= exact_comp
        assert _rel(comp, exact_comp) <= REL_TOL
        if exact_low > 0:
            # relative precision of the lower bound itself: full when it is small
            # (direct solve) and limited to an ulp of 1 when it is close to 1
            assert abs(float(mpmath.mpf(low) - exact_low)) <= REL_TOL * exact_low + 2.3e-16


def test_closed_forms_at_the_edges():
    n, beta = 1000, 0.01
    assert clopper_pearson_upper(n, n, beta) == 1.0
    assert clopper_pearson_lower(0, n, beta) == 0.0
    assert clopper_pearson_upper(0, n, beta) == pytest.approx(1 - beta ** (1 / n), rel=1e-14)
    assert clopper_pearson_lower(n, n, beta) == pytest.approx(beta ** (1 / n), rel=1e-14)
    assert clopper_pearson_lower_complement(n, n, beta) == pytest.approx(-np.expm1(np.log(beta) / n), rel=1e-14)


def test_bounds_are_vectorized_and_broadcast():
    x = np.array([[0, 1, 2], [3, 4, 5]])
    got = clopper_pearson_upper(x, 10, 0.05)
    assert got.shape == (2, 3)
    assert np.all(np.diff(got.ravel()) > 0)  # monotone in x
    assert got[1, 2] == clopper_pearson_upper(5, 10, 0.05)


def test_dps_path_returns_mpmath_numbers():
    got = clopper_pearson_upper([0, 5], 10, 0.05, dps=30)
    assert got.dtype == object and all(isinstance(v, mpmath.mpf) for v in got)
    assert float(got[1]) == pytest.approx(clopper_pearson_upper(5, 10, 0.05), rel=1e-14)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: clopper_pearson_upper(11, 10, 0.05), "x must lie in 0..n, got x = 11 with n = 10"),
        (lambda: clopper_pearson_upper(-1, 10, 0.05), "x must lie in 0..n"),
        (lambda: clopper_pearson_upper(1, 0, 0.05), "n must be >= 1, got 0"),
        (lambda: clopper_pearson_upper(1.5, 10, 0.05), "x must hold integers"),
        (lambda: clopper_pearson_lower(1, 10, 1.0), r"beta must be a probability in \(0, 1\), got 1.0"),
    ],
)
def test_invalid_arguments_raise_value_errors_that_name_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------
# the accuracy assumptions of the float path, measured
# --------------------------------------------------------------------------------------
SAFETY = 10  # every assumed bound must exceed the worst measured error this many times


def test_ndtri_error_is_well_inside_the_assumed_bound():
    rng = np.random.default_rng(1)
    ps = np.concatenate([10.0 ** rng.uniform(-300, -1, 300), rng.uniform(0, 1, 300),
                         0.5 + rng.uniform(-1e-6, 1e-6, 50)])
    worst = 0.0
    with mpmath.workdps(40):
        for p in ps:
            exact = mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.mpf(p) - 1) if p > 1e-15 else None
            if exact is None:
                exact = mpmath.findroot(lambda z: mpmath.ncdf(z) - mpmath.mpf(p), float(special.ndtri(p)))
            got = _float._ndtri(np.array([p]))[0]
            worst = max(worst, abs(float((got - exact) / exact)))
    assert worst * SAFETY <= _float.NDTRI_RTOL, worst


def test_log_ndtr_error_is_well_inside_the_assumed_bound():
    xs = np.concatenate([np.linspace(-40, 0, 2001), np.linspace(0, 30, 1501)[1:]])
    worst = 0.0
    with mpmath.workdps(40):
        for x in xs:
            exact = mpmath.log(mpmath.ncdf(x)) if x < 0 else mpmath.log1p(-mpmath.ncdf(-mpmath.mpf(x)))
            got = special.log_ndtr(x)
            bound = float(_float.log_ndtr_err(np.array([x]), np.array([got]))[0])
            worst = max(worst, abs(float(got - exact)) / bound)
    assert worst * SAFETY <= 1.0, worst


def _boost_forward_errors(seed: int, count: int):
    """Relative errors of scipy's betaincc / betainc at the exact quantiles' float64
    roundings, against the mpmath quantile and a first-order correction for the rounding."""
    rng = np.random.default_rng(seed)
    worst_f = worst_g = 0.0
    with mpmath.workdps(40):
        for _ in range(count):
            n = int(10 ** rng.uniform(3, 12))
            x = int(rng.integers(_cp_float.SMALL_X + 1, n - _cp_float.SMALL_X - 1))
            beta = float(10 ** rng.uniform(-9, -1))
            for tail in ("F", "G"):
                a, b = (x + 1, n - x) if tail == "F" else (x, n - x + 1)
                q = mp_cp_upper(x, n, beta, 40) if tail == "F" else 1 - mp_cp_upper(n - x, n, beta, 40)
                qf = float(q)
                log_dens = ((a - 1) * mpmath.log(q) + (b - 1) * mpmath.log1p(-q)
                            - mpmath.loggamma(a) - mpmath.loggamma(b) + mpmath.loggamma(a + b))
                shift = mpmath.exp(log_dens) * (mpmath.mpf(qf) - q)
                if tail == "F":
                    exact, got = mpmath.mpf(beta) - shift, special.betaincc(a, b, qf)
                    worst_f = max(worst_f, abs(float(got / exact - 1)))
                else:
                    exact, got = mpmath.mpf(beta) + shift, special.betainc(a, b, qf)
                    # relative to the assumed model, which grows like sqrt(x)
                    worst_g = max(worst_g, abs(float(got / exact - 1)) / float(_cp_float.boost_rtol_g(x)))
    return worst_f, worst_g


def test_boost_tail_errors_are_well_inside_the_assumed_bounds():
    worst_f, worst_g = _boost_forward_errors(seed=9, count=12)
    assert worst_f * SAFETY <= _cp_float.BOOST_RTOL_F, worst_f
    assert worst_g * SAFETY <= 1.0, worst_g


def test_direct_tail_sums_agree_with_exact_sums_within_their_stated_bound():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = float(int(10 ** rng.uniform(2, 12)))
        x = float(rng.integers(1, min(n - 1, _cp_float.SMALL_X)))
        p = float(special.betainccinv(x + 1, n - x, 10 ** rng.uniform(-8, -1)))
        val, rtol = _cp_float._cdf_small(np.array([x]), np.array([n]), np.array([p]))
        sval, srtol = _cp_float._sf_small(np.array([x]), np.array([n]), np.array([p]))
        with mpmath.workdps(50):
            P, N, X = mpmath.mpf(p), int(n), int(x)
            terms = [mpmath.exp(mpmath.loggamma(N + 1) - mpmath.loggamma(j + 1) - mpmath.loggamma(N - j + 1)
                                + j * mpmath.log(P) + (N - j) * mpmath.log1p(-P)) for j in range(X + 1)]
            cdf = mpmath.fsum(terms)
            sf = 1 - mpmath.fsum(terms[:-1])
            assert abs(float(val[0] / cdf - 1)) <= rtol[0]
            assert sval[0] >= sf * (1 - srtol[0])  # may exceed it by the geometric tail bound
            assert abs(float(sval[0] / sf - 1)) <= srtol[0] + 1e-15
