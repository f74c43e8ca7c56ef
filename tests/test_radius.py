"""Properties of the Theorem 1 radius: soundness and precision of the float path against the
mpmath path, the monotonicity and invariances the theorem implies, and the closed forms."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from topk_bounds import _float as fl
from topk_bounds import topk_radius

# Precision promised for the float path: 1e-10 relative, absolute 1e-10 * max(|R|, 1e-3).
REL_TOL = 1e-10


def _ref_slack(exact, sigma, dps: int = 50):
    """How far the dps path's reference may lie below the exact radius (it is rounded
    down): 10^(1 - dps) |R| + 10^-(dps + 4) sigma. A float radius is sound when it does
    not exceed the reference plus this."""
    with mpmath.workdps(dps + 10):
        return mpmath.mpf(10) ** (1 - dps) * abs(exact) + mpmath.mpf(10) ** -(dps + 4) * sigma


def _tol(exact) -> float:
    return REL_TOL * max(abs(float(exact)), 1e-3)


def _at_least(big: float, small: float) -> bool:
    """big >= small up to the float path's precision (exact comparison for infinities)."""
    if math.isinf(big) or math.isinf(small):
        return big >= small
    return big >= small - _tol(small)


@st.composite
def bounds(draw, max_labels: int = 10):
    """(a, b, k, sigma): a lower bound, c - 1 upper bounds, k and sigma.

    a is drawn uniformly, close to 1 (the common case: 1 - a down to 1e-15), or close to
    0; the b_j either share the rest of the mass (as real bounds do, scaled by up to 3)
    or are arbitrary probabilities.
    """
    c = draw(st.integers(2, max_labels))
    regime = draw(st.sampled_from(["uniform", "near1", "near0"]))
    if regime == "uniform":
        a = draw(st.floats(0.0, 1.0))
    elif regime == "near1":
        a = 1.0 - 10.0 ** -draw(st.floats(0.5, 15.0))
    else:
        a = 10.0 ** -draw(st.floats(0.5, 300.0))
    if draw(st.booleans()):
        weights = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=c - 1, max_size=c - 1)))
        scale = draw(st.floats(0.0, 3.0))
        total = weights.sum()
        b = (1.0 - a) * scale * (weights / total if total > 0 else weights)
    else:
        b = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=c - 1, max_size=c - 1)))
    b = np.clip(b, 0.0, 1.0)
    k = draw(st.integers(1, c))
    sigma = draw(st.sampled_from([0.12, 0.25, 0.5, 1.0])) * draw(st.sampled_from([1.0, 1.7, 3.3]))
    return a, b, k, sigma


@given(bounds())
@example((0.9, np.array([0.05, 0.03, 0.02]), 1, 0.5))
@example((1 - 1e-12, np.array([1e-13, 1e-13, 5e-14]), 3, 0.25))
@example((0.5, np.array([0.5, 0.5]), 2, 1.0))  # everything clipped at 1 - a
@example((0.4, np.array([0.3, 0.3, 0.0]), 2, 1.0))
@example((1e-300, np.array([0.9, 0.1]), 2, 1.0))
@example((0.9, np.array([1.0, 1.0, 1.0, 5e-324, 5e-324]), 5, 0.12))  # subnormal sums are exact
@example((1e-310, np.array([0.0, 0.4, 1e-310, 0.33]), 3, 1.0))  # a tie: exactly 0
@example((0.3312402869625342, np.array([0.33, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05]), 2, 1.0))
@example((0.19569927760165218, np.array([0.19569927340332607]), 1, 154442381.02604765))  # was 6.5e-9 low
@example((1e-300, np.array([9.999937308561114e-301, 1.0000202972246726e-300, 9.999849339507962e-301, 0.5]),
          3, 1.0))  # |z| = 37 near a tie: was 3e-6 low
def test_float_radius_never_exceeds_the_exact_radius_and_is_within_1e10(case):
    a, b, k, sigma = case
    approx = topk_radius(a, b, k, sigma)
    exact = topk_radius(a, b, k, sigma, dps=50)
    if math.isinf(approx) or mpmath.isinf(exact):
        assert approx == float(exact)
        return
    assert mpmath.mpf(approx) <= exact + _ref_slack(exact, sigma), f"float radius {approx!r} overstates exact {exact}"
    assert float(exact - mpmath.mpf(approx)) <= _tol(exact)


@st.composite
def near_ties(draw):
    """(a, b, k, sigma) with B_t = t a (1 + eps) for one t: a root s_t close to 0.

    |eps| from 1e-15 to 1/2, of either sign; a from 1e-300 to 1/2; the other bounds of the top k
    larger, so that the t smallest are the ones constructed; sigma up to 1e8, so that a
    tiny s is a radius of order 1.
    """
    k = draw(st.integers(1, 5))
    t = draw(st.integers(1, k))
    if draw(st.booleans()):
        a = 10.0 ** -draw(st.floats(0.31, 300.0))
    else:
        a = draw(st.floats(0.01, 0.5))
    eps = draw(st.sampled_from([-1.0, 1.0])) * 10.0 ** -draw(st.floats(0.3, 15.0))
    weights = np.array(draw(st.lists(st.floats(0.7, 1.3), min_size=t, max_size=t)))
    small = t * a * (1.0 + eps) * weights / weights.sum()
    big = small.max() * np.array(draw(st.lists(st.floats(1.0, 3.0), min_size=k - t + 1,
                                               max_size=k - t + 1)))
    b = np.minimum(np.concatenate([small, big]), 1.0)
    sigma = draw(st.sampled_from([0.25, 1.0, 1e8]))
    return a, b, k, sigma


@given(near_ties())
@example((0.19569927760165218, np.array([0.19569927340332607]), 1, 154442381.02604765))
@example((1e-300, np.array([9.999937308561114e-301, 1.0000202972246726e-300, 9.999849339507962e-301, 0.5]),
          3, 1.0))
@example((0.2, np.array([0.2, 0.2, 0.2]), 3, 1.0))  # exact ties for every t: R = 0
@example((0.3333333333333333, np.array([0.3, 0.6, 0.6]), 2, 0.25))  # a tie at the clip 1 - a
@example((0.3, np.array([0.3000001]), 1, 1.0))  # just below a tie: negative
@example((0.3330602987544194, np.array([0.33306029875441345, 0.732552204623181, 0.6324837421811057]), 2, 1e8))
@example((0.20015945933522, np.array([0.23160247038571447, 0.16871644828472626, 0.5088909225997783,
                                      0.6444343721234946, 0.47817912853855515]), 4, 1.0))
def test_float_radius_keeps_1e10_relative_precision_at_near_ties(case):
    """Roots close to 0 keep full relative precision (``topk_bounds._near_tie``): within
    1e-10 |R| of the exact radius, or 1e-30 sigma where R is that close to 0 (the 50-digit
    reference itself is only that close to an exact 0). Measured: at most 3.4e-11 over
    4,500 such cases (relative), with the float radius never above the exact one."""
    a, b, k, sigma = case
    approx = topk_radius(a, b, k, sigma)
    exact = topk_radius(a, b, k, sigma, dps=50)
    assert mpmath.mpf(approx) <= exact + _ref_slack(exact, sigma), f"float radius {approx!r} overstates exact {exact}"
    assert float(exact - mpmath.mpf(approx)) <= 1e-10 * abs(float(exact)) + 1e-30 * sigma


@given(st.floats(-40.0, 40.0))
@example(-37.5)
@example(0.0)
def test_mills_ratio_bounds_bracket_the_exact_ratio_tightly(x):
    with mpmath.workdps(40):
        exact = mpmath.npdf(x) / mpmath.ncdf(x)
        lo = fl.mills_lower(np.array([x]))[0]
        hi = fl.mills_upper(np.array([x]))[0]
        assert mpmath.mpf(lo) <= exact <= mpmath.mpf(hi)
        if exact > 1e-290:  # subnormal results keep fewer digits
            assert hi - lo <= 1e-10 * exact


@given(bounds(max_labels=6))
def test_mp_radius_is_stable_under_more_digits(case):
    """dps=N is correct to about N - 5 digits: 40 and 70 digits agree to 1e-35."""
    a, b, k, sigma = case
    r40 = topk_radius(a, b, k, sigma, dps=40)
    r70 = topk_radius(a, b, k, sigma, dps=70)
    if mpmath.isinf(r40):
        assert r40 == r70
        return
    with mpmath.workdps(80):
        assert abs(r40 - r70) <= mpmath.mpf("1e-35") * max(1, abs(r70))


@given(bounds(max_labels=6), st.sampled_from([15, 30]))
@example((0.9, np.array([0.05, 0.03, 0.02]), 2, 0.5), 15)
@example((0.6, np.array([0.3, 0.05, 0.05]), 2, 1.0), 15)
@example((0.5, np.array([0.5, 0.5]), 2, 1.0), 15)  # R = 0
def test_mp_radius_is_rounded_down_and_within_its_stated_error(case, dps):
    """dps=N never exceeds the exact radius (rounding to nearest did, in about half the
    cases, by up to 1e-15 at N = 15) and is below it by at most 10^(1-N)|R| + 10^-(N+4) sigma.
    The reference at N + 40 digits is itself rounded down by far less than that."""
    a, b, k, sigma = case
    got = topk_radius(a, b, k, sigma, dps=dps)
    ref = topk_radius(a, b, k, sigma, dps=dps + 40)
    if mpmath.isinf(ref):
        assert got == ref
        return
    with mpmath.workdps(dps + 50):
        assert got <= ref, f"dps={dps} radius {got} exceeds the reference {ref}"
        assert ref - got <= mpmath.mpf(10) ** (1 - dps) * abs(ref) + mpmath.mpf(10) ** -(dps + 4) * sigma


@given(bounds(), st.floats(0.0, 1.0))
def test_radius_grows_with_p_lower(case, frac):
    a, b, k, sigma = case
    a2 = a + frac * (1.0 - a)
    r1, r2 = topk_radius(a, b, k, sigma), topk_radius(a2, b, k, sigma)
    assert _at_least(r2, r1)


@given(bounds())
def test_radius_grows_with_k(case):
    a, b, k, sigma = case
    assume(k < b.size + 1)
    r1, r2 = topk_radius(a, b, k, sigma), topk_radius(a, b, k + 1, sigma)
    assert _at_least(r2, r1)


@given(bounds(), st.data())
def test_radius_shrinks_as_any_upper_bound_grows(case, data):
    a, b, k, sigma = case
    j = data.draw(st.integers(0, b.size - 1))
    b2 = b.copy()
    b2[j] = b[j] + data.draw(st.floats(0.0, 1.0)) * (1.0 - b[j])
    r1, r2 = topk_radius(a, b, k, sigma), topk_radius(a, b2, k, sigma)
    assert _at_least(r1, r2)


@given(bounds(), st.floats(0.01, 100.0))
def test_radius_scales_linearly_with_sigma(case, factor):
    a, b, k, sigma = case
    r1, r2 = topk_radius(a, b, k, sigma), topk_radius(a, b, k, sigma * factor)
    if math.isinf(r1):
        assert r2 == r1
    else:
        assert abs(r2 - factor * r1) <= 1e-13 * max(abs(factor * r1), 1.0)


@given(bounds(), st.randoms(use_true_random=False))
def test_radius_ignores_the_order_of_labels(case, rnd):
    a, b, k, sigma = case
    perm = list(range(b.size))
    rnd.shuffle(perm)
    assert topk_radius(a, b[perm], k, sigma) == topk_radius(a, b, k, sigma)


def _mp_probit(p):
    """Phi^{-1} through mpmath.erfinv: independent of the package's own inverse."""
    return mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.mpf(p) - 1)


@given(bounds())
@example((0.9, np.array([0.05, 0.03, 0.02]), 1, 0.5))
def test_radius_at_k1_equals_cohens_closed_form(case):
    a, b, _, sigma = case
    assume(1e-12 < a < 1 - 1e-12 and b.max() > 1e-12)
    with mpmath.workdps(60):
        b_max = min(mpmath.mpf(float(b.max())), 1 - mpmath.mpf(a))
        expected = sigma / 2 * (_mp_probit(a) - _mp_probit(b_max))
    got = topk_radius(a, b, 1, sigma)
    assert mpmath.mpf(got) <= expected
    assert abs(got - float(expected)) <= _tol(expected)


@given(bounds(max_labels=6))
def test_radius_solves_the_theorem_1_equation_for_its_maximizing_t(case):
    """Independent check of the root: the untransformed equation of Theorem 1 evaluated at
    60 digits is zero at R / sigma for some t, and non-positive for every other t."""
    a, b, k, sigma = case
    r = topk_radius(a, b, k, sigma, dps=50)
    assume(mpmath.isfinite(r) and 1e-6 < a < 1 - 1e-6)
    with mpmath.workdps(60):
        qa = 1 - mpmath.mpf(a)
        top = sorted(min(mpmath.mpf(float(x)), qa) for x in sorted(b)[::-1][:k])
        s = r / sigma
        values = []
        for t in range(1, k + 1):
            big_b = min(mpmath.fsum(top[:t]), qa)
            if big_b < mpmath.mpf("1e-12"):
                return
            g = mpmath.ncdf(_mp_probit(a) - s) - mpmath.ncdf(_mp_probit(big_b) + s) / t
            values.append(g)
        assert min(abs(v) for v in values) < mpmath.mpf("1e-40")
        assert max(values) < mpmath.mpf("1e-40")


def test_radius_is_infinite_when_k_reaches_the_number_of_labels():
    assert topk_radius(0.01, [0.9, 0.5], k=3, sigma=1.0) == math.inf
    assert topk_radius(0.01, [0.9, 0.5], k=3, sigma=1.0, dps=30) == mpmath.inf


def test_radius_is_minus_infinity_when_p_lower_is_zero():
    assert topk_radius(0.0, [0.5, 0.5], k=1, sigma=1.0) == -math.inf
    assert topk_radius(0.0, [0.5, 0.5], k=1, sigma=1.0, dps=30) == -mpmath.inf


def test_radius_is_infinite_when_the_smallest_top_k_bound_is_zero():
    assert topk_radius(0.5, [0.4, 0.0, 0.0], k=2, sigma=1.0) == math.inf
    assert topk_radius(1.0, [0.0, 0.0], k=1, sigma=1.0) == math.inf


def test_radius_is_not_positive_when_another_label_may_be_as_likely():
    assert topk_radius(0.4, [0.4, 0.1], k=1, sigma=1.0) <= 0
    assert topk_radius(0.3, [0.5, 0.1], k=1, sigma=1.0) < 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(p_lower=1.5), r"p_lower must be a probability in \[0, 1\], got 1.5"),
        (dict(p_lower=float("nan")), "p_lower must be a probability"),
        (dict(p_upper=[0.1, -0.2]), r"p_upper must hold probabilities in \[0, 1\], got p_upper\[1\] = -0.2"),
        (dict(p_upper=[[0.1]]), r"p_upper must be a 1-D sequence"),
        (dict(p_upper=["a"]), r"p_upper must be a 1-D sequence .*got \['a'\]"),
        (dict(p_upper=[[0.1], [0.2, 0.3]]), r"p_upper must be a 1-D sequence"),
        (dict(k=0), "k must be an integer >= 1, got 0"),
        (dict(k=1.5), "k must be an integer >= 1, got 1.5"),
        (dict(sigma=0.0), "sigma must be a finite number > 0, got 0.0"),
        (dict(sigma=float("nan")), "sigma must be a finite number > 0, got nan"),
        (dict(dps=3), "dps must be None or an integer >= 15, got 3"),
    ],
)
def test_invalid_arguments_raise_value_errors_that_name_them(kwargs, message):
    args = dict(p_lower=0.9, p_upper=[0.05, 0.05], k=1, sigma=1.0) | kwargs
    with pytest.raises(ValueError, match=message):
        topk_radius(args.pop("p_lower"), args.pop("p_upper"), args.pop("k"), args.pop("sigma"), **args)


def test_mp_path_leaves_global_precision_unchanged():
    before = mpmath.mp.dps
    topk_radius(0.7, [0.2, 0.1], k=2, sigma=1.0, dps=80)
    assert mpmath.mp.dps == before
