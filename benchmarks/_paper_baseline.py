"""The per-example certification of the paper's released code, re-implemented as a baseline.

Written from the description of the method (``shared/MATH.md`` and the benchmark brief), not
from the authors' code. It is what a straightforward float implementation of Jia et al.
(ICLR 2020) does for *one* input:

1. one scalar Clopper-Pearson bound per label with ``scipy.stats.beta.ppf`` (SimuEM, level
   ``alpha / c`` each): the lower bound of the label, ``beta.ppf(alpha/c, x, n - x + 1)``,
   and the upper bound of every other label, ``beta.ppf(1 - alpha/c, x + 1, n - x)``;
2. each upper bound clipped to ``1 - a``;
3. for t = 1..k, bisection to 1e-5 over [0, 10] on the condition of Theorem 1,
   ``Phi(Phi^{-1}(a) - r / sigma) > Phi(Phi^{-1}(B_t) + r / sigma) / t``, with scalar
   ``scipy.stats.norm.cdf`` / ``norm.ppf`` calls; the radius is the largest of the k
   results.

A Python loop runs over the inputs. The bisection keeps the left end of its bracket, so a
returned radius satisfies the condition as evaluated in float64; an input whose condition
fails already at r = 0 gets the radius -1 (not certified). Radii are capped at 10.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta as beta_dist
from scipy.stats import norm

#: Bracket and tolerance of the bisection, as in the paper's code.
R_MAX = 10.0
TOL = 1e-5
NOT_CERTIFIED = -1.0


def _cp_lower(x: int, n: int, level: float) -> float:
    if x == 0:
        return 0.0
    return float(beta_dist.ppf(level, x, n - x + 1))


def _cp_upper(x: int, n: int, level: float) -> float:
    if x == n:
        return 1.0
    return float(beta_dist.ppf(1.0 - level, x + 1, n - x))


def _bisect(a: float, b_t: float, t: int, sigma: float) -> float:
    """Largest r in [0, R_MAX] (to TOL) with Phi(Phi^-1(a) - r/s) > Phi(Phi^-1(b_t) + r/s) / t."""
    za = norm.ppf(a)
    zb = norm.ppf(b_t)

    def holds(r: float) -> bool:
        return norm.cdf(za - r / sigma) > norm.cdf(zb + r / sigma) / t

    if not holds(0.0):
        return NOT_CERTIFIED
    lo, hi = 0.0, R_MAX
    if holds(hi):
        return hi
    while hi - lo > TOL:
        mid = 0.5 * (lo + hi)
        if holds(mid):
            lo = mid
        else:
            hi = mid
    return lo


def certify_one(counts, label: int, k: int, sigma: float, alpha: float) -> float:
    """The paper's radius for one input (SimuEM bounds); -1.0 when not certified."""
    counts = [int(v) for v in counts]
    c = len(counts)
    n = sum(counts)
    level = alpha / c
    a = _cp_lower(counts[label], n, level)
    b = [_cp_upper(x, n, level) for j, x in enumerate(counts) if j != label]
    b = [min(v, 1.0 - a) for v in b]  # clip
    if a <= 0.0:
        return NOT_CERTIFIED
    top = sorted(b, reverse=True)[:k]
    best = NOT_CERTIFIED
    for t in range(1, k + 1):
        b_t = min(sum(top[k - t:]), 1.0 - a)  # the t smallest of the k largest
        best = max(best, _bisect(a, b_t, t, sigma))
    return best


def certify_loop(counts, labels, k: int, sigma: float, alpha: float) -> np.ndarray:
    """:func:`certify_one` for every row, in a Python loop (the baseline's throughput)."""
    counts = np.asarray(counts)
    labels = np.broadcast_to(np.asarray(labels), (counts.shape[0],))
    return np.array([certify_one(row, int(lab), k, sigma, alpha)
                     for row, lab in zip(counts, labels)])
