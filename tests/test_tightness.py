"""Tightness of Theorem 1: the worst-case classifier of Theorem 2, and an LP oracle.

Three independent checks:

* the witness built by ``worst_case_classifier`` is re-evaluated here from its intervals
  with mpmath at 40 digits (through ``erfc``, not the package's helpers): it honours the
  bounds at x and puts k labels strictly above l at x + delta, just beyond R_l;
* below R_l construction is refused (Theorem 1, the soundness side);
* a linear program over a discretized line (``topk_bounds._lp_oracle``) brackets the
  adversary's best margin without using either theorem: it is negative just below R_l and
  positive just above. The bracket [restriction, relaxation] contains the true best margin;
  its width is the discretization error, which the tests bound (see ``LP_WIDTH``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from topk_bounds import topk_radius
from topk_bounds._lp_oracle import best_margin_over_subsets, margin_bracket, predicted_margin
from topk_bounds.radius import mp_radius
from topk_bounds.tightness import classifier_probabilities, worst_case_classifier

CHECK_DPS = 40  # the precision every independent check runs at
LP_CELLS = 1000  # 998 equal cells on [min(0, s) - 8, max(0, s) + 8] and the two tails
# Discretization error of the LP bracket, stated and enforced: over 234 generated cases of
# test_lp_margin_changes_sign_at_the_radius (c <= 4, a in [0.05, 0.999], 0.03 <= s_l <= 3)
# the width was at most 1.7e-4, while |margin| at s_l +- 0.01 was at least 5.2e-3.
LP_WIDTH = 1e-3
LP_SOLVER_TOL = 1e-7  # HiGHS runs at 1e-9 feasibility/optimality tolerance
LP_STEP = 0.01  # the LP must change sign within s_l +- LP_STEP (units of sigma)
LP_EXAMPLES = max(4, settings.default.max_examples // 6)  # each example solves 4 LPs


# --------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------
def _assumptions(a: float, b: np.ndarray, k: int) -> tuple[bool, bool]:
    """Theorem 2's two assumptions, exactly on the float inputs."""
    fa = Fraction(a)
    top = sum((Fraction(float(x)) for x in np.sort(b)[::-1][:k]), Fraction(0))
    every = sum((Fraction(float(x)) for x in b), Fraction(0))
    return fa + top <= 1, fa + every >= 1


@st.composite
def theorem2_bounds(draw, max_labels: int = 6, a_range=None, tiny_b: bool = True):
    """(a, b, k, sigma) meeting a + (k largest b) <= 1 <= a + (all b).

    The bounds b share (1 - a) * rho, rho in [1, 1 / (share of the k largest)]: both
    assumptions hold, with equality at either end of rho's range.
    """
    c = draw(st.integers(2, max_labels))
    k = draw(st.integers(1, c - 1))
    if a_range is not None:
        a = draw(st.floats(*a_range))
    else:
        regime = draw(st.sampled_from(["uniform", "near1", "small"]))
        if regime == "uniform":
            a = draw(st.floats(0.02, 0.98))
        elif regime == "near1":
            a = 1.0 - 10.0 ** -draw(st.floats(1.0, 12.0))
        else:
            a = 10.0 ** -draw(st.floats(1.5, 8.0))
    low = -6.0 if tiny_b else -1.3
    weights = 10.0 ** np.array(draw(st.lists(st.floats(low, 0.0), min_size=c - 1, max_size=c - 1)))
    total = weights.sum()
    share = np.sort(weights)[::-1][:k].sum() / total
    rho = 1.0 + draw(st.floats(0.0, 1.0)) * (1.0 / share - 1.0)
    b = (1.0 - a) * rho * weights / total
    assume(all(_assumptions(a, b, k)))
    sigma = draw(st.sampled_from([0.25, 0.5, 1.0]))
    return a, b, k, sigma


@st.composite
def violating_bounds(draw):
    """(a, b, k, sigma, which): bounds breaking assumption 1 or assumption 2."""
    c = draw(st.integers(2, 4))
    k = draw(st.integers(1, c - 1))
    a = draw(st.floats(0.1, 0.9))
    weights = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=c - 1, max_size=c - 1)))
    total = weights.sum()
    share = np.sort(weights)[::-1][:k].sum() / total
    which = draw(st.sampled_from([1, 2]))
    if which == 1:  # the k largest alone exceed 1 - a
        rho = draw(st.floats(1.05, 2.0)) / share
    else:  # all bounds together fall short of 1 - a
        rho = draw(st.floats(0.5, 0.95))
    b = np.minimum((1.0 - a) * rho * weights / total, 1.0)
    a1, a2 = _assumptions(a, b, k)
    assume(not a1 if which == 1 else not a2)
    return a, b, k, 1.0, which


# --------------------------------------------------------------------------------------
# independent evaluation of a classifier (mpmath erfc, not the package's helpers)
# --------------------------------------------------------------------------------------
def _gauss_mass(lo, hi):
    """P(lo <= Z < hi), Z ~ N(0, 1), from the tail on the interval's side."""
    r2 = mpmath.sqrt(2)
    if lo >= 0:
        return (mpmath.erfc(lo / r2) - mpmath.erfc(hi / r2)) / 2
    if hi <= 0:
        return (mpmath.erfc(-hi / r2) - mpmath.erfc(-lo / r2)) / 2
    return 1 - (mpmath.erfc(-lo / r2) + mpmath.erfc(hi / r2)) / 2


def _evaluate(intervals, n_others, shift):
    """Probabilities of every label (index -1: l) under N(shift, 1), at CHECK_DPS digits."""
    with mpmath.workdps(CHECK_DPS):
        s = mpmath.mpf(shift)
        probs = [mpmath.mpf(0)] * (n_others + 1)
        for lab, lo, hi in intervals:
            probs[lab] += _gauss_mass(mpmath.mpf(lo) - s, mpmath.mpf(hi) - s)
        return probs


def _check_partition(intervals, n_others):
    assert intervals[0][1] == -math.inf and intervals[-1][2] == math.inf
    for (lab, lo, hi), nxt in zip(intervals, intervals[1:] + [None]):
        assert -1 <= lab < n_others
        assert lo < hi
        if nxt is not None:
            assert nxt[1] == hi, "intervals must be contiguous"
            assert nxt[0] != lab, "adjacent intervals of one label should be merged"


def _check_witness(a, b, k, sigma, radius, intervals):
    """The two properties of Theorem 2's classifier, checked at 40 digits."""
    n = len(b)
    _check_partition(intervals, n)
    with mpmath.workdps(CHECK_DPS):
        p_x = _evaluate(intervals, n, 0)
        assert p_x[-1] >= mpmath.mpf(a), f"P_x(l) = {p_x[-1]} < a = {a!r}"
        for j in range(n):
            assert p_x[j] <= mpmath.mpf(float(b[j])), f"P_x({j}) = {p_x[j]} > b = {b[j]!r}"
        shift = mpmath.mpf(radius) / mpmath.mpf(sigma)
        p_far = _evaluate(intervals, n, shift)
        above = [j for j in range(n) if p_far[j] > p_far[-1]]
        assert len(above) >= k, f"only {len(above)} labels beat l at radius {radius!r}"
        return p_far


def _radius_just_above(a, b, k, sigma):
    """R_l * (1 + 1e-4) when R_l >= 0.01 sigma, else max(R_l, 0) + 1e-6 sigma."""
    exact = topk_radius(a, b, k, sigma, dps=50)
    if exact >= 0.01 * sigma:
        with mpmath.workdps(50):
            return float(exact * (1 + mpmath.mpf("1e-4"))), exact
    return max(float(exact), 0.0) + 1e-6 * sigma, exact


# --------------------------------------------------------------------------------------
# the witness
# --------------------------------------------------------------------------------------
@given(theorem2_bounds())
@example((0.75, np.array([0.125, 0.0625, 0.0625]), 1, 0.5))  # k = 1, a + sum(b) = 1
@example((0.5, np.array([0.25, 0.125, 0.125]), 3, 1.0))  # k = c - 1, both equalities
@example((1 - 2.0**-40, np.array([2.0**-42, 2.0**-42, 2.0**-41]), 2, 0.25))  # a near 1
@example((2.0**-30, np.array([0.5, 0.25, 0.25 - 2.0**-30]), 2, 1.0))  # a tiny, R_l < 0
@example((0.25, np.array([0.75 - 2.0**-50, 2.0**-50]), 2, 1.0))  # a tiny bound in the top k
@example((0.4, np.array([0.2, 0.2, 0.1, 0.1, 0.1]), 2, 1.0))  # two labels fill the gap
@example((0.5, np.array([0.5]), 1, 1.0))  # c = 2: Cohen et al.'s setting, R_l = 0
def test_witness_honours_the_bounds_and_pushes_l_out_just_beyond_the_radius(case):
    a, b, k, sigma = case
    radius, _ = _radius_just_above(a, b, k, sigma)
    intervals = worst_case_classifier(a, b, k, sigma, radius)
    assert all(isinstance(x, float) for _, lo, hi in intervals for x in (lo, hi))
    _check_witness(a, b, k, sigma, radius, intervals)


@given(theorem2_bounds(max_labels=5), st.floats(1e-3, 4.0))
def test_witness_attains_the_largest_possible_margin(case, beyond):
    """Each top-k label is worth min_t G(B_t) / t, the best any classifier can guarantee
    them all, so the witness's smallest margin over l equals the closed form (which the LP
    tests confirm independently) up to the float rounding of its ends."""
    a, b, k, sigma = case
    exact = topk_radius(a, b, k, sigma, dps=50)
    radius = max(float(exact), 0.0) + beyond * sigma
    intervals = worst_case_classifier(a, b, k, sigma, radius)
    p_far = _check_witness(a, b, k, sigma, radius, intervals)
    top = np.argsort(-b, kind="stable")[:k]
    with mpmath.workdps(CHECK_DPS):
        got = min(p_far[j] for j in top) - p_far[-1]
        best = predicted_margin(a, b, k, radius / sigma, dps=CHECK_DPS)
        assert got > 0
        assert got <= best * (1 + mpmath.mpf("1e-9")) + mpmath.mpf("1e-30")
        assert got >= best * (1 - mpmath.mpf("1e-6")) - mpmath.mpf("1e-30")


@given(theorem2_bounds(max_labels=4, tiny_b=False), st.sampled_from([1e-12, 1e-20, 1e-30]))
@settings(max_examples=max(5, settings.default.max_examples // 3))
def test_mpf_witness_exists_arbitrarily_close_to_the_radius(case, rel):
    """With dps=N the ends are mpf: r = R_l (1 + 1e-30) is still a witness (at 70 digits)."""
    a, b, k, sigma = case
    with mpmath.workdps(80):
        exact = topk_radius(a, b, k, sigma, dps=80)
        assume(exact > 0.01 * sigma)
        radius = exact * (1 + mpmath.mpf(rel))
    intervals = worst_case_classifier(a, b, k, sigma, radius, dps=45)
    assert all(isinstance(lo, mpmath.mpf) for _, lo, _ in intervals)
    n = len(b)
    with mpmath.workdps(70):
        s = radius / sigma
        probs_x = [mpmath.mpf(0)] * (n + 1)
        probs_s = [mpmath.mpf(0)] * (n + 1)
        for lab, lo, hi in intervals:
            probs_x[lab] += _gauss_mass(lo, hi)
            probs_s[lab] += _gauss_mass(lo - s, hi - s)
        assert probs_x[-1] >= mpmath.mpf(a)
        assert all(probs_x[j] <= mpmath.mpf(float(b[j])) for j in range(n))
        assert sum(p > probs_s[-1] for p in probs_s[:-1]) >= k


def test_float_witness_refuses_margins_below_float_resolution():
    a, b, k, sigma = 0.55, [0.2, 0.15, 0.1, 0.1], 2, 1.0
    exact = topk_radius(a, b, k, sigma, dps=50)
    with mpmath.workdps(50):
        radius = exact * (1 + mpmath.mpf("1e-25"))
    with pytest.raises(ArithmeticError, match="pass a larger dps"):
        worst_case_classifier(a, b, k, sigma, radius)
    _check_witness(a, b, k, sigma, radius, worst_case_classifier(a, b, k, sigma, radius, dps=40))


# --------------------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------------------
@given(theorem2_bounds())
@example((0.5, np.array([0.25, 0.125, 0.125]), 2, 0.5))
def test_construction_is_refused_at_and_below_the_radius(case):
    a, b, k, sigma = case
    exact = topk_radius(a, b, k, sigma, dps=50)
    radii = [topk_radius(a, b, k, sigma)]  # the float radius: never above the exact one
    if exact > 0:
        with mpmath.workdps(50):
            radii += [float(exact * (1 - mpmath.mpf("1e-4"))), 0.0, exact]
    for radius in radii:
        if radius < 0 or math.isinf(radius):
            continue
        with pytest.raises(ValueError, match="must exceed the certified radius R_l"):
            worst_case_classifier(a, b, k, sigma, radius)


@given(violating_bounds())
@example((0.5, np.array([0.4, 0.3, 0.2]), 2, 1.0, 1))
def test_construction_is_refused_when_the_first_assumption_fails(case):
    a, b, k, sigma, which = case
    assume(which == 1)
    with pytest.raises(ValueError, match="sum of the k largest"):
        worst_case_classifier(a, b, k, sigma, 10.0)


@given(violating_bounds())
@example((0.5, np.array([0.2, 0.1, 0.1]), 2, 1.0, 2))
@example((0.7, np.array([0.2, 0.06, 0.04]), 2, 0.5, 2))  # 1 - 3.5e-17 in the floats' exact values
@example((0.7, np.array([0.2, 0.06, 0.04]), 1, 0.5, 2))
def test_without_the_second_assumption_l_takes_the_leftover_beyond_the_radius_of_it(case):
    """a + sum(b) < 1: every consistent classifier gives l at least a' = 1 - sum(b), so no
    witness exists up to topk_radius(a', ...), and one exists just beyond it."""
    a, b, k, sigma, which = case
    assume(which == 2)
    with mpmath.workprec(1200):
        a_eff = 1 - mpmath.fsum(mpmath.mpf(float(x)) for x in b)  # exact
        tight = mp_radius(a_eff, list(b), k, sigma, 50, p_lower_complement=1 - a_eff)
    assert tight >= topk_radius(a, b, k, sigma, dps=50)
    if tight >= 0:
        with pytest.raises(ValueError, match=r"raised to 1 - sum\(p_upper\)"):
            worst_case_classifier(a, b, k, sigma, tight)
    with mpmath.workdps(50):
        radius = float(tight * (1 + mpmath.mpf("1e-4"))) if tight > 0.01 * sigma else max(float(tight), 0) + 1e-6 * sigma
    _check_witness(a, b, k, sigma, radius, worst_case_classifier(a, b, k, sigma, radius))


def test_rounding_never_inverts_a_tiny_interval():
    """Four labels of about 3e-17 fill a gap of 2e-17 beside l: their intervals are an ulp
    or two wide, and directed rounding used to invert one, leaving two intervals that
    overlapped by an ulp (which classifier_probabilities rejects)."""
    a, x, k, sigma = 0.4252015722283552, 0.03831989518477632, 15, 1000.0
    b = np.array([x] * 15 + [2.5840153435823848e-17, 3.332644147653398e-17,
                             3.2870983074886835e-17, 2.7393694429929522e-17])
    radius = 1.0001 * topk_radius(a, b, k, sigma)
    intervals = worst_case_classifier(a, b, k, sigma, radius)
    classifier_probabilities(intervals, 0.0, n_others=b.size)  # contiguous: accepted
    _check_witness(a, b, k, sigma, radius, intervals)


def test_witness_at_radius_zero_when_the_radius_is_negative():
    """At s = 0 every window is worth its own mass, so a reduced bound could move it between
    the two passes and the rounding slack of the first no longer covered the second."""
    a, b, k, sigma = 0.223708343902008, np.array([0.2587638853659973, 0.25876388536599737,
                                                  0.2587638853659973]), 3, 1.0
    assert topk_radius(a, b, k, sigma) < 0  # R_l = -0.056
    _check_witness(a, b, k, sigma, 0.0, worst_case_classifier(a, b, k, sigma, 0.0))


def test_classifier_probabilities_still_accepts_the_deprecated_n_labels():
    clf = [(-1, -math.inf, 0.0), (0, 0.0, 1.0), (1, 1.0, math.inf)]
    with pytest.warns(DeprecationWarning, match="n_others"):
        old = classifier_probabilities(clf, 0.5, n_labels=3)
    np.testing.assert_array_equal(old, classifier_probabilities(clf, 0.5, n_others=3))
    with pytest.raises(ValueError, match="not both"):
        classifier_probabilities(clf, 0.5, n_others=3, n_labels=3)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0.5, [0.25, 0.25], 3, 1.0, 1.0), {}, r"k \(3\) must be smaller than the number of labels c = 3"),
        ((0.5, [0.25, 0.25], 1, 1.0, -1.0), {}, "radius must be a finite number >= 0"),
        ((0.5, [0.25, 0.25], 1, 1.0, math.inf), {}, "radius must be a finite number >= 0"),
        ((0.5, [0.25, 0.25], 1, 1.0, "x"), {}, "radius must be a finite number >= 0"),
        ((1.5, [0.25, 0.25], 1, 1.0, 1.0), {}, "p_lower must be a probability"),
        ((0.5, [0.25, 0.25], 0, 1.0, 1.0), {}, "k must be an integer >= 1"),
        ((0.5, [0.25, 0.25], 1, 0.0, 1.0), {}, "sigma must be a finite number > 0"),
        ((0.5, [0.25, 0.25], 1, 1.0, 1.0), {"dps": 5}, "dps must be None or an integer >= 15"),
        ((1.0, [0.0, 0.0], 1, 1.0, 5.0), {}, r"must exceed the certified radius R_l = \+?inf"),
    ],
)
def test_invalid_arguments_are_rejected_with_a_clear_message(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        worst_case_classifier(*args, **kwargs)


# --------------------------------------------------------------------------------------
# the helper
# --------------------------------------------------------------------------------------
@given(theorem2_bounds(max_labels=5), st.floats(0.0, 6.0))
def test_classifier_probabilities_agree_with_an_independent_40_digit_evaluation(case, shift):
    a, b, k, sigma = case
    radius, _ = _radius_just_above(a, b, k, sigma)
    intervals = worst_case_classifier(a, b, k, sigma, radius)
    n = len(b)
    reference = _evaluate(intervals, n, shift)
    fast = classifier_probabilities(intervals, shift, n_others=n)
    slow = classifier_probabilities(intervals, shift, n_others=n, dps=CHECK_DPS)
    assert fast.shape == (n + 1,)
    with mpmath.workdps(CHECK_DPS):
        assert abs(mpmath.fsum(slow) - 1) < mpmath.mpf("1e-35")
        for ref, f, m in zip(reference, fast, slow):
            # both at 40 digits: an interval across 0 loses digits to 1 - (two tails)
            assert abs(m - ref) <= mpmath.mpf("1e-35") * ref + mpmath.mpf("1e-38")
            # float64: w - shift and the two tail values each round to 1e-16 relative, so a
            # narrow interval loses digits to cancellation; 2e-15 absolute covers it
            assert abs(mpmath.mpf(f) - ref) <= 1e-13 * ref + 2e-15


@pytest.mark.parametrize(
    ("intervals", "message"),
    [
        ([], "must not be empty"),
        ([(-1, 0.0, math.inf)], "must cover the real line"),
        ([(-1, -math.inf, 0.0), (0, 1.0, math.inf)], "sorted and contiguous"),
        ([(-1, -math.inf, 1.0), (0, 1.0, 1.0), (0, 1.0, math.inf)], "lo < hi"),
        ([(-2, -math.inf, math.inf)], "labels must be integers >= -1"),
        ([(0, -math.inf)], r"\(label, lo, hi\) triples"),
    ],
)
def test_classifier_probabilities_rejects_malformed_intervals(intervals, message):
    with pytest.raises(ValueError, match=message):
        classifier_probabilities(intervals, 0.0)


@pytest.mark.parametrize("shift", [math.nan, math.inf, "x", None])
def test_classifier_probabilities_rejects_a_shift_that_is_not_finite(shift):
    # a NaN shift used to return NaN probabilities
    with pytest.raises(ValueError, match="shift must be a finite number"):
        classifier_probabilities([(-1, -math.inf, 0.0), (0, 0.0, math.inf)], shift)


# --------------------------------------------------------------------------------------
# the LP oracle: an assumption-free second check of Theorems 1 and 2
# --------------------------------------------------------------------------------------
def _check_bracket(bracket, predicted):
    assert bracket.width <= LP_WIDTH, f"discretization error {bracket.width:.2e} > {LP_WIDTH}"
    assert bracket.lower - LP_SOLVER_TOL <= predicted <= bracket.upper + LP_SOLVER_TOL


@given(theorem2_bounds(max_labels=4, a_range=(0.05, 0.999), tiny_b=False))
@settings(max_examples=LP_EXAMPLES)
@example((0.55, np.array([0.2, 0.15, 0.1, 0.1]), 2, 1.0))
def test_lp_margin_changes_sign_at_the_radius(case):
    """Over all soft classifiers honouring the bounds, the adversary's best margin (k
    largest bounds against l) is negative at s_l - 0.01 and positive at s_l + 0.01, and
    the closed form min_t G(B_t)/t - q lies inside the LP bracket at both points."""
    a, b, k, sigma = case
    s_l = topk_radius(a, b, k, sigma) / sigma
    assume(3 * LP_STEP <= s_l <= 3.0)
    below = margin_bracket(a, b, s_l - LP_STEP, k=k, cells=LP_CELLS)
    above = margin_bracket(a, b, s_l + LP_STEP, k=k, cells=LP_CELLS)
    _check_bracket(below, float(predicted_margin(a, b, k, s_l - LP_STEP)))
    _check_bracket(above, float(predicted_margin(a, b, k, s_l + LP_STEP)))
    assert below.upper < -LP_SOLVER_TOL, "a classifier beats l inside the certified radius"
    assert above.lower > LP_SOLVER_TOL, "no classifier beats l just beyond the radius"


@given(violating_bounds())
@settings(max_examples=LP_EXAMPLES)
@example((0.5, np.array([0.4, 0.3, 0.2]), 2, 1.0, 1))
@example((0.5, np.array([0.2, 0.1, 0.1]), 2, 1.0, 2))
def test_lp_without_the_assumptions_tightness_is_at_the_radius_of_max_a_and_one_minus_sum_b(case):
    """Without Theorem 2's assumptions the LP still agrees with the closed form, whose root
    is topk_radius(max(a, 1 - sum b), b, k): Theorem 1's radius itself when only the first
    assumption fails (its clipping at 1 - a makes it tight), and a strictly larger radius
    when the second fails (l must hold 1 - sum b anyway): Theorem 1 is then not tight."""
    a, b, k, sigma, which = case
    a_eff = max(a, float(1 - sum(Fraction(float(x)) for x in b)))
    s_l = topk_radius(a, b, k, sigma) / sigma
    s_tight = topk_radius(a_eff, b, k, sigma) / sigma
    assume(3 * LP_STEP <= s_tight <= 3.0)
    if which == 1:
        assert s_tight == s_l
    else:
        assert s_tight > s_l
    below = margin_bracket(a, b, s_tight - LP_STEP, k=k, cells=LP_CELLS)
    above = margin_bracket(a, b, s_tight + LP_STEP, k=k, cells=LP_CELLS)
    _check_bracket(below, float(predicted_margin(a, b, k, s_tight - LP_STEP)))
    _check_bracket(above, float(predicted_margin(a, b, k, s_tight + LP_STEP)))
    assert below.upper < -LP_SOLVER_TOL
    assert above.lower > LP_SOLVER_TOL


@pytest.mark.parametrize(
    ("a", "b", "k"),
    [
        (0.55, [0.2, 0.15, 0.1], 2),  # both assumptions hold
        (0.5, [0.4, 0.3, 0.2], 2),  # the first fails
        (0.6, [0.2, 0.1, 0.05], 1),  # the second fails
    ],
)
def test_lp_the_k_largest_bounds_are_the_adversarys_best_choice(a, b, k):
    """Trying every k-subset T of the other labels: none does better than the k labels
    with the largest bounds (the oracle's default), at shifts on both sides of the root."""
    a_eff = max(a, 1 - sum(b))
    s_tight = topk_radius(a_eff, b, k, 1.0)
    for shift in (s_tight - 0.2, s_tight + 0.2):
        brackets = best_margin_over_subsets(a, b, k, shift, cells=600)
        top = tuple(sorted(int(j) for j in np.argsort(-np.asarray(b), kind="stable")[:k]))
        for subset, bracket in brackets.items():
            assert bracket.width <= LP_WIDTH
            assert bracket.upper <= brackets[top].lower + LP_WIDTH, subset
