"""certify and predict: agreement with the exact bounds and radius, vectorization, input
validation, and Monte-Carlo checks of the 1 - alpha guarantees with known probabilities."""

from __future__ import annotations

import math
import re
import sys
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy import stats

from topk_bounds import certify, predict, topk_radius
from topk_bounds.certify import _boundary_test, _top_other_counts, certify_exact
from topk_bounds.limits import LEVEL_MIN, N_MAX

REL_TOL = 1e-10


@st.composite
def count_rows(draw):
    """(counts, label, k): one row of counts with n up to 10^12, the label usually on top."""
    c = draw(st.integers(2, 8))
    n = draw(st.sampled_from([10, 1000, 10**5, 10**9, 10**12])) - draw(st.integers(0, 5))
    label_share = draw(st.sampled_from([1.0, 0.999999, 0.99, 0.7, 0.4, 0.1, 0.0]))
    n_l = min(n, int(round(n * label_share)) + draw(st.integers(-3, 3)))
    n_l = max(n_l, 0)
    rest = n - n_l
    weights = np.array(draw(st.lists(st.integers(0, 100), min_size=c - 1, max_size=c - 1)), dtype=float)
    if weights.sum() == 0:
        weights[0] = 1.0
    others = np.floor(rest * weights / weights.sum()).astype(np.int64)
    others[int(np.argmax(weights))] += rest - others.sum()
    label = draw(st.integers(0, c - 1))
    counts = np.insert(others, label, n_l)
    k = draw(st.integers(1, c))
    return counts, label, k


@given(count_rows(), st.sampled_from(["simuem", "binocp"]))
@example((np.array([99996, 0, 4, 0]), 0, 1), "simuem")
@example((np.array([10**12 - 5, 5, 0]), 0, 2), "simuem")
@example((np.array([10**12, 0, 0]), 0, 1), "simuem")
@example((np.array([999999001, 999]), 0, 1), "simuem")  # was safe but 4e-6 low
@example((np.array([0, 10, 0]), 0, 1), "binocp")
@example((np.array([5, 3, 2]), 1, 3), "simuem")
def test_certified_radius_never_exceeds_the_radius_of_the_exact_bounds(row, method):
    counts, label, k = row
    sigma, alpha = 0.25, 0.001
    got = float(certify(counts, label, k=k, sigma=sigma, alpha=alpha, method=method).radius[0])
    exact = certify_exact(counts, label, k=k, sigma=sigma, alpha=alpha, method=method)
    if math.isinf(got) or mpmath.isinf(exact):
        assert got == float(exact)
        return
    # the reference is rounded down, by at most 10^-49 |R| + 10^-54 sigma
    slack = mpmath.mpf("1e-49") * abs(exact) + mpmath.mpf("1e-54") * sigma
    assert mpmath.mpf(got) <= exact + slack, f"certified {got!r} overstates the exact {exact}"
    assert float(exact - mpmath.mpf(got)) <= REL_TOL * max(abs(float(exact)), 1e-3)


@given(count_rows())
def test_certify_radius_matches_topk_radius_of_its_own_bounds(row):
    counts, label, k = row
    res = certify(counts, label, k=k, sigma=0.5, alpha=0.01)
    others = np.delete(res.p_upper[0], label)
    direct = topk_radius(res.p_lower[0], others, k, 0.5)
    got = res.radius[0]
    if math.isinf(got) or math.isinf(direct):
        # p_lower is rounded to float: a lower bound within an ulp of 0 stays finite
        assume(not (math.isinf(direct) and direct < 0))
        assert got == direct
        return
    # certify uses 1 - p_lower to full precision; the float p_lower is rounded down, so
    # it certifies no more, and the same up to the digits it keeps of 1 - p_lower
    assert got >= direct - REL_TOL * max(abs(direct), 1e-3)
    if res.p_lower_complement[0] > 1e-6:
        assert abs(got - direct) <= 1e-7 * max(abs(direct), 1.0)


def test_certify_is_exactly_the_row_by_row_result():
    rng = np.random.default_rng(7)
    counts = rng.multinomial(10_000, rng.dirichlet(np.ones(12) * 0.3), size=200)
    labels = rng.integers(0, 12, size=200)
    whole = certify(counts, labels, k=3, sigma=0.5, alpha=0.001)
    for i in range(0, 200, 17):
        single = certify(counts[i], labels[i], k=3, sigma=0.5, alpha=0.001)
        assert single.radius[0] == whole.radius[i]
        assert single.p_lower[0] == whole.p_lower[i]
        np.testing.assert_array_equal(single.p_upper[0], whole.p_upper[i])


def _reference_top_other_counts(counts, labels, k):
    """The selection certify used before the chunked key selection (one np.partition)."""
    n_rows, n_classes = counts.shape
    top = np.sort(np.partition(counts, n_classes - k - 1, axis=1)[:, n_classes - k - 1:], axis=1)
    own = counts[np.arange(n_rows), labels][:, None]
    hit = top == own
    drop = np.where(hit.any(axis=1), hit.argmax(axis=1), 0)
    keep = np.ones(top.shape, dtype=bool)
    keep[np.arange(n_rows), drop] = False
    return top[keep].reshape(n_rows, k)


@pytest.mark.parametrize("c", [2, 3, 10, 255, 256, 257, 1000, 2500])
def test_top_k_selection_equals_a_plain_partition_on_wide_and_narrow_rows_with_ties(c):
    rng = np.random.default_rng(c)
    n_rows = 700  # more than one chunk of the wide selection for c >= 375
    rows = [
        rng.integers(0, 4, size=(n_rows, c)),  # nearly all ties
        rng.multinomial(100_000, rng.dirichlet(np.full(c, 0.05)), size=n_rows),
        rng.integers(N_MAX // (2 * c), N_MAX // c, size=(n_rows, c)),  # keys close to their limit
    ]
    for counts in rows:
        counts = counts.astype(np.int64)
        labels = rng.integers(0, c, size=n_rows)
        counts[::7, :] = counts[::7, :1]  # whole rows of one value
        for k in sorted({1, min(5, c - 1), c - 1}):
            np.testing.assert_array_equal(_top_other_counts(counts, labels, k),
                                          _reference_top_other_counts(counts, labels, k))


def test_radii_are_bit_identical_to_those_of_the_plain_partition(monkeypatch):
    certify_module = sys.modules["topk_bounds.certify"]  # the package's `certify` is the function

    rng = np.random.default_rng(5)
    counts = rng.multinomial(100_000, rng.dirichlet(np.full(1000, 0.05)), size=300)
    labels = counts.argmax(axis=1)
    fast = certify(counts, labels, k=5, sigma=0.5, alpha=0.001).radius
    monkeypatch.setattr(certify_module, "_top_other_counts", _reference_top_other_counts)
    plain = certify(counts, labels, k=5, sigma=0.5, alpha=0.001).radius
    assert fast.tobytes() == plain.tobytes()


def test_certify_result_has_the_documented_shapes_and_repr():
    counts = np.array([[90, 5, 5], [30, 60, 10]])
    res = certify(counts, [0, 1], k=1, sigma=0.25, alpha=0.05)
    assert res.radius.shape == (2,) and res.radius.dtype == np.float64
    assert res.certified.dtype == bool and res.certified.tolist() == (res.radius > 0).tolist()
    assert res.p_lower.shape == (2,) and res.p_upper.shape == (2, 3)
    assert "CertifyResult(N=2, k=1" in repr(res)
    assert np.all(res.p_lower <= counts[[0, 1], [0, 1]] / 100)
    assert np.all(res.p_upper >= counts / 100)


def test_certified_is_computed_once_not_on_every_access():
    res = certify(np.array([[90, 5, 5], [30, 60, 10]]), [0, 1], k=1, sigma=0.25, alpha=0.05)
    assert res.certified is res.certified  # the CLI reads it per row: no N^2


def test_importing_the_package_imports_neither_scipy_stats_nor_scipy_optimize():
    """scipy.stats alone took 2 s of every CLI run; predict needs only scipy.special."""
    import subprocess

    code = ("import sys, topk_bounds, topk_bounds._lp_oracle, topk_bounds.tightness; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['scipy', 'stats'], ['scipy', 'optimize']) or m == 'torch'); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_certify_gives_infinite_radius_when_k_covers_every_label():
    res = certify([1, 2, 97], 0, k=3, sigma=1.0, alpha=0.01)
    assert res.radius.tolist() == [math.inf]


def test_certify_gives_minus_infinity_when_the_label_never_appears():
    res = certify([0, 50, 50], 0, k=2, sigma=1.0, alpha=0.01)
    assert res.radius.tolist() == [-math.inf] and not res.certified[0]


def test_binocp_bounds_every_other_label_by_one_minus_p_lower():
    res = certify([[900, 60, 40]], [0], k=1, sigma=1.0, alpha=0.01, method="binocp")
    np.testing.assert_array_equal(res.p_upper[0], res.p_lower_complement[0])
    simu = certify([[900, 60, 40]], [0], k=1, sigma=1.0, alpha=0.01, method="simuem")
    assert simu.radius[0] > res.radius[0]  # 60/1000 is far below 1 - p_lower


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: certify([[1, 2], [3]], 0, k=1, sigma=1, alpha=0.1), "counts"),
        (lambda: certify([[1.5, 2]], 0, k=1, sigma=1, alpha=0.1), r"counts\[0, 0\] = 1.5 is not an integer"),
        (lambda: certify([[1, -2, 3]], 0, k=1, sigma=1, alpha=0.1), r"counts must be non-negative, got counts\[0, 1\] = -2"),
        (lambda: certify([[0, 0, 0]], 0, k=1, sigma=1, alpha=0.1), "row 0 sums to 0"),
        (lambda: certify([[1, 2, 3]], 3, k=1, sigma=1, alpha=0.1), r"labels must lie in 0..2, got labels\[0\] = 3"),
        (lambda: certify([[1, 2, 3]], [0, 1], k=1, sigma=1, alpha=0.1), r"labels must be an int or have shape \(1,\)"),
        (lambda: certify([[1, 2, 3]], 0, k=0, sigma=1, alpha=0.1), "k must be an integer >= 1, got 0"),
        (lambda: certify([[1, 2, 3]], 0, k=1, sigma=-1, alpha=0.1), "sigma must be a finite number > 0, got -1"),
        (lambda: certify([[1, 2, 3]], 0, k=1, sigma=1, alpha=1.0), r"alpha must be a probability in \(0, 1\), got 1.0"),
        (lambda: certify([[1, 2, 3]], 0, k=1, sigma=1, alpha=0.1, method="cp"), "method must be one of 'simuem', 'binocp' or 'ranked', got 'cp'"),
        (lambda: predict([[1, 2, 3]], k=3, alpha=0.1), "k must be smaller than the number of labels c = 3, got k = 3"),
    ],
)
def test_invalid_arguments_raise_value_errors_that_name_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------
# hostile input: overflow, non-finite counts, levels below the floor (issue 12)
# --------------------------------------------------------------------------------------
_KW = dict(k=1, sigma=0.5, alpha=0.001)


@pytest.mark.parametrize(
    ("counts", "where", "value"),
    [
        # the int64 row sum wraps to a small positive n: label 0 was certified (0.588)
        ([[100, 2**63 - 1, 2**63 - 1, 4]], r"counts\[0, 1\]", "9223372036854775807"),
        # the row sum wraps to exactly 7: a radius of 4.29 was returned
        (np.array([[2**62] * 3 + [2**62 + 7, 2**62]]), r"counts\[0, 0\]", "4611686018427387904"),
        # uint64 counts >= 2**63 were cast to a negative number first
        (np.array([[5, 2**63]], dtype=np.uint64), r"counts\[0, 1\]", "9223372036854775808"),
        (np.array([[5, 2**64 - 1]], dtype=np.uint64), r"counts\[0, 1\]", "18446744073709551615"),
        # Python ints beyond uint64 make an object array; floats beyond int64 a float one
        ([[5, 1], [2**64, 1]], r"counts\[1, 0\]", "18446744073709551616"),
        ([[5, 2**63]], r"counts\[0, 1\]", r"9.223372036854776e\+18"),
        ([3, 10**12 + 1], r"counts\[1\]", "1000000000001"),
    ],
)
def test_counts_beyond_n_max_are_rejected_with_their_position_before_any_wrap(counts, where, value):
    with pytest.raises(ValueError, match=rf"{where} = {value} exceeds limits.N_MAX"):
        certify(counts, 0, **_KW)
    with pytest.raises(ValueError, match=rf"{where} = {value} exceeds limits.N_MAX"):
        predict(counts, k=1, alpha=0.001)


def test_row_totals_beyond_n_max_are_rejected_though_every_count_is_below_it():
    counts = [[10, 10, 10], [N_MAX // 2, N_MAX // 2, 1]]
    with pytest.raises(ValueError, match=r"row 1 of counts sums to n = 1,000,000,000,001, above limits.N_MAX"):
        certify(counts, 0, **_KW)
    # n = N_MAX itself is supported
    assert certify([[N_MAX - 10, 10]], 0, **_KW).radius[0] > 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_counts_are_rejected_naming_the_row(bad):
    counts = np.array([[90.0, 5.0, 5.0], [1.0, bad, 2.0]])
    with pytest.raises(ValueError, match=rf"counts must be finite, got counts\[1, 1\] = {bad!r} \(row 1\)"):
        certify(counts, 0, **_KW)
    with pytest.raises(ValueError, match=r"\(row 1\)"):
        predict(counts, k=1, alpha=0.01)
    objects = np.array([[90, 5, 5], [1, bad, 2]], dtype=object)
    with pytest.raises(ValueError, match=r"counts must be finite, got counts\[1, 1\]"):
        certify(objects, 0, **_KW)


def test_labels_as_integral_floats_are_accepted_and_bad_ones_named():
    counts = [[90, 5, 5], [5, 90, 5]]
    as_int = certify(counts, [0, 1], **_KW).radius
    np.testing.assert_array_equal(certify(counts, np.array([0.0, 1.0]), **_KW).radius, as_int)
    with pytest.raises(ValueError, match=r"labels must be integers, got labels\[1\] = nan"):
        certify(counts, [0.0, math.nan], **_KW)
    with pytest.raises(ValueError, match=r"labels must be integers, got labels\[0\] = 0.5"):
        certify(counts, [0.5, 1.0], **_KW)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2, got labels\[1\] = 3.0"):
        certify(counts, [0.0, 3.0], **_KW)
    # a long array of strings is not printed whole
    with pytest.raises(ValueError, match=r"labels must be integers, got an array of dtype <U1$"):
        certify([[90, 5, 5]] * 20, ["a"] * 20, **_KW)


def test_non_integral_counts_are_named_and_integral_floats_are_accepted():
    with pytest.raises(ValueError, match=r"counts\[1, 2\] = 5.5 is not an integer"):
        certify([[1.0, 2.0, 3.0], [1.0, 2.0, 5.5]], 0, **_KW)
    with pytest.raises(ValueError, match=r"counts must hold integers, got counts\[0, 1\] = '7'"):
        certify(np.array([[1, "7"]], dtype=object), 0, **_KW)
    with pytest.raises(ValueError, match="got dtype bool"):
        certify([[True, False]], 0, **_KW)
    ints = certify([[9000, 600, 400]], 0, **_KW)
    floats = certify([[9000.0, 600.0, 400.0]], 0, **_KW)
    objects = certify(np.array([[9000, 600.0, 400]], dtype=object), 0, **_KW)
    assert ints.radius[0] == floats.radius[0] == objects.radius[0]


@pytest.mark.parametrize(
    ("alpha", "c", "method", "share"),
    [
        (1e-320, 10_000, "simuem", "c = 10000"),  # the level went negative: NaN
        (5e-324, 3, "simuem", "c = 3"),  # took 39 s for one row
        (3e-300, 10, "ranked", r"min\(c, k \+ 1\) = 4"),
        (5e-324, 3, "binocp", "1 bounds"),
    ],
)
def test_levels_below_level_min_are_rejected_naming_alpha_the_split_and_the_floor(alpha, c, method, share):
    counts = [900] + [10] * (c - 1)
    message = rf"alpha \({alpha!r}\) split among {share}.* below limits.LEVEL_MIN = {LEVEL_MIN:g}"
    with pytest.raises(ValueError, match=message):
        certify(counts, 0, k=3, sigma=0.5, alpha=alpha, method=method)
    with pytest.raises(ValueError, match=message):
        certify_exact(counts, 0, k=3, sigma=0.5, alpha=alpha, method=method, dps=20)


def test_the_smallest_accepted_level_gives_a_finite_sound_radius():
    alpha = 4 * LEVEL_MIN  # c = 3: a level of 1.33 LEVEL_MIN
    got = certify([9000, 600, 400], 0, k=1, sigma=0.5, alpha=alpha).radius[0]
    exact = certify_exact([9000, 600, 400], 0, k=1, sigma=0.5, alpha=alpha, dps=30)
    assert math.isfinite(got) and mpmath.mpf(got) <= exact + mpmath.mpf("1e-30")


@pytest.mark.parametrize("dps", [-1, 0, 14, 1.5, None, True, "50"])
def test_certify_exact_rejects_a_dps_that_is_not_an_integer_of_at_least_15(dps):
    # dps = -1 used to return 0.5 where the radius is 0.3898
    with pytest.raises(ValueError, match=rf"dps must be an integer >= 15, got {re.escape(repr(dps))}"):
        certify_exact([9000, 600, 300, 100], 0, k=2, sigma=0.5, alpha=0.001, dps=dps)


def test_certify_exact_passes_its_level_as_an_mpf_rounded_down_never_a_float(monkeypatch):
    """alpha / c is formed in mpmath (rounded down) and handed to the bounds as an mpf:
    rounding it to the nearest double could put it above alpha / c by 3e-17 relative."""
    import topk_bounds.bounds as bounds_module

    seen = []
    for name in ("clopper_pearson_upper", "clopper_pearson_lower_complement"):
        original = getattr(bounds_module, name)

        def spy(x, n, beta, *, dps=None, _original=original):
            seen.append(beta)
            return _original(x, n, beta, dps=dps)

        monkeypatch.setattr(bounds_module, name, spy)
    alpha, c, dps = 0.001, 3, 30
    certify_exact([9000, 600, 400], 0, k=2, sigma=0.5, alpha=alpha, dps=dps)
    assert seen and all(isinstance(beta, mpmath.mpf) for beta in seen)
    exact = Fraction(alpha) / c  # not a binary fraction: the mpf must round it
    for beta in seen:
        got = _as_fraction(beta)
        assert got <= exact
        assert exact - got <= exact * Fraction(1, 10 ** (dps + 15))


def _as_fraction(x: mpmath.mpf) -> Fraction:
    man, exp = x.man, x.exp
    return Fraction(int(man)) * (Fraction(2) ** int(exp))


def test_certify_exact_is_never_above_a_more_precise_reference():
    """Rounded down at every dps: the 15-digit reference never exceeds the 50-digit one."""
    for counts, label, k in [([9000, 600, 300, 100], 0, 2), ([4000, 3900, 2000, 100], 1, 2),
                             ([5000, 5000], 0, 1), ([10**12 - 5, 5, 0], 0, 2)]:
        low = certify_exact(counts, label, k=k, sigma=0.5, alpha=0.001, dps=15)
        high = certify_exact(counts, label, k=k, sigma=0.5, alpha=0.001, dps=50)
        with mpmath.workdps(60):
            assert low <= high
            assert high - low <= mpmath.mpf("1e-14") * abs(high) + mpmath.mpf("1e-19")


# --------------------------------------------------------------------------------------
# the sampler's total-variation slack delta (issue 10)
# --------------------------------------------------------------------------------------
METHODS = ["simuem", "binocp", "ranked"]


@pytest.mark.parametrize("method", METHODS)
def test_delta_zero_is_bit_identical_to_no_delta(method):
    rng = np.random.default_rng(3)
    counts = rng.multinomial(10_000, rng.dirichlet(np.ones(12) * 0.3), size=200)
    labels = rng.integers(0, 12, size=200)
    plain = certify(counts, labels, k=3, sigma=0.5, alpha=0.001, method=method)
    for zero in (0.0, 0, np.float64(0.0)):
        res = certify(counts, labels, k=3, sigma=0.5, alpha=0.001, method=method, delta=zero)
        for name in ("radius", "p_lower", "p_lower_complement", "p_upper"):
            assert getattr(res, name).tobytes() == getattr(plain, name).tobytes(), name
    assert repr(res) == repr(plain)


@pytest.mark.parametrize("method", METHODS)
def test_radius_decreases_as_delta_grows(method):
    counts = np.array([[9000, 600, 300, 100], [4000, 3900, 2000, 100], [800, 150, 50, 0]])
    labels = [0, 1, 0]
    deltas = [0.0, 1e-9, 1e-6, 1e-3, 1e-2, 0.2]
    radii = np.array([certify(counts, labels, k=2, sigma=0.5, alpha=0.001, method=method,
                              delta=d).radius for d in deltas])
    assert np.all(np.diff(radii, axis=0) < 0), radii  # strictly: every delta here moves every bound
    res = certify(counts, labels, k=2, sigma=0.5, alpha=0.001, method=method, delta=1e-3)
    base = certify(counts, labels, k=2, sigma=0.5, alpha=0.001, method=method)
    assert np.all(res.p_lower <= base.p_lower - 1e-3 + 1e-15)
    assert np.all(res.p_upper >= np.minimum(base.p_upper + 1e-3 - 1e-15, 1.0))
    assert "delta=0.001" in repr(res)


def test_a_delta_that_swallows_the_lower_bound_gives_minus_infinity():
    res = certify([[60, 30, 10]], 0, k=1, sigma=0.5, alpha=0.01, delta=0.9)
    assert res.radius.tolist() == [-math.inf] and res.p_lower.tolist() == [0.0]


@given(count_rows(), st.sampled_from(METHODS), st.sampled_from([1e-12, 1e-7, 1e-4, 0.01, 0.3]))
@settings(max_examples=max(10, settings.default.max_examples // 5))  # about 0.1 s each
@example((np.array([9000, 600, 300, 100]), 0, 2), "simuem", 1e-4)
@example((np.array([10**12 - 5, 5, 0]), 0, 2), "binocp", 1e-12)
@example((np.array([5, 3, 2]), 1, 3), "ranked", 0.3)
def test_certify_with_delta_never_exceeds_certify_exact_with_delta(row, method, delta):
    counts, label, k = row
    sigma, alpha = 0.25, 0.001
    got = float(certify(counts, label, k=k, sigma=sigma, alpha=alpha, method=method, delta=delta).radius[0])
    exact = certify_exact(counts, label, k=k, sigma=sigma, alpha=alpha, method=method, delta=delta)
    if math.isinf(got) or mpmath.isinf(exact):
        assert got == float(exact)
        return
    slack = mpmath.mpf("1e-49") * abs(exact) + mpmath.mpf("1e-54") * sigma  # the reference rounds down
    assert mpmath.mpf(got) <= exact + slack, f"certified {got!r} overstates the exact {exact}"
    assert float(exact - mpmath.mpf(got)) <= REL_TOL * max(abs(float(exact)), 1e-3)


@pytest.mark.parametrize("delta", [-1e-9, 1.0, 1.5, math.nan, math.inf, "x", None, True])
def test_invalid_delta_is_rejected_naming_it(delta):
    with pytest.raises(ValueError, match=r"delta must be a total-variation distance in \[0, 1\)"):
        certify([[90, 5, 5]], 0, k=1, sigma=0.5, alpha=0.01, delta=delta)
    with pytest.raises(ValueError, match=r"delta must be a total-variation distance"):
        certify_exact([90, 5, 5], 0, k=1, sigma=0.5, alpha=0.01, delta=delta, dps=20)


# --------------------------------------------------------------------------------------
# Monte-Carlo checks of the guarantees, with known class probabilities
# --------------------------------------------------------------------------------------
def _not_significantly_above(failures: int, trials: int, alpha: float) -> bool:
    """False only if the failure rate exceeds alpha with a p-value below 1e-6."""
    return stats.binom.sf(failures - 1, trials, alpha) > 1e-6


@pytest.mark.parametrize("method", ["simuem", "binocp"])
@pytest.mark.parametrize(
    ("probs", "k"),
    [
        (np.array([0.5, 0.3, 0.15, 0.05]), 1),
        (np.array([0.3, 0.32, 0.28, 0.1]), 2),
        (np.array([0.2, 0.25, 0.25, 0.2, 0.1]), 3),
    ],
)
def test_radius_exceeds_the_true_radius_in_at_most_alpha_of_trials(method, probs, k):
    alpha, sigma, n, trials = 0.2, 0.5, 200, 4000
    label = 0
    true_radius = topk_radius(probs[label], np.delete(probs, label), k, sigma)
    rng = np.random.default_rng(20260 + k)
    counts = rng.multinomial(n, probs, size=trials)
    res = certify(counts, np.full(trials, label), k=k, sigma=sigma, alpha=alpha, method=method)
    failures = int((res.radius > true_radius).sum())
    assert _not_significantly_above(failures, trials, alpha), (failures, trials)
    assert res.certified.any()  # the check has power: some radii are positive


def _is_a_top_k_set(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per row: min_{i in S} p_i >= max_{j not in S} p_j (ties at the boundary allowed)."""
    inside = probs[labels].min(axis=1)
    outside = np.ones((labels.shape[0], probs.size), dtype=bool)
    np.put_along_axis(outside, labels, False, axis=1)
    return inside >= np.where(outside, probs[None, :], -1.0).max(axis=1)


def _predict_trials(probs, k, seed, trials=4000, n=2000):
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, probs / probs.sum(), size=trials)


_PREDICT_CASES = [
    # (probabilities, k, alpha): exact ties, near ties, several k and c
    (np.array([0.5, 0.5]), 1, 0.05),  # an exact tie: both answers are top-1 sets
    (np.array([0.3, 0.3, 0.2, 0.2]), 1, 0.1),  # a tie on top, a clear boundary for k = 2
    (np.array([0.3, 0.3, 0.2, 0.2]), 2, 0.1),
    (np.array([0.25, 0.25, 0.25, 0.25]), 2, 0.2),  # every pair is a top-2 set
    (np.array([0.21, 0.2, 0.2, 0.2, 0.19]), 2, 0.1),  # ties at the boundary
    (np.array([0.2, 0.2, 0.2, 0.2, 0.199]), 4, 0.2),  # a near tie at the boundary
    (np.array([1 / 3 + 1e-3, 1 / 3, 1 / 3 - 1e-3]), 2, 0.2),
    (np.array([0.5, 0.499]), 1, 0.2),
    (np.array([0.4, 0.36, 0.24]), 1, 0.1),
    (np.array([0.3, 0.28, 0.26, 0.16]), 2, 0.1),
    (np.array([0.22, 0.21, 0.2, 0.19, 0.18]), 3, 0.1),
    (np.array([0.15, 0.15, 0.12, 0.12, 0.1, 0.1, 0.08, 0.06, 0.06, 0.06]), 4, 0.2),
    (np.array([0.15, 0.15, 0.12, 0.12, 0.1, 0.1, 0.08, 0.06, 0.06, 0.06]), 5, 0.2),  # a boundary tie
]


@pytest.mark.parametrize(("probs", "k", "alpha"), _PREDICT_CASES)
def test_predict_returns_a_non_top_k_set_in_at_most_alpha_of_trials(probs, k, alpha):
    probs = probs / probs.sum()
    counts = _predict_trials(probs, k, seed=99 + k + probs.size)
    res = predict(counts, k=k, alpha=alpha)
    answered = ~res.abstained
    wrong = int((~_is_a_top_k_set(res.labels[answered], probs)).sum())
    assert _not_significantly_above(wrong, counts.shape[0], alpha), (wrong, counts.shape[0])
    assert answered.sum() > 0  # the procedure does answer


def test_predict_monte_carlo_check_fails_for_the_strict_definition_at_a_tie():
    """Control: counting every answer as wrong at an exact tie (the old documented
    definition) exceeds alpha (about 9.6% at alpha = 0.05), and the check says so."""
    probs, k, alpha = np.array([0.5, 0.5]), 1, 0.05
    counts = _predict_trials(probs, k, seed=100)
    answered = int((~predict(counts, k=k, alpha=alpha).abstained).sum())
    assert not _not_significantly_above(answered, counts.shape[0], alpha), answered


def test_predict_monte_carlo_check_fails_for_the_unadjusted_level():
    """Control: comparing the boundary pair with alpha itself, without the k (c - k) of
    the union bound, is wrong more often than alpha here, and the check says so."""
    probs, k, level = np.array([0.2, 0.2, 0.2, 0.2, 0.199]), 4, 0.4
    probs = probs / probs.sum()
    counts = _predict_trials(probs, k, seed=101)
    top, _, upper = _boundary_test(counts, k)
    answered = upper <= level
    wrong = int((~_is_a_top_k_set(top[answered], probs)).sum())
    assert not _not_significantly_above(wrong, counts.shape[0], level), wrong


@given(st.integers(0, 2**32 - 1), st.integers(2, 12), st.integers(1, 5),
       st.sampled_from([0.05, 0.001, 1e-6]), st.sampled_from([1e-12, 3.3e-12, 1e-9, 1e-8]))
@example(seed=0, c=2, k=1, alpha=0.05, delta=1e-8)
def test_predict_with_delta_spends_n_delta_of_alpha_and_nothing_else(seed, c, k, alpha, delta):
    """The level with delta is the level of alpha - n delta (n the largest row sum), exact
    in rationals: level k (c - k) + n delta <= alpha; delta = 0 changes nothing."""
    assume(k < c)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 10**5))
    counts = rng.multinomial(n, rng.dirichlet(np.ones(c)), size=20)
    plain = predict(counts, k=k, alpha=alpha)
    zero = predict(counts, k=k, alpha=alpha, delta=0.0)
    for name in ("labels", "abstained", "pvalue"):
        assert getattr(zero, name).tobytes() == getattr(plain, name).tobytes()
    assert zero.level == plain.level and repr(zero) == repr(plain)
    if n * Fraction(delta) >= Fraction(alpha):  # nothing left for the test
        with pytest.raises(ValueError, match="not below alpha"):
            predict(counts, k=k, alpha=alpha, delta=delta)
        return
    res = predict(counts, k=k, alpha=alpha, delta=delta)
    pairs = k * (c - k)
    assert Fraction(res.level) * pairs + n * Fraction(delta) <= Fraction(alpha)
    assert res.level <= plain.level and f"delta={delta:g}" in repr(res)
    assert np.all(res.abstained >= plain.abstained)  # a smaller level never answers more
    np.testing.assert_array_equal(res.labels, plain.labels)


def test_predict_with_delta_abstains_where_the_coupling_leaves_too_little_alpha():
    # P(Bin(1000, 1/2) >= 560), by scipy: between 5e-5 and 1e-3
    pvalue = stats.binom.sf(559, 1000, 0.5)
    assert 5e-5 < pvalue < 1e-3
    counts = [[560, 440]]
    assert not predict(counts, k=1, alpha=0.001).abstained[0]
    res = predict(counts, k=1, alpha=0.001, delta=9.5e-7)  # leaves alpha - 9.5e-4 = 5e-5
    assert res.abstained[0] and Fraction(res.level) + 1000 * Fraction(9.5e-7) <= Fraction(0.001)
    with pytest.raises(ValueError, match=r"delta \(2e-06\) times the largest number of "
                       r"samples in a row \(n = 1000\) is 0.002, not below alpha \(0.001\)"):
        predict(counts, k=1, alpha=0.001, delta=2e-6)
    with pytest.raises(ValueError, match=r"delta must be a total-variation distance"):
        predict(counts, k=1, alpha=0.001, delta=-1e-9)


def test_predict_abstains_on_a_tie_and_answers_a_clear_case():
    res = predict([[500, 500, 0], [900, 50, 50]], k=1, alpha=0.01)
    assert res.abstained.tolist() == [True, False]
    assert res.labels[1].tolist() == [0]
    assert "PredictResult(N=2, k=1" in repr(res)


@pytest.mark.parametrize(("row", "k"), [
    ([5000, 3, 0, 0], 1),  # the (k+1)-th count <= 128: the exact sum of the lower tail
    ([10**6, 200, 5, 0], 1),  # betainc underflows: the Chernoff bound
    ([3 * 10**5, 129, 5, 0], 1),
    ([3000, 2900, 40, 0], 1),  # a p-value of order 0.1: Boost's betainc
    ([400, 300, 290, 10], 2),
])
def test_predict_p_value_bound_is_never_below_the_exact_p_value(row, k):
    """The bound predict compares with its level, against P(Bin(m, 1/2) >= n_(k)) summed
    with mpmath (the lower tail up to n_(k+1), at 60 digits)."""
    counts = np.array([row])
    _, pvalue, upper = _boundary_test(counts, k)
    ordered = sorted(row, reverse=True)
    nk, nk1 = ordered[k - 1], ordered[k]
    m = nk + nk1
    with mpmath.workdps(60):
        exact = mpmath.fsum(mpmath.binomial(m, j) for j in range(nk1 + 1)) / mpmath.mpf(2) ** m
        assert mpmath.mpf(upper[0]) >= exact
        if exact > mpmath.mpf("1e-300"):  # below, the bound may be a Chernoff bound
            assert abs(mpmath.mpf(pvalue[0]) / exact - 1) < 1e-9
    assert not predict(counts, k=k, alpha=0.01).abstained[0] or exact > 1e-6


def test_a_shared_bound_cache_changes_no_value_and_stays_within_its_size():
    """topk-bounds certify reuses the bounds of counts seen in earlier chunks: the radii,
    bounds and p_upper are bit-identical, and the cache never holds more than asked."""
    from topk_bounds.bounds import _cache_bounds

    rng = np.random.default_rng(11)
    counts = rng.multinomial(20_000, rng.dirichlet(np.full(30, 0.2)), size=300)
    labels = counts.argmax(axis=1)
    plain = [certify(counts[i:i + 50], labels[i:i + 50], k=3, sigma=0.5, alpha=0.001) for i in range(0, 300, 50)]
    for limit in (10**6, 100):
        with _cache_bounds(limit) as cache:
            shared = [certify(counts[i:i + 50], labels[i:i + 50], k=3, sigma=0.5, alpha=0.001)
                      for i in range(0, 300, 50)]
            assert 0 < cache.size <= limit
        for a, b in zip(plain, shared):
            for name in ("radius", "p_lower", "p_lower_complement", "p_upper"):
                assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    from topk_bounds.bounds import _CACHE
    assert _CACHE.get() is None  # the context is left as it was found


def test_bounds_of_realistic_counts_settle_in_two_tail_evaluations(monkeypatch):
    """The cost claim of topk_bounds._cp_pair, as a count (not a timing): every bound of
    ImageNet-shaped counts (n = 1e5, a dominant label, a few competitors, a thin tail) is
    proven by the second evaluation of its tail."""
    from topk_bounds import _cp_pair

    calls = []
    original = _cp_pair.tail_pair

    def spy(c_rep, x, n, z):
        calls.append(x.size)
        return original(c_rep, x, n, z)

    monkeypatch.setattr(_cp_pair, "tail_pair", spy)
    rng = np.random.default_rng(2)
    probs = np.full((400, 200), 0.02 / 200)
    probs[:, :6] += rng.dirichlet(np.ones(6), size=400) * rng.uniform(0.05, 0.5, size=(400, 1))
    probs[:, 0] += 1.0 - probs.sum(axis=1)
    counts = rng.multinomial(100_000, probs)
    certify(counts, np.zeros(400, dtype=int), k=5, sigma=0.5, alpha=0.001)
    assert len(calls) == 2 and calls[0] == calls[1] > 0
