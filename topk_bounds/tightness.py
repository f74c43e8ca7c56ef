"""The worst-case classifier of Theorem 2 (tightness) in Jia, Cao, Wang and Gong (ICLR 2020).

Theorem 1 certifies that label l stays in the smoothed top-k within the radius R_l. Theorem
2 says that no larger radius can be certified from the same bounds: for every r > R_l
there is a base classifier that honours the bounds and pushes l out of the top k at some
x + delta with ||delta|| = r. This module builds that classifier.

Because the noise is isotropic, only the component of the noise along delta matters. A
classifier is described on the line w = <y - x, delta / ||delta||> / sigma, where w ~ N(0, 1)
under x and w ~ N(s, 1) under x + delta, s = r / sigma. It is returned as a list of
``(label, lo, hi)`` triples: half-open intervals [lo, hi) in units of sigma that cover the
real line, with label -1 for l and 0..c-2 for the other labels (indices into ``p_upper``).

Construction (in x-mass coordinates; tau = x-mass to the right of a point):

1. l takes the left tail of x-mass a, worth q = Phi(Phi^{-1}(a) - s) at x + delta.
2. The k labels S with the largest bounds share the right-end stretch tau in [0, B_k],
   B_k = their total bound. With G(tau) = Phi(Phi^{-1}(tau) + s) (concave: the worth at x +
   delta of the right-most tau of x-mass) and B_t the t smallest bounds of S summed, the
   target worth is v = min_t G(B_t) / t, and s > s_l means v > q.
3. In increasing order of b_j, each label of S but the last takes a window of x-mass b_j
   in the still-free part of the stretch (contiguous once the taken parts are collapsed),
   slid from the right end until it is worth exactly v; if it is worth more than v even
   at the left end of the free part, it stays there. The last label takes what is left.
   Concavity of G makes every label worth at least v (see ``docs/tightness.md``).
4. The other labels fill the gap between l and the stretch, each up to its bound; whatever
   they cannot hold (only when the second assumption holds with little room) goes to l.

The interval ends are computed with mpmath and then rounded to the output format. To keep
the bounds exact after rounding, the end between l and its neighbour is rounded so that l
grows, and every other label is first built with a bound reduced by twice the x-mass that
rounding its ends can move; the rounded classifier is then checked at high precision.
"""

from __future__ import annotations

import math
import numbers
import warnings
from fractions import Fraction
from typing import Sequence

import mpmath
import numpy as np
from scipy import special

from .radius import (
    _check_dps,
    _check_k,
    _check_probability,
    _check_sigma,
    _check_upper,
    mp_ndtri,
    mp_radius,
    topk_radius,
)

__all__ = ["worst_case_classifier", "classifier_probabilities"]

#: Digits (at least; dps + 20 with ``dps``) of the R_l that decides whether a witness exists.
_RADIUS_DPS = 50
#: Guard digits of the construction above the output precision.
_GUARD_DPS = 30
#: Cap on the extra digits spent when the stretch starts in the far left tail.
_MAX_EXTRA_DPS = 400
_MAX_ITER = 400
#: Rebuilds allowed until the rounding slack is covered (two suffice unless windows move).
_MAX_REBUILDS = 6
#: Bits at which sums of float64 bounds are exact.
_EXACT_PREC = 1200

L_LABEL = -1  # the label to certify, in the returned triples


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def worst_case_classifier(p_lower, p_upper: Sequence[float], k: int, sigma: float, radius,
                          *, dps: int | None = None):
    """A base classifier that honours the bounds yet pushes l out of the top k (Theorem 2).

    Parameters
    ----------
    p_lower : float
        The lower bound ``a`` on p_l (the probability of l under noise at x).
    p_upper : sequence of float, shape (c - 1,)
        Upper bounds ``b_j`` on the probabilities of the other labels.
    k : int
        Size of the top-k set, ``1 <= k <= c - 1``.
    sigma : float
        Standard deviation of the Gaussian noise, ``sigma > 0``.
    radius : float or mpmath.mpf
        ``||delta||``, finite and ``>= 0``; must exceed the certified radius R_l. An mpf
        is used at its full precision (with ``dps``, for radii just above R_l).
    dps : int, optional
        ``None`` (default) returns the interval ends as Python floats; an integer
        ``N >= 15`` returns them as ``mpmath.mpf`` rounded to N digits (for radii so close
        to R_l that float64 ends cannot keep the inequalities strict).

    Returns
    -------
    list of (int, float, float)
        Triples ``(label, lo, hi)``: disjoint half-open intervals [lo, hi) of
        w = <y - x, delta / ||delta||> / sigma, sorted, covering the line (the first ``lo``
        is -inf, the last ``hi`` is +inf). ``label`` is -1 for l, else an index into
        ``p_upper``; a label may own several intervals, labels with no x-mass own none.

    Raises
    ------
    ValueError
        On invalid arguments; when ``k >= c``; when Theorem 2's first assumption
        ``a + (sum of the k largest b_j) <= 1`` fails (checked in exact rational
        arithmetic on the given floats); or when ``radius <= R_l``, where Theorem 1 proves
        that no such classifier exists. If the second assumption ``a + (sum of all b_j)
        >= 1`` fails, every classifier honouring the bounds gives l at least
        a' = 1 - (sum of all b_j) > a, R_l is the radius of a' (larger than
        ``topk_radius(a, ...)``), and the witness gives l that leftover mass: so
        ``0.7 + 0.2 + 0.06 + 0.04``, 3.5e-17 short of 1 in the floats' exact values,
        still has a witness beyond a radius 1e-16 larger.
    ArithmeticError
        When ``radius`` exceeds R_l by so little that ends rounded to the requested
        precision cannot keep the inequalities strict (pass a larger ``dps``).

    Notes
    -----
    Guarantee: with the returned ends taken as exact numbers, the classifier satisfies
    P_x(l) >= a and P_x(j) <= b_j for every j, and at x + delta with ``||delta|| = radius``
    the k labels with the largest b_j each have probability strictly greater than l's,
    so l is not in the top k. This is verified at ``dps + 30`` digits (47 for floats)
    before returning. Every label of S is worth at least
    ``min_t G(B_t) / t``, the largest value any classifier can guarantee them all, so the
    witness also maximizes the smallest margin over l.

    The construction follows the proof of Theorem 2 in [1]_ (l takes the far left tail, the
    top-k labels windows at the far right chosen with the intermediate value theorem); the
    module docstring and ``docs/tightness.md`` give the details.

    References
    ----------
    .. [1] J. Jia, X. Cao, B. Wang, N. Z. Gong, "Certified Robustness for Top-k
       Predictions against Adversarial Perturbations via Randomized Smoothing",
       ICLR 2020, Theorem 2.

    Examples
    --------
    Four labels; l is certified in the top 2 up to R_l = 0.2876:

    >>> from topk_bounds import topk_radius
    >>> a, b, k, sigma = 0.5, [0.25, 0.125, 0.125], 2, 0.5
    >>> round(topk_radius(a, b, k, sigma), 4)
    0.2876

    Beyond R_l the witness gives l the left half of the line, label 2 (whose bound is not
    among the two largest) the next eighth, and labels 1 and 0 the right end:

    >>> clf = worst_case_classifier(a, b, k, sigma, radius=0.3)
    >>> [(lab, round(lo, 4), round(hi, 4)) for lab, lo, hi in clf]
    [(-1, -inf, 0.0), (2, 0.0, 0.3186), (0, 0.3186, 1.1503), (1, 1.1503, inf)]

    At x the bounds hold; at x + delta (shift ``radius / sigma``) labels 0 and 1 both
    beat l:

    >>> classifier_probabilities(clf, 0.0, n_others=3).round(6).tolist()  # labels 0, 1, 2, l
    [0.25, 0.125, 0.125, 0.5]
    >>> classifier_probabilities(clf, 0.3 / 0.5, n_others=3).round(4).tolist()
    [0.3197, 0.291, 0.115, 0.2743]

    At or below R_l no such classifier exists:

    >>> worst_case_classifier(a, b, k, sigma, radius=0.28)
    Traceback (most recent call last):
    ...
    ValueError: radius (0.28) must exceed the certified radius R_l = 0.28758734509400...
    """
    a = _check_probability("p_lower", p_lower)
    b = _check_upper(p_upper)
    k = _check_k(k)
    sigma = _check_sigma(sigma)
    r = _check_radius(radius)
    dps = _check_dps(dps)
    n = b.size
    if k > n:
        raise ValueError(
            f"k ({k}) must be smaller than the number of labels c = {n + 1}: with k >= c every "
            "label is in the top k, R_l = +inf, and no classifier can push l out"
        )
    order = np.argsort(-b, kind="stable")
    top, rest = [int(j) for j in order[:k]], [int(j) for j in order[k:]]
    deficit = _check_assumptions(a, b, top)
    radius_dps = _RADIUS_DPS if dps is None else max(_RADIUS_DPS, dps + 20)
    if deficit > 0:
        # l holds at least 1 - sum(b) > a in every classifier honouring the bounds: the
        # witness gives it that leftover, and exists exactly beyond the radius of it
        with mpmath.workprec(_EXACT_PREC):
            total = mpmath.fsum(mpmath.mpf(float(x)) for x in b)  # exact at this precision
            r_l = mp_radius(1 - total, [float(x) for x in b], k, sigma, radius_dps,
                            p_lower_complement=total)
    else:
        r_l = topk_radius(a, b, k, sigma, dps=radius_dps)
    with mpmath.workdps(radius_dps):
        if not r > r_l:  # exact comparison of the given radius with R_l
            if deficit > 0:
                raise ValueError(
                    f"radius ({_show(r)}) must exceed R_l = {_show(r_l)}, the certified radius "
                    f"of p_lower raised to 1 - sum(p_upper) = p_lower + {float(deficit):.3g}: "
                    "the other labels together hold at most sum(p_upper), so every classifier "
                    "that honours the bounds gives l at least the rest, and Theorem 1 then keeps "
                    "l in the top k within R_l; no witness exists"
                )
            raise ValueError(
                f"radius ({_show(r)}) must exceed the certified radius R_l = {_show(r_l)}: by "
                "Theorem 1 every classifier that honours the bounds keeps l in the top k "
                "within R_l, so no witness exists"
            )
    out_prec = 53 if dps is None else mpmath.libmp.dps_to_prec(dps)
    work_dps = (17 if dps is None else dps) + _GUARD_DPS + _extra_digits(a, b, top)
    with mpmath.workdps(work_dps):
        s = mpmath.mpf(r) / mpmath.mpf(sigma)
        eta = {j: mpmath.mpf(0) for j in range(n)}
        segments = _build(a, b, top, rest, s, eta)
        # only the labels that filled the gap before do so again: what the reduced bounds
        # leave over goes to l instead of a sliver for the next label
        used = {lab for lab, _, _ in segments}
        rest = [j for j in rest if j in used]
        # the slack depends on where the ends lie, and a reduced bound can move a window
        # (at s = 0 every position is worth the same): rebuild until the slack of the
        # segments built is covered by the reduction they were built with
        for _ in range(_MAX_REBUILDS):
            need = _rounding_slack(segments, b, out_prec, work_dps)
            if all(need[j] <= eta[j] for j in range(n)):
                break
            eta = {j: max(eta[j], need[j]) for j in range(n)}
            segments = _build(a, b, top, rest, s, eta)
        rounded = _round_segments(segments, out_prec)
        _verify(rounded, a, b, top, s)
    if dps is None:
        return [(lab, float(lo), float(hi)) for lab, lo, hi in rounded]
    with mpmath.workprec(out_prec):
        return [(lab, +lo, +hi) for lab, lo, hi in rounded]


def classifier_probabilities(intervals, shift=0.0, n_others: int | None = None, *,
                             dps: int | None = None, n_labels: int | None = None):
    """Probabilities of each label of an interval classifier at x + shift * sigma * e.

    Parameters
    ----------
    intervals : sequence of (int, float, float)
        ``(label, lo, hi)`` triples as returned by :func:`worst_case_classifier`: sorted,
        contiguous half-open intervals of w covering the real line; label -1 is l.
    shift : float
        ``||delta|| / sigma``: w ~ N(shift, 1). 0 gives the probabilities at x.
    n_others : int, optional
        The number of labels other than l (``len(p_upper)``); default: the largest label
        plus one.
    dps : int, optional
        ``None`` computes in float64: each interval's mass from the tail on its own side,
        so masses far in a tail keep their relative precision, and every mass is within a
        few 1e-16 absolute. An integer computes with mpmath at that many digits.

    n_labels : int, optional
        Deprecated name of ``n_others`` (it never counted l); warns.

    Returns
    -------
    ndarray of float, or list of mpmath.mpf, length ``n_others + 1``
        ``probs[j]`` for label j and ``probs[-1]`` for l: the same indexing as the labels.

    Examples
    --------
    >>> p = classifier_probabilities([(-1, -math.inf, 0.0), (0, 0.0, math.inf)], 1.0)
    >>> p.round(4).tolist()
    [0.8413, 0.1587]
    """
    if n_labels is not None:
        if n_others is not None:
            raise ValueError("pass n_others only (n_labels is its deprecated name), not both")
        warnings.warn("classifier_probabilities(n_labels=...) is deprecated: it counts the "
                      "labels other than l, so it is now called n_others",
                      DeprecationWarning, stacklevel=2)
        n_others = n_labels
    triples = _check_intervals(intervals)
    top_label = max((lab for lab, _, _ in triples), default=-1)
    if n_others is None:
        n_others = top_label + 1
    if isinstance(n_others, bool) or not isinstance(n_others, numbers.Integral) or n_others <= top_label:
        raise ValueError(f"n_others must be an integer > every label ({top_label}), got {n_others!r}")
    n_others = int(n_others)
    dps = _check_dps(dps)
    try:
        finite = mpmath.isfinite(shift) if isinstance(shift, mpmath.mpf) else math.isfinite(float(shift))
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise ValueError(f"shift must be a finite number (||delta|| / sigma), got {shift!r}")
    sh = float(shift)
    if dps is not None:
        with mpmath.workdps(dps + 10):
            sh = mpmath.mpf(shift)
            probs = [mpmath.mpf(0)] * (n_others + 1)
            for lab, lo, hi in triples:
                probs[lab] += _mp_mass(mpmath.mpf(lo) - sh, mpmath.mpf(hi) - sh)
        with mpmath.workdps(dps):
            return [+p for p in probs]
    labels = np.array([lab for lab, _, _ in triples])
    lo = np.array([float(x) for _, x, _ in triples]) - sh
    hi = np.array([float(x) for _, _, x in triples]) - sh
    probs = np.zeros(n_others + 1)
    np.add.at(probs, labels, _float_mass(lo, hi))
    return probs


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _check_radius(radius):
    """A finite radius >= 0, as a float (an ``mpmath.mpf`` is kept exactly)."""
    if isinstance(radius, mpmath.mpf):
        if mpmath.isfinite(radius) and radius >= 0:
            return radius
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    try:
        value = float(radius)
    except (TypeError, ValueError):
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    return value


def _show(x) -> str:
    return repr(x) if isinstance(x, float) else mpmath.nstr(x, 20)


def _check_assumptions(a: float, b: np.ndarray, top: list[int]) -> Fraction:
    """Theorem 2's first assumption, in exact rational arithmetic on the given floats.

    Returns the deficit 1 - a - sum(b) of the second (0 when it holds): the construction
    then gives l that leftover mass as well.
    """
    fa = Fraction(a)
    f_top = sum((Fraction(float(b[j])) for j in top), Fraction(0))
    f_all = sum((Fraction(float(x)) for x in b), Fraction(0))
    if fa + f_top > 1:
        raise ValueError(
            "the construction of Theorem 2 needs p_lower + (sum of the k largest p_upper) "
            f"<= 1 (the top k labels' stretch must fit beside l's tail); here it is "
            f"{float(fa + f_top)!r}"
        )
    return max(1 - fa - f_all, Fraction(0))


def _check_intervals(intervals) -> list[tuple[int, object, object]]:
    triples = []
    for item in intervals:
        try:
            lab, lo, hi = item
        except (TypeError, ValueError):
            raise ValueError(f"intervals must hold (label, lo, hi) triples, got {item!r}") from None
        if isinstance(lab, bool) or not isinstance(lab, numbers.Integral) or lab < -1:
            raise ValueError(f"labels must be integers >= -1 (-1 for l), got {lab!r}")
        triples.append((int(lab), lo, hi))
    if not triples:
        raise ValueError("intervals must not be empty")
    if not (triples[0][1] == -math.inf and triples[-1][2] == math.inf):
        raise ValueError("intervals must cover the real line: the first lo must be -inf "
                         "and the last hi +inf")
    for (_, lo, hi), nxt in zip(triples, triples[1:] + [None]):
        if not lo < hi:
            raise ValueError(f"each interval needs lo < hi, got [{lo!r}, {hi!r})")
        if nxt is not None and nxt[1] != hi:
            raise ValueError(f"intervals must be sorted and contiguous: [.., {hi!r}) is "
                             f"followed by [{nxt[1]!r}, ..)")
    return triples


# --------------------------------------------------------------------------------------
# Gaussian masses
# --------------------------------------------------------------------------------------
def _float_mass(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """P(lo <= Z < hi), Z ~ N(0, 1), each from the tail on its own side."""
    right = lo >= 0
    left = hi <= 0
    mid = ~(right | left)
    out = np.empty(lo.shape)
    out[right] = special.ndtr(-lo[right]) - special.ndtr(-hi[right])
    out[left] = special.ndtr(hi[left]) - special.ndtr(lo[left])
    out[mid] = 1.0 - special.ndtr(lo[mid]) - special.ndtr(-hi[mid])
    return out


def _mp_mass(lo, hi):
    """P(lo <= Z < hi), Z ~ N(0, 1), at the current mpmath precision, in both tails."""
    if not lo < hi:
        return mpmath.mpf(0)
    if lo >= 0:
        return mpmath.ncdf(-lo) - mpmath.ncdf(-hi)
    if hi <= 0:
        return mpmath.ncdf(hi) - mpmath.ncdf(lo)
    return 1 - mpmath.ncdf(lo) - mpmath.ncdf(-hi)


def _mp_pdf(w):
    if mpmath.isinf(w):
        return mpmath.mpf(0)
    return mpmath.exp(-w * w / 2) / mpmath.sqrt(2 * mpmath.pi)


# --------------------------------------------------------------------------------------
# construction (every function below runs at the caller's mpmath precision)
# --------------------------------------------------------------------------------------
def _extra_digits(a: float, b: np.ndarray, top: list[int]) -> int:
    """Digits needed to hold u = 1 - tau to full relative precision near the stretch start.

    Points inside the stretch are located by tau (x-mass to their right); their x-mass to
    the left, 1 - tau, is smallest at the stretch's left end, 1 - B_k >= a.
    """
    gap = 1.0 - math.fsum(float(b[j]) for j in top)
    start = max(a, gap if gap > 1e-12 else 0.0)
    if start <= 0:
        return 30
    return int(min(_MAX_EXTRA_DPS, max(0, math.ceil(-math.log10(start)))))


class _Stretch:
    """The right-end stretch tau in [0, B_k] of x-mass coordinates, shifted by s."""

    def __init__(self, s, start_w, b_k):
        self.s = s
        self._w = {mpmath.mpf(0): mpmath.inf, b_k: start_w}

    def w(self, tau):
        """The point with x-mass tau to its right: Phi^{-1}(1 - tau)."""
        w = self._w.get(tau)
        if w is None:
            w = mp_ndtri(1 - tau, tau)
            self._w[tau] = w
        return w

    def worth(self, t0, t1):
        """x + delta mass of tau in [t0, t1]."""
        return _mp_mass(self.w(t1) - self.s, self.w(t0) - self.s)

    def likelihood_ratio(self, tau):
        if self.s == 0:
            return mpmath.mpf(1)
        w = self.w(tau)
        if mpmath.isinf(w):
            return mpmath.inf if w > 0 else mpmath.mpf(0)
        return mpmath.exp(self.s * w - self.s * self.s / 2)


def _window(free, p, length):
    """Split the free tau-intervals by the collapsed window [p, p + length].

    ``p = None`` means the left-most window (it ends exactly at the far end of ``free``).
    Returns (pieces, new_free); end points are shared, so the pieces tile exactly.
    """
    total = mpmath.fsum(t1 - t0 for t0, t1 in free)
    if p is None:
        p = total - length
        end = None
    else:
        end = p + length
    pieces, new_free, c0 = [], [], mpmath.mpf(0)
    for t0, t1 in free:
        size = t1 - t0
        c1 = c0 + size
        start_c = max(p, c0)
        stop_c = c1 if end is None else min(end, c1)
        if stop_c <= start_c:
            new_free.append((t0, t1))
        else:
            a0 = t0 if start_c == c0 else t0 + (start_c - c0)
            a1 = t1 if stop_c == c1 else t0 + (stop_c - c0)
            if a0 > t0:
                new_free.append((t0, a0))
            if a1 > a0:
                pieces.append((a0, a1))
            if t1 > a1:
                new_free.append((a1, t1))
        c0 = c1
    return pieces, new_free


def _place(stretch, free, length, v):
    """Pieces of the window of x-mass ``length`` worth v (see the module docstring)."""

    def evaluate(p):
        pieces, new_free = _window(free, p, length)
        worth = mpmath.fsum(stretch.worth(t0, t1) for t0, t1 in pieces)
        return worth - v, pieces, new_free

    f0, pieces, new_free = evaluate(mpmath.mpf(0))
    if f0 <= 0:  # worth exactly v at the right end (up to rounding): stay there
        return pieces, new_free
    f_left, pieces_left, free_left = evaluate(None)
    if f_left >= 0:  # worth more than v even at the left end: stay there
        return pieces_left, free_left
    total = mpmath.fsum(t1 - t0 for t0, t1 in free)
    lo, hi = mpmath.mpf(0), total - length  # f(lo) > 0 > f(hi)
    p = hi / 2
    eps = mpmath.mpf(2) ** (8 - mpmath.mp.prec)
    for _ in range(_MAX_ITER):
        fv, pieces, new_free = evaluate(p)
        if fv == 0:
            return pieces, new_free
        if fv > 0:
            lo = p
        else:
            hi = p
        if hi - lo <= eps * hi or abs(fv) <= eps * v:
            return pieces, new_free
        slope = stretch.likelihood_ratio(pieces[-1][1]) - stretch.likelihood_ratio(pieces[0][0])
        step = p - fv / slope if mpmath.isfinite(slope) and slope < 0 else None
        if step is not None and lo < step < hi:
            p = step
        elif lo == 0:
            p = hi / 64  # the root may sit very close to the right end: approach it geometrically
        elif hi > 64 * lo:
            p = mpmath.sqrt(lo * hi)
        else:
            p = (lo + hi) / 2
    raise ArithmeticError("the window search of the worst-case classifier did not converge")


def _build(a, b, top, rest, s, eta):
    """Segments (label, lo, hi) with mpmath ends, for bounds reduced by ``eta``."""
    # windows go in increasing order of the *given* bounds, so that both passes place the
    # labels alike (the reduced bounds can swap near-ties); v uses the reduced ones, sorted
    sized = sorted(((mpmath.mpf(float(b[j])) - eta[j], j) for j in top),
                   key=lambda x: (float(b[x[1]]), x[1]))
    if min(x for x, _ in sized) <= 0:
        raise ArithmeticError(
            "an upper bound of the top k is too small for its interval ends to be rounded "
            "safely at this precision; pass a larger dps"
        )
    b_k = mpmath.fsum(x for x, _ in sized)
    room = 1 - mpmath.mpf(a) - b_k
    takes = []
    for j in rest:
        if room <= 0:
            break
        cap = mpmath.mpf(float(b[j])) - eta[j]
        take = min(cap, room)
        if take > 0:
            takes.append((take, j))
            room -= take
    leftover = max(room, mpmath.mpf(0))
    a_eff = mpmath.mpf(a) + leftover
    fill_total = mpmath.fsum(t for t, _ in takes)

    # left part, located by u (x-mass to the left) with tau = 1 - u as an exact-ish sum
    segments = []
    w_l = mp_ndtri(a_eff, b_k + fill_total) if a_eff > 0 else mpmath.ninf
    if a_eff > 0:
        segments.append((L_LABEL, mpmath.ninf, w_l))
    u, w_prev = a_eff, w_l
    suffix = fill_total
    for take, j in takes:
        u += take
        suffix -= take
        w_next = mp_ndtri(u, b_k + max(suffix, mpmath.mpf(0)))
        segments.append((j, w_prev, w_next))
        w_prev = w_next

    # right-end stretch
    stretch = _Stretch(s, w_prev, b_k)
    q = mpmath.ncdf(w_l - s) if a_eff > 0 else mpmath.mpf(0)
    partial, v = mpmath.mpf(0), mpmath.inf
    for t, size in enumerate(sorted(x for x, _ in sized), start=1):
        partial += size
        v = min(v, stretch.worth(mpmath.mpf(0), partial if t < len(sized) else b_k) / t)
    if not v > q:
        raise ArithmeticError(
            "radius exceeds R_l by too little for a witness at this precision; pass a "
            "larger dps"
        )
    free = [(mpmath.mpf(0), b_k)]
    for idx, (size, j) in enumerate(sized):
        if idx == len(sized) - 1:
            pieces = free
        else:
            pieces, free = _place(stretch, free, size, v)
        for t0, t1 in pieces:
            segments.append((j, stretch.w(t1), stretch.w(t0)))
    segments.sort(key=lambda seg: seg[1])
    return _merge(segments)


def _merge(segments):
    out = []
    for lab, lo, hi in segments:
        if not lo < hi:
            continue
        if out and out[-1][0] == lab and out[-1][2] == lo:
            out[-1] = (lab, out[-1][1], hi)
        else:
            out.append((lab, lo, hi))
    return out


def _rounding_slack(segments, b, out_prec, work_dps):
    """Per label: twice the x-mass that rounding its ends to ``out_prec`` bits can move.

    The end between l and a neighbour is rounded towards the neighbour (l only gains), so
    it needs no slack. A floor of 10^-(work_dps - 10) relative covers the construction's
    own arithmetic.
    """
    scale = mpmath.mpf(2) ** (1 - out_prec)
    floor = mpmath.mpf(10) ** (10 - work_dps)
    eta = {j: floor * mpmath.mpf(float(b[j])) for j in range(b.size)}
    for (lab0, _, w), (lab1, _, _) in zip(segments, segments[1:]):
        if lab0 == L_LABEL or lab1 == L_LABEL or mpmath.isinf(w):
            continue
        move = _mp_pdf(w) * (abs(w) * scale + floor)
        eta[lab0] += 2 * move
        eta[lab1] += 2 * move
    return eta


def _round_to(w, prec, rounding):
    if not mpmath.isfinite(w):
        return w
    return mpmath.mpf(mpmath.libmp.mpf_pos(w._mpf_, prec, rounding))


def _round_segments(segments, out_prec):
    ends = [segments[0][1]]
    for (lab0, _, w), (lab1, _, _) in zip(segments, segments[1:]):
        if lab0 == L_LABEL:
            rnd = mpmath.libmp.round_ceiling
        elif lab1 == L_LABEL:
            rnd = mpmath.libmp.round_floor
        else:
            rnd = mpmath.libmp.round_nearest
        # directed rounding can invert an interval a few ulps wide: keep the ends in
        # order, so that the inverted one ends up empty and its right neighbour starts
        # where its left one ends (no label gains x-mass, l never shrinks)
        ends.append(max(_round_to(w, out_prec, rnd), ends[-1]))
    ends.append(segments[-1][2])
    return _merge([(seg[0], lo, hi) for seg, lo, hi in zip(segments, ends, ends[1:])])


def _verify(segments, a, b, top, s):
    """Check the rounded classifier; raise ArithmeticError if rounding broke it."""
    n = b.size
    p_x = [mpmath.mpf(0)] * (n + 1)
    p_s = [mpmath.mpf(0)] * (n + 1)
    for lab, lo, hi in segments:
        p_x[lab] += _mp_mass(lo, hi)
        p_s[lab] += _mp_mass(lo - s, hi - s)
    ok = p_x[L_LABEL] >= mpmath.mpf(a)
    ok = ok and all(p_x[j] <= mpmath.mpf(float(b[j])) for j in range(n))
    ok = ok and all(p_s[j] > p_s[L_LABEL] for j in top)
    if not ok:
        raise ArithmeticError(
            "rounding the interval ends broke the bounds or the margin; the radius is too "
            "close to R_l (or a bound too small) for this precision; pass a larger dps"
        )
