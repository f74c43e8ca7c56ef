"""certify(..., method="ranked"): bounds at alpha / min(c, k + 1) for the label and its k
strongest competitors. Never certifies less than SimuEM, is SimuEM when k + 1 >= c, is
safely rounded against the exact reference, and keeps its 1 - alpha guarantee in a
Monte-Carlo test with known probabilities (with a control that shows the test can fail)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from topk_bounds import certify, topk_radius
from topk_bounds.certify import certify_exact

REL_TOL = 1e-10


@st.composite
def count_rows(draw, max_c: int = 12):
    """(counts, label, k): one row with n up to 10^12 and a few dominant labels."""
    c = draw(st.integers(2, max_c))
    n = draw(st.sampled_from([1, 10, 1000, 10**5, 10**9, 10**12])) - draw(st.integers(0, 1))
    n = max(n, 1)
    weights = np.array(draw(st.lists(st.sampled_from([0, 0, 1, 3, 10, 100, 1000]),
                                     min_size=c, max_size=c)), dtype=float)
    if weights.sum() == 0:
        weights[0] = 1.0
    counts = np.floor(n * weights / weights.sum()).astype(np.int64)
    counts[int(np.argmax(weights))] += n - counts.sum()
    label = draw(st.integers(0, c - 1))
    k = draw(st.integers(1, c))
    return counts, label, k


@given(count_rows(), st.sampled_from([0.5, 0.01, 1e-6]))
@example((np.array([100, 0, 0, 0, 0]), 0, 1), 0.001)
@example((np.array([0, 50, 50, 0]), 0, 2), 0.001)
@example((np.array([10**12 - 2, 1, 1]), 0, 1), 0.001)
@example((np.array([3, 3, 3, 3, 3, 3]), 2, 4), 0.001)
def test_ranked_never_certifies_less_than_simuem_on_the_same_counts(row, alpha):
    counts, label, k = row
    ranked = certify(counts, label, k=k, sigma=0.5, alpha=alpha, method="ranked").radius[0]
    simuem = certify(counts, label, k=k, sigma=0.5, alpha=alpha, method="simuem").radius[0]
    # the exact radius grows with the level; the float radii sit within 1e-13 below the
    # exact ones, and the levels differ by a factor >= 4/3, so no rounding can reorder them
    assert ranked >= simuem, (ranked, simuem)


@settings(max_examples=60)
@given(count_rows(max_c=6), st.sampled_from([0.2, 0.001]))
def test_ranked_is_exactly_simuem_when_k_plus_one_covers_every_label(row, alpha):
    counts, label, _ = row
    c = counts.size
    for k in range(max(c - 1, 1), c + 2):
        ranked = certify(counts, label, k=k, sigma=0.25, alpha=alpha, method="ranked")
        simuem = certify(counts, label, k=k, sigma=0.25, alpha=alpha, method="simuem")
        np.testing.assert_array_equal(ranked.radius, simuem.radius)
        np.testing.assert_array_equal(ranked.p_lower, simuem.p_lower)


def test_ranked_bounds_are_the_clopper_pearson_bounds_at_alpha_over_k_plus_one():
    from topk_bounds import clopper_pearson_lower, clopper_pearson_upper

    counts = np.array([7000, 2000, 600, 300, 100])
    res = certify(counts, 0, k=2, sigma=0.5, alpha=0.003, method="ranked")
    # level 0.003 / 3 = 0.001 per bound; p_lower and p_upper are safely rounded
    assert res.p_lower[0] == pytest.approx(clopper_pearson_lower(7000, 10_000, 0.001), rel=1e-12)
    assert res.p_upper[0, 1] == pytest.approx(clopper_pearson_upper(2000, 10_000, 0.001), rel=1e-12)


# certify_exact takes up to about a second per row: keep the CI profile's 500 examples out
@settings(max_examples=12)
@given(count_rows(max_c=8))
@example((np.array([99_990, 6, 4, 0, 0, 0, 0, 0, 0, 0]), 0, 1))
@example((np.array([10**9 - 10**6, 6 * 10**5, 4 * 10**5, 0]), 0, 2))
@example((np.array([600, 300, 100, 0, 0]), 1, 2))
def test_ranked_radius_never_exceeds_and_matches_the_exact_reference(row):
    counts, label, k = row
    got = float(certify(counts, label, k=k, sigma=0.25, alpha=0.001, method="ranked").radius[0])
    exact = certify_exact(counts, label, k=k, sigma=0.25, alpha=0.001, method="ranked", dps=30)
    if math.isinf(got) or mpmath.isinf(exact):
        assert got == float(exact)
        return
    assert mpmath.mpf(got) <= exact, f"certified {got!r} overstates the exact {exact}"
    assert float(exact - mpmath.mpf(got)) <= REL_TOL * max(abs(float(exact)), 1e-3)


# --------------------------------------------------------------------------------------
# Monte Carlo: known probabilities whose true radius is just below the target
# --------------------------------------------------------------------------------------
def probs_with_true_radius(c: int, k: int, sigma: float, radius: float, competitors) -> np.ndarray:
    """Label 0's probability solved (brentq to 1e-15) so that Theorem 1's radius of the
    exact probabilities is ``radius``; ``competitors`` are fixed, the rest share equally."""
    competitors = np.asarray(competitors, dtype=float)

    def build(p_l):
        rest = (1.0 - p_l - competitors.sum()) / (c - 1 - competitors.size)
        return np.concatenate([[p_l], competitors, np.full(c - 1 - competitors.size, rest)])

    def gap(p_l):
        return topk_radius(p_l, build(p_l)[1:], k, sigma) - radius

    p_l = optimize.brentq(gap, 1e-6, 1.0 - competitors.sum() - 1e-9, xtol=1e-15, rtol=1e-15)
    return build(p_l)


def plug_in_radius(counts: np.ndarray, res, k: int, sigma: float) -> np.ndarray:
    """The control: the label's lower bound, but the competitors' *observed* frequencies
    instead of upper bounds (a plausible mistake, not a valid certificate)."""
    freq = counts[:, 1:] / counts.sum(axis=1, keepdims=True)
    return np.array([topk_radius(a, f, k, sigma) for a, f in zip(res.p_lower, freq)])


def p_above(failures: int, trials: int, alpha: float) -> float:
    """Exact one-sided binomial p-value of ``failures`` under a failure rate of alpha."""
    return stats.binomtest(failures, trials, alpha, alternative="greater").pvalue


# c, k, fixed competitor probabilities (the others share what is left)
CONFIGS = [
    (10, 1, [0.3]),  # one strong competitor: the competitor's bound matters
    (10, 2, [0.3, 0.1]),  # top 2: the label is the runner-up
    (1000, 1, [0.2]),  # level alpha / 2 instead of SimuEM's alpha / 1000
]


@pytest.mark.parametrize(("c", "k", "competitors"), CONFIGS)
@pytest.mark.parametrize("fraction", [0.99, 0.999])
def test_ranked_false_certificate_rate_is_at_most_alpha_and_a_plug_in_control_exceeds_it(
        c, k, competitors, fraction):
    alpha, sigma, target, n, trials = 0.05, 0.5, 0.25, 1000, 4000
    probs = probs_with_true_radius(c, k, sigma, fraction * target, competitors)
    assert topk_radius(probs[0], probs[1:], k, sigma) < target
    rng = np.random.default_rng([2020, c, k, int(fraction * 1000)])
    counts = rng.multinomial(n, probs, size=trials)
    res = certify(counts, 0, k=k, sigma=sigma, alpha=alpha, method="ranked")
    false = int((res.radius >= target).sum())
    assert p_above(false, trials, alpha) > 1e-3, (false, trials)
    # power: the ranked radius reaches well into the true radius in many trials
    assert np.mean(res.radius >= 0.8 * target) > 0.05
    control = int((plug_in_radius(counts, res, k, sigma) >= target).sum())
    assert p_above(control, trials, alpha) < 1e-3, (control, trials)
