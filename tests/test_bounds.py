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

from topk_bounds import _cp_float, _cp_pair, _float, certify, limits
from topk_bounds import clopper_pearson_lower, clopper_pearson_lower_complement, clopper_pearson_upper
from topk_bounds import _mp_beta
from topk_bounds._mp_beta import mp_cp_lower, mp_cp_upper

# Float bounds agree with the exact ones to this relative error (the margins of
# topk_bounds._cp_float keep them within ~1e-12; the sweep of benchmarks/bench_accuracy.py
# measured 8e-13 at worst). References: the mpmath path (topk_bounds._mp_beta, itself
# checked against the literal binomial sum in tests/test_mp_beta.py) at 30-40 digits.
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
    beta = draw(st.sampled_from([limits.LEVEL_MIN, 1e-30, 1e-3, 1e-4, 1e-7, 0.05, 0.3, 0.5, 0.6, 1 - 1e-9]))
    return x, n, beta


def _rel(got, exact):
    return abs(float((mpmath.mpf(got) - exact) / exact)) if exact != 0 else abs(got)


@given(trials())
@example((2, 10**9, 0.0005))  # scipy's betainccinv is off by 3e-10 here
@example((1, 10**9, 0.0005))
@example((36, 1188158130, 1e-4))
@example((999, 10**9, 0.0005))  # scipy's inverse is 0.4% off; one Newton step overshoots
@example((999, 1413760, 5e-4))  # scipy's inverse far off: was the trivial 1.0 (issue 12)
@example((999, 2825711, 5e-4))
@example((999, 5647805, 5e-4))
@example((128, 10**9, 1e-300))  # the SMALL_X switch at the level floor
@example((129, 10**9, 1e-300))
@example((10**12 - 2, 10**12, 1e-300))  # 1 - u ~ 1e-162: the answer is 1.0
@example((1, 3, 1e-300))
@example((999, 4286293205, 0.999999999))  # levels near 1: the other tail (was 1.4e-4 off)
@example((128, 108241720, 0.999999999))
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
@example((1000, 137_000_000, 1e-3))  # scipy's inverse a factor 2 off: was 0 (issue 12)
@example((1000, 10**12, 0.3))
@example((5, 1000, 1e-300))  # was 0 (exact 2.61e-63)
@example((128, 10**9, 1e-300))  # was 37% low at 3e-301
@example((4104, 590342290078, limits.LEVEL_MIN))  # unsound at the subnormal level 2.21e-321
@example((4096, 10**9, 1e-300))  # the SMALL_X_G switch
@example((4097, 10**9, 1e-300))
@example((1, 10**12, 1e-300))  # closed form, a subnormal bound (1e-312)
@example((2, 1499057, 1e-300))  # scipy's inverse is nan
@example((5, 2522, 0.6))  # 2e-3: as 1 - complement it was 1.5e-11 off
@example((128, 108241720, 0.999999999))  # levels near 1: the other tail (was 4.5e-5 off)
@example((1000, 524511858127, 0.8677521997065831))  # the complement was the trivial 1.0
@example((3, 10, 1e-30))  # 2e-11, near 1 as a complement: was formed as 1 - c (1e-5 off)
@example((500_000_000_000, 999_999_999_999, 1e-3 / 3))  # a == b: Boost 6e-5 off below 1/2
def test_float_lower_bound_and_its_complement_are_on_the_safe_side(case):
    x, n, beta = case
    low = clopper_pearson_lower(x, n, beta)
    comp = clopper_pearson_lower_complement(x, n, beta)
    with mpmath.workdps(40):
        exact_comp = mp_cp_upper(n - x, n, beta, 40)
        exact_low = mp_cp_lower(x, n, beta, 40)
        assert mpmath.mpf(low) <= exact_low
        assert mpmath.mpf(comp) >= exact_comp
        assert _rel(comp, exact_comp) <= REL_TOL
        if exact_low > 0:
            # full relative precision of the lower bound itself (solved directly below
            # 1/2, a subnormal bound to 1e-323; as 1 - complement above)
            assert abs(float(mpmath.mpf(low) - exact_low)) <= REL_TOL * exact_low + 1e-323


def test_closed_forms_at_the_edges():
    n, beta = 1000, 0.01
    assert clopper_pearson_upper(n, n, beta) == 1.0
    assert clopper_pearson_lower(0, n, beta) == 0.0
    assert clopper_pearson_upper(0, n, beta) == pytest.approx(1 - beta ** (1 / n), rel=1e-14)
    assert clopper_pearson_lower(n, n, beta) == pytest.approx(beta ** (1 / n), rel=1e-14)
    assert clopper_pearson_lower_complement(n, n, beta) == pytest.approx(-np.expm1(np.log(beta) / n), rel=1e-14)


def test_empty_input_gives_empty_output():
    assert clopper_pearson_upper([], 10, 0.05).shape == (0,)
    assert clopper_pearson_lower(np.zeros((0, 3), dtype=int), 10, 0.05).shape == (0, 3)


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


def test_dps_lower_bound_is_solved_directly_and_keeps_all_its_digits():
    """lower(1) = 1 - (1 - beta)**(1/n) in closed form at 80 digits (issue 12: formed as
    1 - complement it was right to ~30 of 50 digits); x = 5 against 1 - complement at 90."""
    with mpmath.workdps(80):
        b = mpmath.mpf(1e-10)
        closed = -mpmath.expm1(mpmath.log1p(-b) / 10**12)
        got = clopper_pearson_lower(1, 10**12, 1e-10, dps=50)
        assert got <= closed and abs(got / closed - 1) < mpmath.mpf("1e-49")
        got5 = clopper_pearson_lower(5, 10**12, 1e-10, dps=50)
    with mpmath.workdps(100):
        via_complement = 1 - clopper_pearson_lower_complement(5, 10**12, 1e-10, dps=90)
        assert got5 <= via_complement and abs(got5 / via_complement - 1) < mpmath.mpf("1e-49")


@pytest.mark.parametrize(("x", "n", "beta"), [(3, 20, 0.05), (999, 1413760, 5e-4), (7, 10**12, 0.3),
                                              (10**12 - 5, 10**12, 1e-7), (0, 50, 0.01), (50, 50, 0.01)])
def test_dps_results_lie_on_the_safe_side_of_a_more_precise_one(x, n, beta):
    """At 20 digits, upper bounds and complements are rounded up and lower bounds down
    (each within 2**(3 - prec) relative); the 60-digit results stand in for the exact ones."""
    with mpmath.workdps(70):
        prec = mpmath.libmp.dps_to_prec(20)
        for func, up in ((clopper_pearson_upper, True), (clopper_pearson_lower, False),
                         (clopper_pearson_lower_complement, True)):
            coarse, fine = func(x, n, beta, dps=20), func(x, n, beta, dps=60)
            assert (coarse >= fine) if up else (coarse <= fine)
            if fine != 0:
                assert abs(coarse / fine - 1) <= mpmath.mpf(2) ** (3 - prec)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: clopper_pearson_upper(11, 10, 0.05), r"x must lie in 0..n, got x = 11 with n = 10$"),
        (lambda: clopper_pearson_upper([3, 11], 10, 0.05), r"got x = 11 with n = 10 at index 1$"),
        (lambda: clopper_pearson_upper(-1, 10, 0.05), r"x must lie in 0..n \(n <= 10\*\*12\), got x = -1$"),
        (lambda: clopper_pearson_upper(1, 0, 0.05), r"n must lie in 1..10\*\*12 \(topk_bounds.limits.N_MAX\), got n = 0$"),
        (lambda: clopper_pearson_upper(1.5, 10, 0.05), r"x must hold integers, got the non-integral value 1.5$"),
        (lambda: clopper_pearson_upper(np.array([1.0, 5.5]), 10, 0.05),
         r"x must hold integers, got the non-integral value 5.5 at index 1$"),
        (lambda: clopper_pearson_upper([[1, 2], [3, np.nan]], 10, 0.05), r"x must hold integers, got nan at index \(1, 1\)$"),
        (lambda: clopper_pearson_upper(1, np.inf, 0.05), r"n must hold integers, got inf$"),
        (lambda: clopper_pearson_upper(True, 10, 0.05), r"x must hold integers, got True$"),
        (lambda: clopper_pearson_upper("3", 10, 0.05), r"x must hold integers, got '3'$"),
        (lambda: clopper_pearson_upper([1, 2], [3, 4, 5], 0.05), r"x \(shape \(2,\)\) and n \(shape \(3,\)\) must broadcast"),
        (lambda: clopper_pearson_lower(1, 10, 1.0), r"beta must be a probability in \[1e-300, 1\) .*got 1.0$"),
        (lambda: clopper_pearson_lower(1, 10, 0.0), r"beta must be .*got 0.0$"),
        (lambda: clopper_pearson_lower(1, 10, float("nan")), r"beta must be .*got nan$"),
        (lambda: clopper_pearson_lower(1, 10, "0.05"), r"beta must be .*got '0.05'$"),
        (lambda: clopper_pearson_upper(1, 10, 0.05, dps=3), r"dps must be None or an integer >= 15 .*got 3$"),
        (lambda: clopper_pearson_upper(1, 10, 0.05, dps=30.0), r"dps must be .*got 30.0$"),
        (lambda: clopper_pearson_upper(1, 10, 0.05, dps=True), r"dps must be .*got True$"),
        (lambda: clopper_pearson_upper(1, 10, 0.05, dps=-1), r"dps must be .*got -1$"),
    ],
)
def test_invalid_arguments_raise_value_errors_that_name_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _just_below(value):
    with mpmath.workprec(200):  # an mpf keeps its 200 bits outside the context
        return mpmath.mpf(value) * (1 - mpmath.mpf(2) ** -80)


# the level floor: below it the relative error bounds of the proofs fail (subnormal
# tails); 2.21e-321 gave an unsound bound before the floor existed (issue 12)
@pytest.mark.parametrize("beta", [2.21e-321, 5e-324, 3e-301, float(np.nextafter(limits.LEVEL_MIN, 0.0)),
                                  _just_below(limits.LEVEL_MIN)])
@pytest.mark.parametrize("func", [clopper_pearson_upper, clopper_pearson_lower, clopper_pearson_lower_complement])
@pytest.mark.parametrize("dps", [None, 20])
def test_levels_below_the_floor_are_rejected_naming_beta_and_the_floor(beta, func, dps):
    with pytest.raises(ValueError, match=r"beta must be a probability in \[1e-300, 1\) \(the floor is "
                                         r"topk_bounds.limits.LEVEL_MIN\), got "):
        func(4104, 590342290078, beta, dps=dps)


# n beyond N_MAX (the float tails degrade: 1.7e-9 off at 2.5e15) and counts beyond
# int64 are rejected with the value as given, before any cast could wrap it
@pytest.mark.parametrize(
    ("x", "n", "shown"),
    [
        (1, limits.N_MAX + 1, "n = 1000000000001"),
        (1, 2**63, "n = 9223372036854775808"),
        (1, np.uint64(2**64 - 1), "n = 18446744073709551615"),
        (np.array([1], dtype=np.uint64), np.array([2**63 + 5], dtype=np.uint64), "n = 9223372036854775813 at index 0"),
        (1, [5, 2**63], "n = 9223372036854775808 at index 1"),  # numpy makes this list float64
        (1, 2**70, "n = 1180591620717411303424"),
        (1, [2**70, 5], "n = 1180591620717411303424 at index 0"),
        (1, 2.5e15, "n = 2500000000000000.0"),
        (2**63, 10, "x = 9223372036854775808"),
        (-(2**70), 10, "x = -1180591620717411303424"),
    ],
)
def test_counts_beyond_the_supported_range_are_rejected_with_the_value_given(x, n, shown):
    for func in (clopper_pearson_upper, clopper_pearson_lower, clopper_pearson_lower_complement):
        with pytest.raises(ValueError, match=r"must lie in .*got " + shown.replace("(", r"\(") + "$"):
            func(x, n, 0.05)


def test_private_float_entry_points_guard_their_ranges():
    """certify() calls _upper_float / _lower_float directly: they refuse what they cannot prove."""
    from topk_bounds.bounds import _lower_float, _upper_float

    for call in (lambda: _upper_float(np.array([3]), np.array([10]), 2.21e-321),
                 lambda: _lower_float(np.array([3]), np.array([10]), 2.21e-321),
                 lambda: _upper_float(np.array([3]), np.array([limits.N_MAX + 1]), 0.01),
                 lambda: _lower_float(np.array([3]), np.array([-(2**62)]), 0.01)):  # a wrapped row sum
        with pytest.raises(ValueError, match="topk_bounds.limits"):
            call()


def test_a_float_level_that_is_not_a_double_is_rounded_down_and_a_dps_level_is_kept_exact():
    """The float path may only widen a bound (a smaller level), the dps path never rounds."""
    from decimal import Decimal
    from fractions import Fraction

    with mpmath.workprec(200):
        above = mpmath.mpf(0.05) + mpmath.mpf(2) ** -70  # rounds to the double 0.05, below it: kept
        below = mpmath.mpf(0.05) - mpmath.mpf(2) ** -70  # rounds to 0.05, above it: one step down
    assert clopper_pearson_upper(3, 10, above) == clopper_pearson_upper(3, 10, 0.05)
    assert clopper_pearson_upper(3, 10, below) == clopper_pearson_upper(3, 10, float(np.nextafter(0.05, 0)))
    assert clopper_pearson_upper(3, 10, Fraction(1, 20)) >= clopper_pearson_upper(3, 10, 0.05)
    assert clopper_pearson_upper(3, 10, Decimal("0.05")) >= clopper_pearson_upper(3, 10, 0.05)
    with mpmath.workdps(40):  # exact rationals on the dps path: 1/20, not the double 0.05
        assert clopper_pearson_upper(3, 10, Fraction(1, 20), dps=30) == clopper_pearson_upper(
            3, 10, Decimal("0.05"), dps=30) != clopper_pearson_upper(3, 10, 0.05, dps=30)
    with mpmath.workdps(40):
        exact_above = mp_cp_upper(3, 10, above, 30)
        assert clopper_pearson_upper(3, 10, above, dps=30) == exact_above
        assert exact_above != mp_cp_upper(3, 10, 0.05, 30)  # the 2**-70 is not lost
        assert clopper_pearson_lower(3, 10, below, dps=30) == mp_cp_lower(3, 10, below, 30)


# --------------------------------------------------------------------------------------
# the regressions of issue 12: bounds that were silently trivial or loose
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "label", "k", "sigma", "alpha", "exact"),
    [
        # exact radii from ball arithmetic, quoted in issue 12; certify gave -inf for all three
        ([1412761, 999], 0, 1, 0.25, 1e-3, 0.7905),
        ([99999999001, 999], 0, 1, 0.5, 1e-3, 2.797),
        ([1000, 10, 999998990], 0, 2, 0.5, 1e-3, 0.1674),
    ],
)
def test_certify_no_longer_loses_inputs_where_scipys_inverse_is_badly_wrong(row, label, k, sigma, alpha, exact):
    radius = certify([row], label, k=k, sigma=sigma, alpha=alpha).radius[0]
    assert exact - 1e-3 < radius < exact + 1e-3  # the issue quotes four digits


def test_a_bound_that_cannot_be_found_raises_naming_x_n_and_beta(monkeypatch):
    """Starve both solvers of rounds: they must fail loudly, never return 0 or 1."""
    monkeypatch.setattr(_cp_float, "_MAX_ROUNDS", 1)
    monkeypatch.setattr(_cp_pair, "_ROUNDS", 1)  # the fast path hands every bound on
    with pytest.raises(ArithmeticError, match=r"lower bound for x = 1000, n = 10000000000, beta = 0.001 "
                                              r"could not be found"):
        _cp_float.safe_quantile("lower", np.array([1000.0]), np.array([1e10]), 1e-3)
    with pytest.raises(ArithmeticError, match=r"upper bound for x = 9999999000, n = 10000000000, beta = 0.001 "):
        clopper_pearson_lower(1000, 10**10, 1e-3)  # its complement, upper(n - x), is as hard


def test_each_bound_is_independent_of_the_rest_of_its_batch():
    """Hard elements (the safeguarded solve) next to easy ones give what they give alone."""
    x = np.array([1000, 3, 999, 50_000, 1000, 7])
    n = np.array([10**10, 10**9, 1413760, 100_000, 137_000_000, 20])
    for func in (clopper_pearson_upper, clopper_pearson_lower, clopper_pearson_lower_complement):
        together = func(x, n, 5e-4)
        assert together.tolist() == [func(int(a), int(b), 5e-4) for a, b in zip(x, n)]


def _sweep_cases():
    """A bounded, seeded sweep over the edges of the float path: x near 999-1000 (where
    scipy's inverse fails), near SMALL_X and SMALL_X_G (where the tail evaluation
    switches), small x, and all of these as n - x; n from 1e3 to 1e12; beta from the
    floor to 0.5. benchmarks/bench_accuracy.py runs the same sweep at 50 times the size."""
    rng = np.random.default_rng(12)
    xs = [2, 5, _cp_float.SMALL_X, _cp_float.SMALL_X + 1, 999, 1000, 1001,
          _cp_float.SMALL_X_G, _cp_float.SMALL_X_G + 1]
    betas = [limits.LEVEL_MIN, 1e-150, 1e-30, 1e-8, 1e-3, 0.05, 0.3, 0.5, 0.9]
    cases = []
    while len(cases) < 36:
        x, n = int(rng.choice(xs)), int(10 ** rng.uniform(3, 12))
        if x < n:
            cases.append((x if rng.random() < 0.7 else n - x, n, float(rng.choice(betas))))
    return cases


@pytest.mark.parametrize("case", _sweep_cases())
def test_sweep_of_the_switches_and_scipys_bad_region_is_safe_and_within_1e11(case):
    x, n, beta = case
    with mpmath.workdps(30):
        exact_up, exact_low = mp_cp_upper(x, n, beta, 20), mp_cp_lower(x, n, beta, 20)
        up, low = clopper_pearson_upper(x, n, beta), clopper_pearson_lower(x, n, beta)
        # the references are rounded outward by ~1e-20: compare with that slack
        assert mpmath.mpf(up) >= exact_up * (1 - mpmath.mpf("1e-19"))
        assert _rel(up, exact_up) <= REL_TOL
        assert mpmath.mpf(low) <= exact_low * (1 + mpmath.mpf("1e-19"))
        assert abs(float(mpmath.mpf(low) - exact_low)) <= REL_TOL * exact_low + 1e-323


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


def _exact_tail(a: int, b: int, w):
    """I_w(a, b) for a real w (an mpf) by the quadrature of topk_bounds._mp_beta (30 digits)."""
    log_beta_fn = mpmath.loggamma(a) + mpmath.loggamma(b) - mpmath.loggamma(a + b)
    log_t, _, _ = _mp_beta._log_tail_minus(mpmath.mpf(a - 1), mpmath.mpf(b - 1), w, 1 - w, mpmath.log(w),
                                           mpmath.log(1 - w), log_beta_fn, 0, False, 30)
    return mpmath.exp(log_t)


def _boost_forward_errors(seed: int, count: int):
    """Relative errors of scipy's betaincc / betainc, each over the error bound
    topk_bounds._cp_float assumes for it, at float points next to exact roots, against
    the mpmath quadrature of the tail at those very points.

    Root: w = lower(x) for x successes of n (both x and n - x above SMALL_X), at levels
    down to the floor (half of them below 1e-12, where the errors grow). Points: the float
    w (betainc, as G's proofs and the pair path use it), the float c = 1 - w (betaincc:
    the upper tail F of n - x, as its proofs use it) and 1 - c (betainc on the grid of
    complements that topk_bounds._cp_pair uses near 1).
    """
    rng = np.random.default_rng(seed)
    worst_f = worst_g = 0.0
    with mpmath.workdps(40):
        for i in range(count):
            n = int(10 ** rng.uniform(3, 12))
            x = int(rng.integers(_cp_float.SMALL_X + 1, n - _cp_float.SMALL_X - 1))
            beta = float(10 ** rng.uniform(-300, -12) if i % 2 else 10 ** rng.uniform(-12, np.log10(0.5)))
            a, b = x, n - x + 1
            w = mp_cp_lower(x, n, beta, 30)
            wf, cf = float(w), float(1 - w)
            got = special.betainc(float(a), float(b), wf)
            rel = abs(float(got / _exact_tail(a, b, mpmath.mpf(wf)) - 1))
            worst_g = max(worst_g, rel / float(_cp_float.boost_rtol_g(np.array([a]), np.array([got]))[0]))
            got = special.betaincc(float(b), float(a), cf)
            rel = abs(float(got / _exact_tail(a, b, 1 - mpmath.mpf(cf)) - 1))
            worst_f = max(worst_f, rel / float(_cp_float.boost_rtol_f(np.array([b - 1.0]), np.array([n]),
                                                                      np.array([got]))[0]))
            wq = 1.0 - cf
            got = special.betainc(float(a), float(b), wq)
            rel = abs(float(got / _exact_tail(a, b, mpmath.mpf(wq)) - 1))
            worst_g = max(worst_g, rel / float(_cp_float.boost_rtol_g(np.array([a]), np.array([got]))[0]))
    return worst_f, worst_g


def test_boost_tail_errors_are_well_inside_the_assumed_bounds():
    """Measured over 7,000 such points (levels down to 1e-300): at most 1/30 (F) and
    1/13 (G) of the bounds; 128 (sqrt(x) + 1) ulp, the G bound before, was reached to
    within 10% below 1e-13."""
    worst_f, worst_g = _boost_forward_errors(seed=9, count=24)
    assert worst_f * SAFETY <= 1.0, worst_f
    assert worst_g * SAFETY <= 1.0, worst_g


def test_a_betainc_value_that_underflowed_is_replaced_by_a_rigorous_bound():
    """scipy's betainc returns 0 where the tail is 1.0e-300 (x = 999999979 of n = 1e9 at the
    level floor, w next to the root): counted as a proof of T <= beta (as before) it gave a
    lower bound 7.7e-8 above the exact one. Below BOOST_MIN the Chernoff bound stands in,
    which can prove T <= beta where twice it is below, and never T > beta."""
    x, n = 999_999_979, 10**9
    c = 7.854125541287714e-07  # the complement of the root, from mp_cp_upper(21, n, 1e-300)
    w = 1.0 - c
    assert special.betainc(float(x), float(n - x + 1), w) == 0.0
    with mpmath.workdps(40):
        exact = _exact_tail(x, n - x + 1, mpmath.mpf(w))
        assert exact > 0.99e-300
        for value, rtol, _, _ in [_cp_float._tail("G", np.array([float(x)]), np.array([float(n)]), np.array([w]))]:
            assert mpmath.mpf(value[0]) >= exact and rtol[0] == 1.0
            above, below = _cp_float._sides("G", value, rtol, limits.LEVEL_MIN)
            assert not above[0] and not below[0]  # no side proven at the level floor
        # far below the root the bound proves the side
        value, rtol, _, _ = _cp_float._tail("G", np.array([float(x)]), np.array([float(n)]), np.array([1.0 - 1e-5]))
        assert _cp_float._sides("G", value, rtol, limits.LEVEL_MIN)[1][0]
    with mpmath.workdps(40):
        assert mpmath.mpf(clopper_pearson_lower(x, n, limits.LEVEL_MIN)) <= mp_cp_lower(x, n, limits.LEVEL_MIN, 30)


def _pmf(k, n, p):
    """The binomial pmf at the current mpmath precision (log-gamma form)."""
    return mpmath.exp(mpmath.loggamma(n + 1) - mpmath.loggamma(k + 1) - mpmath.loggamma(n - k + 1)
                      + k * mpmath.log(p) + (n - k) * mpmath.log1p(-p))


def test_direct_cdf_sum_agrees_with_the_exact_sum_within_its_stated_bound():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = float(int(10 ** rng.uniform(2, 12)))
        x = float(rng.integers(1, min(n - 1, _cp_float.SMALL_X)))
        p = float(special.betainccinv(x + 1, n - x, 10 ** rng.uniform(-8, -1)))
        val, rtol, log_val, log_slope = _cp_float._cdf_small(np.array([x]), np.array([n]), np.array([p]))
        with mpmath.workdps(50):
            P, N, X = mpmath.mpf(p), int(n), int(x)
            terms = [_pmf(j, N, P) for j in range(X + 1)]
            cdf = mpmath.fsum(terms)
            assert abs(float(val[0] / cdf - 1)) <= rtol[0]
            assert abs(float(log_val[0] - mpmath.log(cdf))) <= rtol[0]
            # the slope |d log F / d log p| from the last term: p (n - x) pmf(x) / (1 - p)
            slope_f = P * (N - X) * terms[X] / (1 - P) / cdf
            assert abs(float(mpmath.exp(log_slope[0]) / slope_f - 1)) <= 1e-12


def test_direct_sf_sum_is_an_upper_bound_within_its_stated_error_or_flags_g_above_one_half():
    """G's blockwise sum near its roots (x up to SMALL_X_G, so across many blocks of the
    products) and above them, against the upward sum of the pmf at 50 digits (until the
    terms fall below 1e-45 of it: they shrink geometrically past the mode)."""
    rng = np.random.default_rng(4)
    flagged = 0
    for i in range(30):
        n = float(int(10 ** rng.uniform(2, 12)))
        x = float(min(rng.choice([rng.integers(1, 40), rng.integers(1, _cp_float.SMALL_X_G + 1)]), n - 1))
        level = 10 ** rng.uniform(-30, np.log10(0.5))
        p = float(special.betaincinv(x, n - x + 1, level)) * float(np.exp(rng.normal(0, 0.02 if i % 3 else 1.0)))
        p = min(max(p, 1e-300), 0.999)
        val, rtol, log_val, log_slope = _cp_float._sf_small(np.array([x]), np.array([n]), np.array([p]))
        with mpmath.workdps(50):
            P, N, X = mpmath.mpf(p), int(n), int(x)
            first = _pmf(X, N, P)
            terms, k, term = [first], X, first
            while k < N and (term > mpmath.mpf("1e-45") * terms[0] or k < N * p + 10):
                term = term * (N - k) * P / ((k + 1) * (1 - P))
                terms.append(term)
                k += 1
            sf = mpmath.fsum(terms)
            if np.isinf(val[0]):  # the sum's flag: G > 1/2
                flagged += 1
                assert sf > 0.5
                continue
            # in logs (G may lie below the float range): never below the exact tail by
            # more than the bound, and above it by at most the geometric tail bound
            assert log_val[0] >= mpmath.log(sf) - rtol[0]
            assert abs(float(log_val[0] - mpmath.log(sf))) <= rtol[0] + 1e-15
            if sf > 1e-300:
                assert abs(float(val[0] / sf - 1)) <= rtol[0] + 1e-15
            # the slope |d log G / d log p| from the first term: x pmf(x)
            assert abs(float(mpmath.exp(log_slope[0]) / (X * first / sf) - 1)) <= 1e-12
    assert 0 < flagged < 30  # both kinds of result were exercised


def test_boost_at_equal_parameters_is_trusted_only_where_the_complement_is_a_float():
    """a == b (x = (n + 1) / 2 successes): Boost works with 1 - w rounded and was 6e-5 off at
    n = 1e12 - 1 below 1/2 (which gave a lower bound 1.6e-11 above the exact one); such a
    point proves nothing, and the bound is still right."""
    x, n, beta = 500_000_000_000, 999_999_999_999, 1e-3 / 3
    with mpmath.workdps(40):
        root = mp_cp_lower(x, n, beta, 30)
        w = float(root)
        if 1.0 - (1.0 - w) == w:  # make it a point whose complement is not a float
            w = float(np.nextafter(w, 0.0))
        rel = abs(float(special.betainc(float(x), float(n - x + 1), w) / _exact_tail(x, n - x + 1, mpmath.mpf(w)) - 1))
        assert rel > 1e-6  # the trap is real
        _, rtol, _ = _cp_float.tail_pair(np.array([False]), np.array([float(x)]), np.array([float(n)]), np.array([w]))
        assert rtol[0] == np.inf
        low, comp = clopper_pearson_lower(x, n, beta), clopper_pearson_lower_complement(x, n, beta)
        assert mpmath.mpf(low) <= root and _rel(low, root) <= REL_TOL
        assert mpmath.mpf(comp) >= 1 - root and _rel(comp, 1 - root) <= REL_TOL
