"""certify_adaptive: its guarantee by Monte Carlo with known probabilities (and a control
that spends the full alpha at every look, to show the check can fail), the bookkeeping of
samples and looks, the schedule and levels, and the validation of every argument and of
what ``draw`` returns."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from topk_bounds import adaptive, certify, topk_radius
from topk_bounds.adaptive import certify_adaptive, look_levels, look_schedule
from topk_bounds.limits import N_MAX


def multinomial_draw(probs, seed):
    """A seeded ``draw`` with one generator per input, so that an input's counts depend
    only on the sequence of ``m`` it was asked for (not on the other rows of a call)."""
    probs = np.atleast_2d(np.asarray(probs, dtype=float))
    gens = {}

    def draw(rows, m):
        out = []
        for i in rows.tolist():
            g = gens.setdefault(i, np.random.default_rng([seed, i]))
            out.append(g.multinomial(m, probs[i % probs.shape[0]]))
        return np.array(out)

    return draw


def batch_draw(probs, seed):
    """A fast seeded ``draw`` for many inputs with the same probabilities."""
    rng = np.random.default_rng(seed)
    probs = np.asarray(probs, dtype=float)

    def draw(rows, m):
        return rng.multinomial(m, np.broadcast_to(probs, (rows.size, probs.size)))

    return draw


def p_above(failures: int, trials: int, alpha: float) -> float:
    """Exact one-sided binomial p-value of ``failures`` under a failure rate of alpha."""
    return stats.binomtest(failures, trials, alpha, alternative="greater").pvalue


# --------------------------------------------------------------------------------------
# Monte Carlo: the guarantee, with true radii just below the target
# --------------------------------------------------------------------------------------
def probs_with_true_radius(c: int, sigma: float, radius: float, rest: float) -> np.ndarray:
    """Label 0 and one competitor that takes what the c - 2 others (``rest`` each) leave;
    label 0's probability solved (brentq to 1e-15) so that the exact top-1 radius is
    ``radius``. One competitor holding almost all the rest makes its upper bound and the
    label's lower bound fail together, so the false-certificate rate is as large as the
    bounds allow: the hardest case for the levels."""

    def build(p_l):
        return np.concatenate([[p_l, 1.0 - p_l - (c - 2) * rest], np.full(c - 2, rest)])

    def gap(p_l):
        return topk_radius(p_l, build(p_l)[1:], 1, sigma) - radius

    return build(optimize.brentq(gap, 0.5, 0.99, xtol=1e-15, rtol=1e-15))


MC = dict(alpha=0.05, sigma=0.5, radius=0.25, max_n=10_000, trials=2000)
MC_CONFIGS = [(2, 0.0), (10, 1e-4), (1000, 1e-6)]  # c, probability of each minor label


def _false_certificates(probs, seed, *, futility, k=1, control=False, monkeypatch=None):
    if control:  # the full alpha at every look: invalid, and the check must notice
        monkeypatch.setattr(adaptive, "look_levels", lambda alpha, n_looks, **_: np.full(n_looks, alpha))
    try:
        res = certify_adaptive(batch_draw(probs, seed), np.zeros(MC["trials"], dtype=np.int64),
                               k=k, sigma=MC["sigma"], alpha=MC["alpha"], radius=MC["radius"],
                               max_n=MC["max_n"], futility=futility)
    finally:
        if control:
            monkeypatch.undo()
    return int(res.certified.sum()), res


@pytest.mark.parametrize(("c", "rest"), MC_CONFIGS)
@pytest.mark.parametrize("fraction", [0.99, 0.999])
def test_false_certificate_rate_is_at_most_alpha_and_full_alpha_per_look_exceeds_it(
        c, rest, fraction, monkeypatch):
    probs = probs_with_true_radius(c, MC["sigma"], fraction * MC["radius"], rest)
    assert topk_radius(probs[0], probs[1:], 1, MC["sigma"]) < MC["radius"]
    seed = [7, c, int(fraction * 1000)]
    trials, alpha = MC["trials"], MC["alpha"]
    for futility in (adaptive.FUTILITY, None):  # any futility rule keeps the guarantee
        false, res = _false_certificates(probs, seed, futility=futility)
        assert p_above(false, trials, alpha) > 1e-3, (futility, false, trials)
        assert res.levels.sum() <= alpha
    # the control reuses the same draws (same seed): only the levels differ
    control, res = _false_certificates(probs, seed, futility=None, control=True, monkeypatch=monkeypatch)
    assert res.levels.sum() > 5 * alpha  # the patch took effect
    assert p_above(control, trials, alpha) < 1e-3, (control, trials)


def test_false_certificate_rate_is_at_most_alpha_for_top_3_among_1000_labels():
    # three competitors of 0.12 and 997 minor labels; label 0 solved for 0.999 r
    sigma, target, c, k = 0.5, 0.25, 1000, 3
    comp = [0.12, 0.12, 0.12]

    def build(p_l):
        return np.concatenate([[p_l], comp, np.full(c - 4, (1 - p_l - sum(comp)) / (c - 4))])

    p_l = optimize.brentq(lambda p: topk_radius(p, build(p)[1:], k, sigma) - 0.999 * target,
                          0.2, 0.63, xtol=1e-15, rtol=1e-15)
    probs = build(p_l)
    false, res = _false_certificates(probs, [11, c, k], futility=adaptive.FUTILITY, k=k)
    assert p_above(false, MC["trials"], MC["alpha"]) > 1e-3, false
    # power: with a slightly smaller target most trials are certified
    easy = certify_adaptive(batch_draw(probs, [12, c, k]), np.zeros(200, dtype=np.int64), k=k,
                            sigma=sigma, alpha=MC["alpha"], radius=0.8 * target, max_n=MC["max_n"])
    assert easy.certified.mean() > 0.5


# --------------------------------------------------------------------------------------
# bookkeeping
# --------------------------------------------------------------------------------------
PROBS = np.array([[0.999] + [0.001 / 9] * 9, [0.8, 0.15] + [0.05 / 8] * 8,
                  [0.62, 0.3] + [0.08 / 8] * 8, [0.3, 0.6] + [0.1 / 8] * 8,
                  [0.1] * 10, [0.55, 0.4] + [0.05 / 8] * 8])


def _recording(draw):
    calls = []

    def wrapped(rows, m):
        calls.append((rows.copy(), m))
        return draw(rows, m)

    return wrapped, calls


def test_n_is_exactly_the_sum_of_m_over_the_calls_that_included_each_input():
    labels = np.zeros(60, dtype=np.int64)
    draw, calls = _recording(multinomial_draw(PROBS, 3))
    res = certify_adaptive(draw, labels, k=1, sigma=0.25, alpha=0.01, radius=0.2, max_n=20_000)
    expected = np.zeros(labels.size, dtype=np.int64)
    for rows, m in calls:
        expected[rows] += m
    np.testing.assert_array_equal(res.n, expected)
    assert res.n.max() <= 20_000
    np.testing.assert_array_equal(res.counts.sum(axis=1), res.n)
    # one call per look, with every undecided input in ascending order
    assert len(calls) == res.looks.max()
    for j, (rows, m) in enumerate(calls):
        np.testing.assert_array_equal(rows, np.flatnonzero(res.looks > j))
        assert m == res.schedule[j] - (res.schedule[j - 1] if j else 0)
    np.testing.assert_array_equal(res.n, res.schedule[res.looks - 1])


def test_every_call_but_the_last_asks_for_whole_blocks_of_128():
    draw, calls = _recording(multinomial_draw(PROBS[[4]], 5))  # uniform: runs to the end
    res = certify_adaptive(draw, [0], k=1, sigma=0.25, alpha=0.01, radius=0.2, max_n=100_000,
                           futility=None)
    assert res.decision.tolist() == ["max_n"] and res.n.tolist() == [100_000]
    assert all(m % 128 == 0 for _, m in calls[:-1])
    assert sum(m for _, m in calls) == 100_000


def test_decisions_radii_and_sample_counts_are_consistent():
    labels = np.zeros(120, dtype=np.int64)
    res = certify_adaptive(multinomial_draw(PROBS, 4), labels, k=1, sigma=0.25, alpha=0.01,
                           radius=0.2, max_n=20_000)
    cert = res.decision == "certified"
    np.testing.assert_array_equal(res.certified, cert)
    assert np.all(res.radius[cert] >= 0.2) and np.all(res.radius[~cert] < 0.2)
    assert np.all(res.n[res.decision == "futile"] < 20_000)
    assert np.all(res.n[res.decision == "max_n"] == 20_000)
    assert set(res.decision.tolist()) <= {"certified", "futile", "max_n"}
    assert len(res) == 120
    text = repr(res)
    assert text.startswith("AdaptiveResult(N=120, k=1, sigma=0.25, alpha=0.01, target=0.2,")
    assert f"certified={int(cert.sum())}/120" in text and "max_n=20000" in text


def test_a_seeded_draw_gives_identical_results():
    runs = [certify_adaptive(multinomial_draw(PROBS, 9), np.zeros(30, dtype=np.int64), k=2,
                             sigma=0.25, alpha=0.001, radius=0.3, max_n=50_000) for _ in range(2)]
    for name in ("certified", "n", "counts", "radius", "looks", "decision", "levels", "schedule"):
        np.testing.assert_array_equal(getattr(runs[0], name), getattr(runs[1], name))


def test_futility_never_creates_a_certificate():
    # per-input streams: each input sees the same counts at each look with or without
    # futility stops, so the certified set with them is a subset of the one without
    labels = np.zeros(90, dtype=np.int64)
    kw = dict(k=1, sigma=0.25, alpha=0.01, radius=0.25, max_n=30_000)
    with_stop = certify_adaptive(multinomial_draw(PROBS, 21), labels, futility=0.2, **kw)
    without = certify_adaptive(multinomial_draw(PROBS, 21), labels, futility=None, **kw)
    assert np.all(without.certified[with_stop.certified])
    assert (with_stop.decision == "futile").any()
    assert with_stop.n.sum() < without.n.sum()


def test_a_single_look_is_fixed_n_certify_at_the_full_alpha():
    labels = np.array([0, 0, 1, 0, 0, 0])
    res = certify_adaptive(multinomial_draw(PROBS, 13), labels, k=1, sigma=0.25, alpha=0.001,
                           radius=0.1, max_n=2000, first_n=2000)
    assert res.schedule.tolist() == [2000] and res.levels.tolist() == [0.001]
    fixed = certify(res.counts, labels, k=1, sigma=0.25, alpha=0.001, method="ranked")
    np.testing.assert_array_equal(res.radius, fixed.radius)
    np.testing.assert_array_equal(res.certified, fixed.radius >= 0.1)


def test_looks_that_cannot_certify_even_a_perfect_row_spend_no_alpha():
    # at sigma = 0.25, r = 0.75 needs about 8,000 unanimous votes at these levels
    res = certify_adaptive(multinomial_draw(PROBS[[0]], 1), [0], k=1, sigma=0.25, alpha=0.001,
                           radius=0.75, max_n=100_000, futility=None)
    zero = res.levels == 0
    assert zero[0] and not zero[-1] and zero.sum() < zero.size - 1
    assert res.levels.sum() <= 0.001
    best = np.zeros((res.schedule.size, 10), dtype=np.int64)
    best[:, 0] = res.schedule
    fine = certify(best[zero], 0, k=1, sigma=0.25, alpha=0.001 / 2 / (res.schedule.size - 1),
                   method="ranked")
    assert np.all(fine.radius < 0.75)  # not even at the smallest share of alpha
    # nor the best-placed of them at the share it would get if it joined the others
    j = int(np.flatnonzero(zero).max())
    share = 0.0005 / (np.sum(~zero[:-1]) + 1)
    assert certify(best[j:j + 1], 0, k=1, sigma=0.25, alpha=share, method="ranked").radius[0] < 0.75
    assert res.n[0] > res.schedule[int(np.flatnonzero(zero).max())]


def test_k_covering_every_label_is_certified_at_the_first_look():
    res = certify_adaptive(multinomial_draw(PROBS, 2), np.arange(6) % 10, k=10, sigma=0.25,
                           alpha=0.01, radius=5.0, max_n=10_000)
    assert res.certified.all() and np.all(res.n == 128) and np.all(np.isinf(res.radius))


@pytest.mark.parametrize("method", ["simuem", "binocp", "ranked"])
def test_every_method_certifies_an_easy_input_and_rejects_a_hopeless_one(method):
    res = certify_adaptive(multinomial_draw(PROBS[[0, 4]], 6), [0, 0], k=1, sigma=0.25,
                           alpha=0.001, radius=0.25, max_n=100_000, method=method)
    assert res.decision.tolist() == ["certified", "futile"]
    assert res.method == method and res.n.max() < 1000


def test_progress_reports_every_look():
    seen = []
    res = certify_adaptive(multinomial_draw(PROBS, 8), np.zeros(12, dtype=np.int64), k=1,
                           sigma=0.25, alpha=0.01, radius=0.2, max_n=20_000,
                           progress=lambda **kw: seen.append(kw))
    assert [s["look"] for s in seen] == list(range(1, res.looks.max() + 1))
    assert seen[0]["drawn"] == 12 and seen[-1]["undecided"] == 0
    assert [s["n"] for s in seen] == res.schedule[:len(seen)].tolist()
    for before, after in zip(seen, seen[1:]):
        assert after["drawn"] == before["undecided"]


# --------------------------------------------------------------------------------------
# schedule and levels
# --------------------------------------------------------------------------------------
@given(st.integers(1, 10**12), st.integers(1, 5000), st.floats(1.05, 4.0), st.sampled_from([1, 64, 128]))
def test_schedule_is_increasing_block_aligned_and_ends_at_max_n(max_n, first_n, growth, block):
    if first_n > max_n:
        first_n = max_n
    s = look_schedule(max_n, first_n=first_n, growth=growth, multiple_of=block)
    assert s[-1] == max_n and np.all(np.diff(s) > 0)
    assert np.all(s[:-1] % block == 0)
    if s.size > 1:
        assert s[0] == -(-first_n // block) * block
    assert s.size < 600


@settings(max_examples=200)
@given(st.floats(1e-12, 0.999), st.integers(1, 400), st.floats(0.01, 1.0),
       st.lists(st.booleans(), min_size=400, max_size=400))
def test_levels_never_sum_above_alpha_in_exact_arithmetic(alpha, n_looks, share, flags):
    levels = look_levels(alpha, n_looks, final_share=share, useful=flags[:n_looks])
    assert sum(Fraction(float(x)) for x in levels) <= Fraction(alpha)
    assert np.all(levels >= 0) and levels[-1] > 0
    assert np.all(levels[:-1][~np.array(flags[:n_looks - 1], dtype=bool)] == 0)
    if n_looks > 1 and any(flags[:n_looks - 1]):
        assert levels[-1] == pytest.approx(share * alpha, rel=1e-12)
    else:
        assert levels[-1] == pytest.approx(alpha, rel=1e-12)


def test_every_look_certifies_with_the_samplers_delta():
    # each input's radius is certify(..., delta=delta) of its counts at the level of the
    # look where it stopped; delta = 0 is the default bit for bit
    labels = np.zeros(60, dtype=np.int64)
    kw = dict(k=1, sigma=0.25, alpha=0.01, radius=0.2, max_n=20_000)
    plain = certify_adaptive(multinomial_draw(PROBS, 17), labels, **kw)
    zero = certify_adaptive(multinomial_draw(PROBS, 17), labels, delta=0.0, **kw)
    for name in ("n", "counts", "radius", "decision", "levels"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(zero, name))
    delta = 0.02
    res = certify_adaptive(multinomial_draw(PROBS, 17), labels, delta=delta, **kw)
    assert res.delta == delta and "delta=0.02" in repr(res) and "delta" not in repr(plain)
    stopped = res.levels[res.looks - 1]
    for i in np.flatnonzero(stopped > 0):
        expected = certify(res.counts[i:i + 1], labels[i:i + 1], k=1, sigma=0.25,
                           alpha=float(stopped[i]), method="ranked", delta=delta).radius[0]
        assert res.radius[i] == expected
    # the same streams (per-input generators): at every look an input's counts are the
    # same with and without delta, and delta only lowers radii, so it never certifies
    # an input that delta = 0 leaves uncertified, and needs at least as many samples
    # for those it certifies
    assert np.all(plain.certified[res.certified])
    assert np.all(res.n[res.certified] >= plain.n[res.certified])
    assert res.certified.sum() < plain.certified.sum() or res.n.sum() > plain.n.sum()


def test_a_delta_that_no_row_can_overcome_spends_alpha_on_the_final_look_only():
    # delta = 0.5: the label's lower bound is at most 1/2, its competitor's upper bound
    # at least 1/2, so no look can certify and every earlier look gets level 0
    res = certify_adaptive(multinomial_draw(PROBS[[0]], 1), [0], k=1, sigma=0.25,
                           alpha=0.001, radius=0.25, max_n=5000, delta=0.5, futility=None)
    assert res.levels[:-1].tolist() == [0.0] * (res.levels.size - 1)
    assert not res.certified[0] and res.decision.tolist() == ["max_n"]


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _ok_draw(rows, m):
    out = np.zeros((rows.size, 3), dtype=np.int64)
    out[:, 0] = m
    return out


GOOD = dict(k=1, sigma=0.25, alpha=0.001, radius=0.25, max_n=1000)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(labels=[[0, 1]]), "labels must be a non-empty 1-D integer array"),
        (dict(labels=[]), "labels must be a non-empty 1-D integer array"),
        (dict(labels=[0.5]), "labels must be integers, got dtype float64"),
        (dict(labels=[0, -1]), "labels must be >= 0, got labels[1] = -1"),
        (dict(labels=[0, 3]), "labels must lie in 0..2 (draw returned 3 labels), got labels[1] = 3"),
        (dict(k=0), "k must be an integer >= 1, got 0"),
        (dict(sigma=-1.0), "sigma must be a finite number > 0, got -1.0"),
        (dict(alpha=1.0), "alpha must be a probability in (0, 1), got 1.0"),
        (dict(radius=0.0), "radius must be a finite number > 0, got 0.0"),
        (dict(radius=-0.5), "radius must be a finite number > 0, got -0.5"),
        (dict(radius=float("inf")), "radius must be a finite number > 0, got inf"),
        (dict(radius="wide"), "radius must be a finite number > 0, got 'wide'"),
        (dict(max_n=100), "max_n must be at least the first look first_n = 128, got max_n = 100"),
        (dict(max_n=0), "max_n must be an integer in 1..1,000,000,000,000, got 0"),
        (dict(max_n=N_MAX + 1), "max_n must be an integer in 1..1,000,000,000,000, got 1000000000001"),
        (dict(max_n=1000.0), "max_n must be an integer in 1..1,000,000,000,000, got 1000.0"),
        (dict(first_n=0), "first_n must be an integer in 1..1,000,000,000,000, got 0"),
        (dict(growth=1.0), "growth must be a finite number > 1, got 1.0"),
        (dict(growth=float("nan")), "growth must be a finite number > 1, got nan"),
        (dict(final_share=0.0), "final_share must be a number in (0, 1], got 0.0"),
        (dict(final_share=1.5), "final_share must be a number in (0, 1], got 1.5"),
        (dict(futility=0.0), "futility must be None or a probability in (0, 1), got 0.0"),
        (dict(futility=1.0), "futility must be None or a probability in (0, 1), got 1.0"),
        (dict(multiple_of=0), "multiple_of must be an integer in 1..1,000,000,000,000, got 0"),
        (dict(method="cp"), "method must be one of 'simuem', 'binocp' or 'ranked', got 'cp'"),
        (dict(draw=42), "draw must be a callable draw(rows, m), got 42"),
        (dict(progress="bar"), "progress must be None or a callable, got 'bar'"),
        (dict(delta=1.0), "delta must be a total-variation distance in [0, 1), got 1.0"),
        (dict(delta=-1e-9), "delta must be a total-variation distance in [0, 1), got -1e-09"),
    ],
)
def test_invalid_arguments_raise_value_errors_that_name_them(change, message):
    args = dict(GOOD, draw=_ok_draw, labels=[0, 1])
    args.update(change)
    draw, labels = args.pop("draw"), args.pop("labels")
    with pytest.raises(ValueError) as err:
        certify_adaptive(draw, labels, **args)
    assert message in str(err.value)


def _bad_draw(kind):
    state = {"calls": 0}

    def draw(rows, m):
        state["calls"] += 1
        out = _ok_draw(rows, m)
        if kind == "rows":
            return out[:-1]
        if kind == "ragged":
            return [[m, 0, 0], [m, 0]]
        if kind == "flat":
            return out[:, 0]
        if kind == "one label":
            return out[:, :1]
        if kind == "c changes" and state["calls"] == 2:
            return np.zeros((rows.size, 4), dtype=np.int64) + np.array([m, 0, 0, 0])
        if kind == "negative":
            out[-1, 1], out[-1, 0] = -1, m + 1
        if kind == "sum":
            out[0, 0] = m - 1
        if kind == "float":
            return out + 0.5
        if kind == "bool":
            return out > 0
        if kind == "too many":
            out[0, 0] = m + 5
            out[0, 1] = 0
        return out

    return draw


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("rows", "draw(rows, m) must return counts of shape (2, c) with c >= 2 for 2 rows, got shape (1, 3)"),
        ("ragged", "draw(rows, m) must return a rectangular integer array of shape (2, c)"),
        ("flat", "draw(rows, m) must return counts of shape (2, c) with c >= 2 for 2 rows, got shape (2,)"),
        ("one label", "got shape (2, 1)"),
        ("c changes", "draw(rows, m) must return counts of shape (2, 3) for 2 rows, got shape (2, 4)"),
        ("negative", "draw(rows, m) returned a negative count for input 1: counts[1, 1] = -1"),
        ("sum", "draw(rows, m) must return rows that sum to m = 128, the row of input 0 sums to 127"),
        ("float", "draw(rows, m) must return integer counts, got non-integer values"),
        ("bool", "draw(rows, m) must return integer counts, got dtype bool"),
        ("too many", "draw(rows, m) returned counts[0, 0] = 133 for input 0, more than m = 128"),
    ],
)
def test_bad_draw_results_raise_value_errors_that_say_what_is_wrong(kind, message):
    with pytest.raises(ValueError) as err:
        certify_adaptive(_bad_draw(kind), [0, 0], k=1, sigma=0.25, alpha=0.001, radius=5.0,
                         max_n=1000, futility=None)
    assert message in str(err.value)


def test_integer_valued_float_counts_are_accepted():
    res = certify_adaptive(lambda rows, m: _ok_draw(rows, m).astype(float), [0], **GOOD)
    assert res.certified.tolist() == [True] and res.counts.dtype == np.int64


def test_the_whole_alpha_on_the_final_look_certifies_only_there():
    res = certify_adaptive(multinomial_draw(PROBS, 17), np.zeros(24, dtype=np.int64), k=1,
                           sigma=0.25, alpha=0.001, radius=0.25, max_n=5000, final_share=1.0)
    assert res.levels[:-1].tolist() == [0.0] * (res.schedule.size - 1)
    assert res.levels[-1] == 0.001
    assert np.all(res.n[res.certified] == 5000) and res.certified.any()
    assert np.all(np.isneginf(res.radius[res.decision == "futile"]))


def test_importing_and_running_adaptive_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from topk_bounds.adaptive import certify_adaptive\n"
            "certify_adaptive(lambda rows, m: np.array([[m, 0]] * len(rows)), [0], k=1,"
            " sigma=0.25, alpha=0.01, radius=0.1, max_n=1000)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
