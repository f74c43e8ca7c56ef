"""Adaptive certification at a target radius: sample each input only until it is decided.

The fixed-n protocol of Jia et al. (ICLR 2020) draws the same n (typically 100,000) noisy
predictions for every input. Most inputs are decided after a few hundred: a label that
wins every vote is certified, a label that loses most of them is hopeless. Only inputs
whose true radius lies near the target need the full budget. :func:`certify_adaptive`
looks at the counts on a schedule of sample sizes fixed in advance, certifies at each
look with bounds at a share of alpha (the shares sum to at most alpha), and stops an
input as soon as it is certified or can no longer be certified within ``max_n``.

This module uses numpy and scipy only; a model enters through the ``draw`` callable.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np
from scipy import special

from .certify import (_bounds_covered, _check_alpha, _check_delta, _check_method,
                      _top_other_counts, certify)
from .limits import N_MAX
from .radius import _check_k, _check_real, _check_sigma, radius_from_bounds

__all__ = ["certify_adaptive", "AdaptiveResult", "look_schedule", "look_levels"]

#: The default ``multiple_of``: the shortest noise block of :mod:`sampler.streams`
#: (``BLOCK_MIN``; not imported, since the sampler needs torch). :func:`sampler.sample_adaptive`
#: passes its inputs' own block size (a power of two from 128 to 4096), so that every ``draw``
#: call asks for whole blocks and an adaptive run's samples are a prefix of the fixed-n stream.
BLOCK = 128

#: Defaults of the schedule, the level split and the futility rule (see
#: ``benchmarks/bench_adaptive.py`` for how they were chosen and how sensitive they are).
FIRST_N = 128
GROWTH = 1.5
FINAL_SHARE = 0.5
FUTILITY = 0.05

#: The decision of each input, as stored in :attr:`AdaptiveResult.decision`.
CERTIFIED, FUTILE, EXHAUSTED = "certified", "futile", "max_n"


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_positive_int(name: str, value, *, upper: int | None = None) -> int:
    if not _is_int(value) or value < 1 or (upper is not None and value > upper):
        allowed = "an integer >= 1" if upper is None else f"an integer in 1..{upper:,}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def _check_target_labels(labels) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D integer array (one label per input), "
                         f"got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    if np.any(arr < 0):
        i = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"labels must be >= 0, got labels[{i}] = {arr[i]}")
    return arr.astype(np.int64)


def _check_schedule_args(max_n, first_n, growth, multiple_of) -> tuple[int, int, float, int]:
    max_n = _check_positive_int("max_n", max_n, upper=N_MAX)
    first_n = _check_positive_int("first_n", first_n, upper=N_MAX)
    if max_n < first_n:
        raise ValueError(f"max_n must be at least the first look first_n = {first_n}, got max_n = {max_n}")
    growth = _check_real("growth", growth, "a finite number > 1", lambda g: g > 1.0)
    multiple_of = _check_positive_int("multiple_of", multiple_of, upper=N_MAX)
    return max_n, first_n, growth, multiple_of


# --------------------------------------------------------------------------------------
# the schedule and the levels
# --------------------------------------------------------------------------------------
def look_schedule(max_n: int, *, first_n: int = FIRST_N, growth: float = GROWTH,
                  multiple_of: int = BLOCK) -> np.ndarray:
    """The cumulative sample sizes at which :func:`certify_adaptive` looks at the counts.

    A geometric sequence ``first_n * growth**j``, each term rounded up to a multiple of
    ``multiple_of`` (repeats dropped), then ``max_n`` as the final look. A look closer
    than a factor ``sqrt(growth)`` below ``max_n`` is merged into the final one (the
    first look is always kept). The schedule depends on nothing but these arguments,
    which is what makes the union bound over looks valid.

    Examples
    --------
    >>> look_schedule(100_000).tolist()[:8]
    [128, 256, 384, 512, 768, 1024, 1536, 2304]
    >>> look_schedule(100_000)[-3:].tolist(), len(look_schedule(100_000))
    ([37376, 56064, 100000], 17)
    >>> look_schedule(1000, first_n=1000).tolist()
    [1000]
    """
    max_n, first_n, growth, multiple_of = _check_schedule_args(max_n, first_n, growth, multiple_of)
    looks: list[int] = []
    ideal = float(first_n)
    while True:
        n = -(-math.ceil(ideal) // multiple_of) * multiple_of  # ceil to a multiple
        if n >= max_n:
            break
        if not looks or n > looks[-1]:
            looks.append(n)
        ideal *= growth
    while len(looks) > 1 and looks[-1] * math.sqrt(growth) > max_n:
        looks.pop()
    looks.append(max_n)
    return np.array(looks, dtype=np.int64)


def look_levels(alpha: float, n_looks: int, *, final_share: float = FINAL_SHARE,
                useful=None) -> np.ndarray:
    """The failure probability spent at each look: their sum never exceeds ``alpha``.

    The final look gets ``final_share * alpha``; the earlier looks marked ``useful``
    (all, by default) share the rest equally, and the others get 0. When no earlier
    look is useful (or there is a single look), the final look gets all of ``alpha``.
    The sum is checked in exact rational arithmetic (and the levels stepped down if
    float rounding pushed it above).

    Examples
    --------
    >>> look_levels(0.001, 3).tolist()
    [0.00025, 0.00025, 0.0005]
    >>> look_levels(0.001, 4, useful=[False, True, True, True]).tolist()
    [0.0, 0.00025, 0.00025, 0.0005]
    >>> look_levels(0.05, 1).tolist()
    [0.05]
    """
    alpha = _check_alpha(alpha)
    n_looks = _check_positive_int("n_looks", n_looks)
    final_share = _check_real("final_share", final_share, "a number in (0, 1]",
                                lambda s: 0.0 < s <= 1.0)
    mask = np.ones(n_looks, dtype=bool) if useful is None else np.array(useful, dtype=bool)
    if mask.shape != (n_looks,):
        raise ValueError(f"useful must hold one flag per look ({n_looks}), got shape {mask.shape}")
    mask[-1] = True
    earlier = int(mask[:-1].sum())
    levels = np.zeros(n_looks)
    if earlier == 0:
        levels[-1] = alpha
    else:
        levels[:-1][mask[:-1]] = (1.0 - final_share) * alpha / earlier
        levels[-1] = final_share * alpha
    while sum(Fraction(float(x)) for x in levels) > Fraction(alpha):
        levels = np.nextafter(levels, 0.0)
    return levels


def _can_certify(schedule: np.ndarray, n_classes: int, *, k, sigma, target, level, method,
                 delta=0.0) -> np.ndarray:
    """Whether any counts at all could be certified at each look, at ``level``.

    The radius grows with the label's count and shrinks as any other count grows
    (the bounds are monotone in the counts, the radius in the bounds), so the best
    row of n samples is n votes for the label and none for the others: a look where
    even that row falls short of the target can certify nothing, and needs no level.
    """
    best = np.zeros((schedule.size, n_classes), dtype=np.int64)
    best[:, 0] = schedule
    return certify(best, 0, k=k, sigma=sigma, alpha=level, method=method,
                   delta=delta).radius >= target


def _spend_on_useful_looks(levels, schedule, n_classes, *, alpha, final_share, k, sigma,
                           target, method, delta=0.0) -> np.ndarray:
    """The levels of :func:`look_levels` with no alpha on looks that cannot certify.

    First every earlier look is tested at the smallest share it could get (all earlier
    looks useful); then the largest look still useless is tested at the share it would
    get if it joined, and so on while that succeeds (the share only grows as looks drop
    out, so a look found useful stays useful). Depends on the schedule, c, k, sigma, the
    target, the method and delta only: it is fixed before any count is looked at.
    """
    smallest = float(levels[0])
    if schedule.size == 1 or smallest <= 0.0:
        return levels
    useful = _can_certify(schedule, n_classes, k=k, sigma=sigma, target=target,
                          level=smallest, method=method, delta=delta)
    useful[-1] = True
    while not useful[:-1].all():
        j = int(np.flatnonzero(~useful[:-1]).max())  # the best-placed useless look
        share = float(look_levels(alpha, schedule.size, final_share=final_share,
                                  useful=useful | (np.arange(schedule.size) == j))[j])
        if not _can_certify(schedule[j:j + 1], n_classes, k=k, sigma=sigma, target=target,
                            level=share, method=method, delta=delta)[0]:
            break
        useful[j] = True
    return look_levels(alpha, schedule.size, final_share=final_share, useful=useful)


# --------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class AdaptiveResult:
    """What :func:`certify_adaptive` decided for each of N inputs.

    Attributes
    ----------
    certified : ndarray of bool, shape (N,)
        Whether the input's label is certified in the top k at the target radius.
    n : ndarray of int64, shape (N,)
        Samples drawn for each input: exactly the sum of ``m`` over the ``draw`` calls
        that included it, never more than ``max_n``.
    counts : ndarray of int64, shape (N, c)
        The accumulated counts (row i sums to ``n[i]``). They were collected with
        optional stopping: certifying them again at a fixed-n level voids its guarantee.
    radius : ndarray of float64, shape (N,)
        The certified radius at the look where the input stopped, at that look's level
        (``>= target`` exactly where ``certified``; ``-inf`` for a look with level 0).
    looks : ndarray of int64, shape (N,)
        How many looks each input took.
    decision : ndarray of str, shape (N,)
        ``"certified"``, ``"futile"`` (stopped early: it could not be certified within
        ``max_n``) or ``"max_n"`` (the full budget was drawn without a certificate).
    schedule, levels : ndarray, shape (L,)
        The cumulative sample sizes of the looks and the level spent at each.
    labels, k, sigma, alpha, target, method, max_n, futility, delta
        The arguments of :func:`certify_adaptive` (``target`` is its ``radius``).
    """

    certified: np.ndarray
    n: np.ndarray
    counts: np.ndarray
    radius: np.ndarray
    looks: np.ndarray
    decision: np.ndarray
    schedule: np.ndarray
    levels: np.ndarray
    labels: np.ndarray
    k: int
    sigma: float
    alpha: float
    target: float
    method: str
    max_n: int
    futility: float | None = field(default=None)
    delta: float = 0.0

    def __len__(self) -> int:
        return self.n.shape[0]

    def __repr__(self) -> str:
        n_in = len(self)
        delta = f", delta={self.delta:g}" if self.delta else ""
        return (f"AdaptiveResult(N={n_in}, k={self.k}, sigma={self.sigma:g}, alpha={self.alpha:g}, "
                f"target={self.target:g}, method={self.method!r}{delta}, "
                f"certified={int(self.certified.sum())}/{n_in}, "
                f"mean n={self.n.mean():.6g} of max_n={self.max_n}, "
                f"looks={int(self.looks.min())}..{int(self.looks.max())} of {self.schedule.size})")


# --------------------------------------------------------------------------------------
# draw: call it and check what comes back
# --------------------------------------------------------------------------------------
def _checked_draw(draw, rows: np.ndarray, m: int, n_classes: int | None) -> np.ndarray:
    try:
        out = np.asarray(draw(rows.copy(), m))
    except ValueError:  # a ragged list of rows
        raise ValueError(f"draw(rows, m) must return a rectangular integer array of shape "
                         f"({rows.size}, c)") from None
    expect = f"({rows.size}, {n_classes})" if n_classes is not None else f"({rows.size}, c) with c >= 2"
    if out.ndim != 2 or out.shape[0] != rows.size or (
            out.shape[1] != n_classes if n_classes is not None else out.shape[1] < 2):
        raise ValueError(f"draw(rows, m) must return counts of shape {expect} for {rows.size} rows, "
                         f"got shape {out.shape}")
    if out.dtype.kind == "f":
        if not (np.all(np.isfinite(out)) and np.all(out == np.round(out))):
            raise ValueError("draw(rows, m) must return integer counts, got non-integer values")
    elif out.dtype.kind not in "iu":
        raise ValueError(f"draw(rows, m) must return integer counts, got dtype {out.dtype}")
    if out.dtype.kind != "u" and np.any(out < 0):
        i, j = np.argwhere(out < 0)[0]
        raise ValueError(f"draw(rows, m) returned a negative count for input {rows[i]}: "
                         f"counts[{i}, {j}] = {out[i, j]}")
    if np.any(out > m):
        i, j = np.argwhere(out > m)[0]
        raise ValueError(f"draw(rows, m) returned counts[{i}, {j}] = {out[i, j]} for input {rows[i]}, "
                         f"more than m = {m}")
    out = out.astype(np.int64)
    sums = out.sum(axis=1)
    if np.any(sums != m):
        i = int(np.flatnonzero(sums != m)[0])
        raise ValueError(f"draw(rows, m) must return rows that sum to m = {m}, "
                         f"the row of input {rows[i]} sums to {sums[i]}")
    return out


# --------------------------------------------------------------------------------------
# futility: could the input still be certified at the final look?
# --------------------------------------------------------------------------------------
def _cp_lower(x, n, beta):
    """Clopper-Pearson lower bound and its complement, for real-valued x in [0, n]."""
    x = np.clip(x, 0.0, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, special.betaincinv(np.maximum(x, 1e-300), n - x + 1.0, beta), 0.0)
        comp = np.where(x > 0, special.betaincinv(n - x + 1.0, np.maximum(x, 1e-300), 1.0 - beta), 1.0)
    return low, comp


def _cp_upper(x, n, beta):
    """Clopper-Pearson upper bound for real-valued x in [0, n]."""
    x = np.clip(x, 0.0, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x < n, special.betaincinv(x + 1.0, np.maximum(n - x, 1e-300), 1.0 - beta), 1.0)


def _projected_radius(counts, labels, n, *, k, sigma, max_n, final_level, method, gamma,
                      delta=0.0):
    """The radius the final look would certify if the proportions were optimistic.

    The label's proportion is taken at its upper Clopper-Pearson bound at level
    ``gamma``, each of the k strongest competitors' at its lower bound; these are
    projected to ``max_n`` samples and bounded at the final look's level (and widened by
    the sampler's ``delta``, as the final look's bounds would be). Only a stop decision
    rests on this value, and stopping never certifies, so no rounding matters.
    """
    n_classes = counts.shape[1]
    beta_f = final_level / _bounds_covered(method, k, n_classes)
    shrink = math.sqrt(1.0 - n / max_n)
    x_l = counts[np.arange(counts.shape[0]), labels].astype(float)
    p_l = x_l / n + (_cp_upper(x_l, float(n), gamma) - x_l / n) * shrink
    a, q_a = _cp_lower(p_l * max_n, float(max_n), beta_f)
    if method == "binocp":
        b_top = np.repeat(q_a[:, None], k, axis=1)
    else:
        top = _top_other_counts(counts, labels, k).astype(float)
        low = top / n - (top / n - _cp_lower(top, float(n), gamma)[0]) * shrink
        b_top = _cp_upper(low * max_n, float(max_n), beta_f)
    if delta:
        a, q_a = np.maximum(a - delta, 0.0), np.minimum(q_a + delta, 1.0)
        b_top = np.minimum(b_top + delta, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_a = np.where(a > 0.5, -special.ndtri(q_a), special.ndtri(a))
        return radius_from_bounds(z_a, q_a, b_top, sigma)


# --------------------------------------------------------------------------------------
# certify_adaptive
# --------------------------------------------------------------------------------------
def certify_adaptive(draw: Callable[[np.ndarray, int], np.ndarray], labels, *, k: int,
                     sigma: float, alpha: float, radius: float, max_n: int,
                     method: str = "ranked", first_n: int = FIRST_N, growth: float = GROWTH,
                     final_share: float = FINAL_SHARE, futility: float | None = FUTILITY,
                     multiple_of: int = BLOCK, delta: float = 0.0,
                     progress: Callable[..., None] | None = None) -> AdaptiveResult:
    """Decide for each input whether its label is certified in the top k at ``radius``,
    drawing only as many noisy predictions as that takes.

    Parameters
    ----------
    draw : callable ``draw(rows, m) -> counts``
        ``rows`` is a 1-D int64 array of input indices (ascending, into ``labels``) and
        ``m`` an int; it must return an integer array of shape ``(len(rows), c)``: the
        counts of ``m`` *fresh* noisy predictions of the base classifier for each of
        those inputs, each row summing to ``m``. Fresh means independent of every
        earlier call and of what was decided: e.g. the next ``m`` samples of each
        input's reproducible noise stream. It is called once per look, with every
        input still undecided.
    labels : array_like of int, shape (N,)
        The label to certify for each input, chosen without looking at its counts
        (the true label, or a label selected from separate samples).
    k : int
        Size of the top-k set.
    sigma : float
        The noise level ``draw`` samples with.
    alpha : float
        Failure probability per input, in (0, 1), over all looks together.
    radius : float
        The target radius, finite and > 0.
    max_n : int
        The most samples drawn for any input (the final look), at least ``first_n``.
    method : {"ranked", "simuem", "binocp"}
        The bounds of :func:`topk_bounds.certify` used at every look.
    first_n, growth, multiple_of
        The schedule of looks, :func:`look_schedule` (default 128, 1.5, 128).
    final_share : float
        Share of ``alpha`` spent on the final look, in (0, 1]; the rest is split equally
        among the earlier looks that could certify anything at all (a look where even
        a unanimous row falls short of ``radius`` gets level 0; :func:`look_levels`).
    futility : float or None
        Level of the optimistic bounds of the futility rule; ``None`` turns it off.
        At every look but the last, an uncertified input stops when even its
        optimistic proportions (the label at its upper bound, the k strongest other
        labels at their lower bounds, each at level ``futility``) projected to
        ``max_n`` samples would not reach ``radius`` at the final look's level.
    delta : float, optional
        The sampler's total-variation distance per sample from the ideal Gaussian
        sampler, in [0, 1) (default 0): every look's bounds are widened by it, as
        :func:`topk_bounds.certify` does with ``delta`` (exact discrete noise records
        it, ``docs/soundness.md``).
    progress : callable, optional
        Called after every look as ``progress(look=j, n=n_j, drawn=d, undecided=u)``:
        the look's number (from 1), its cumulative sample size, the inputs sampled at
        it and those still undecided after it.

    Returns
    -------
    AdaptiveResult
        For every input, P(certified and the label's true top-k radius < ``radius``)
        <= alpha, over the sampling of that input's predictions. "True radius" is
        Theorem 1's radius R_l of the exact probabilities p_j = P(f(x + e) = j); a
        true radius >= ``radius`` means the label stays in the smoothed classifier's
        top k throughout the ball of radius ``radius``. With ``delta > 0``, provided
        ``draw`` samples within total-variation distance ``delta`` per sample of the
        ideal sampler.

    Raises
    ------
    ValueError
        For an invalid argument, before any sampling; and when ``draw`` returns the
        wrong shape, non-integer or negative counts, or rows that do not sum to ``m``.

    Notes
    -----
    *Why the guarantee holds.* The looks n_1 < ... < n_L = max_n and their levels
    alpha_1 + ... + alpha_L <= alpha are fixed before any count is seen (the levels
    depend on the schedule, on c, k, sigma, ``radius``, ``method`` and ``delta``, never
    on the counts: a look where even a unanimous row cannot reach ``radius`` gets 0).
    Picture the infinite sequence of one input's fresh predictions; the counts at look j
    are those of its first n_j predictions, an ordinary sample of fixed size n_j, whether
    or not the procedure gets there. Let F_j be the event that the bounds computed from them at
    level alpha_j fail (for ``"ranked"``: the label's lower bound or the upper bound of
    one of the k other labels with the largest true probabilities; ``docs/theory.md``).
    P(F_j) <= alpha_j, because each look's bounds are valid at their level for a fixed
    sample size. Outside F_j the radius certified at look j is at most the true radius.
    So if the input is certified, at some look j, while its true radius is below
    ``radius``, then F_j happened, and
    P(certified and true radius < ``radius``) <= P(F_1 or ... or F_L) <= sum alpha_j
    <= alpha. Stopping for futility only ends sampling without a certificate, so the
    futility rule, whatever it is, cannot create a false certificate. Neither can
    which other inputs share a ``draw`` call.

    The counts in the result were collected with optional stopping: do not certify them
    again at a fixed-n level, which would void that guarantee.

    References
    ----------
    .. [1] J. Jia, X. Cao, B. Wang, N. Z. Gong, "Certified Robustness for Top-k
       Predictions against Adversarial Perturbations via Randomized Smoothing", ICLR 2020.
    .. [2] C. Jennison, B. W. Turnbull, "Group Sequential Methods with Applications to
       Clinical Trials", Chapman & Hall/CRC, 2000 (the union bound over pre-planned looks).

    Examples
    --------
    Three inputs whose base classifier returns label 0 with probability 0.999, 0.7 and
    0.2 (the rest spread over 9 other labels), certified in the top 1 at radius 0.25:

    >>> import numpy as np
    >>> probs = np.array([[0.999] + [0.001 / 9] * 9, [0.7] + [0.3 / 9] * 9,
    ...                   [0.2] + [0.8 / 9] * 9])
    >>> rng = np.random.default_rng(0)
    >>> def draw(rows, m):
    ...     return np.stack([rng.multinomial(m, probs[i]) for i in rows])
    >>> res = certify_adaptive(draw, [0, 0, 0], k=1, sigma=0.25, alpha=0.001,
    ...                        radius=0.25, max_n=100_000)
    >>> res.certified.tolist(), res.decision.tolist()
    ([True, True, False], ['certified', 'certified', 'futile'])
    >>> res.n.tolist()
    [128, 4992, 128]
    >>> res
    AdaptiveResult(N=3, k=1, sigma=0.25, alpha=0.001, target=0.25, method='ranked', certified=2/3, mean n=1749.33 of max_n=100000, looks=1..10 of 17)
    """
    labels = _check_target_labels(labels)
    k = _check_k(k)
    sigma = _check_sigma(sigma)
    alpha = _check_alpha(alpha)
    target = _check_real("radius", radius, "a finite number > 0", lambda r: r > 0.0)
    method = _check_method(method)
    delta = _check_delta(delta)
    schedule = look_schedule(max_n, first_n=first_n, growth=growth, multiple_of=multiple_of)
    max_n = int(schedule[-1])
    levels = look_levels(alpha, schedule.size, final_share=final_share)  # validates final_share
    if futility is not None:
        futility = _check_real("futility", futility, "None or a probability in (0, 1)",
                                 lambda g: 0.0 < g < 1.0)
    if not callable(draw):
        raise ValueError(f"draw must be a callable draw(rows, m), got {draw!r}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be None or a callable, got {progress!r}")

    n_inputs = labels.size
    n_drawn = np.zeros(n_inputs, dtype=np.int64)
    looks = np.zeros(n_inputs, dtype=np.int64)
    out_radius = np.full(n_inputs, -np.inf)
    decision = np.full(n_inputs, EXHAUSTED, dtype="<U9")
    counts = None
    active = np.arange(n_inputs, dtype=np.int64)
    previous = 0
    for j, n_j in enumerate(schedule.tolist()):
        new = _checked_draw(draw, active, n_j - previous, None if counts is None else counts.shape[1])
        if counts is None:  # the first look: now c is known
            n_classes = new.shape[1]
            if np.any(labels >= n_classes):
                i = int(np.flatnonzero(labels >= n_classes)[0])
                raise ValueError(f"labels must lie in 0..{n_classes - 1} (draw returned "
                                 f"{n_classes} labels), got labels[{i}] = {labels[i]}")
            counts = np.zeros((n_inputs, n_classes), dtype=np.int64)
            # fixed before any count is looked at: depends on the schedule, c, k, sigma,
            # the target, the method and delta only
            levels = _spend_on_useful_looks(levels, schedule, n_classes, alpha=alpha,
                                            final_share=final_share, k=k, sigma=sigma,
                                            target=target, method=method, delta=delta)
        level = float(levels[j])
        counts[active] += new
        n_drawn[active] += n_j - previous
        looks[active] += 1
        previous = n_j
        drawn = active.size
        here, lab = counts[active], labels[active]
        if level > 0.0:
            rad = certify(here, lab, k=k, sigma=sigma, alpha=level, method=method,
                          delta=delta).radius
        else:
            rad = np.full(active.size, -np.inf)
        out_radius[active] = rad
        done = rad >= target
        decision[active[done]] = CERTIFIED
        last = j == schedule.size - 1
        if not last and futility is not None and (~done).any():
            undecided = ~done
            proj = _projected_radius(here[undecided], lab[undecided], n_j, k=k, sigma=sigma,
                                     max_n=max_n, final_level=float(levels[-1]),
                                     method=method, gamma=futility, delta=delta)
            futile = np.zeros(active.size, dtype=bool)
            futile[undecided] = proj < target  # NaN: keep sampling
            decision[active[futile]] = FUTILE
            done |= futile
        active = active[~done]
        if progress is not None:
            progress(look=j + 1, n=n_j, drawn=drawn, undecided=int(active.size))
        if active.size == 0:
            break
    certified = decision == CERTIFIED
    return AdaptiveResult(certified=certified, n=n_drawn, counts=counts, radius=out_radius,
                          looks=looks, decision=decision, schedule=schedule, levels=levels,
                          labels=labels, k=k, sigma=sigma, alpha=alpha, target=target,
                          method=method, max_n=max_n, futility=futility, delta=delta)
