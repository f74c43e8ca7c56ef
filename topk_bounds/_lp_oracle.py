"""A linear-programming oracle for the adversary's best margin (tests and docs only).

The question "can a base classifier that honours the bounds push l out of the top k at
shift s = ||delta|| / sigma?" is answered without Theorems 1 and 2, by discretizing the line
w into cells and solving two linear programs with scipy's HiGHS:

* The *restriction*: soft classifiers constant on each cell. Every such classifier is a
  classifier, so its optimum (after a repair step that makes the returned solution exactly
  feasible) is a lower bound on the true best margin.
* The *relaxation*: in each cell a label with x-mass ``f * m0`` may have any x + delta mass
  between ``f * m0 * LR(lo)`` and ``f * m0 * LR(hi)`` (LR the likelihood ratio, increasing
  in w), the cell's total fixed. Every classifier satisfies these constraints, so the
  optimum is an upper bound on the true best margin.

The margin of a classifier for a set T of k other labels is min over j in T of
P_{x+delta}(j) - P_{x+delta}(l); the adversary wins (l leaves the top k) iff some T has a
positive margin. The oracle solves for one T (default: the k labels with the largest
bounds) or for every T. The true best margin lies in [lower, upper]; the width of that
bracket is the discretization error, reported with every answer.

:func:`predicted_margin` is the closed form the oracle is compared with: for the k largest
bounds, with a_eff = max(a, 1 - sum_j b_j) and B_t = min(sum of the t smallest of the k
largest bounds, 1 - a_eff),

    M(s) = min_t Phi(Phi^{-1}(B_t) + s) / t - Phi(Phi^{-1}(a_eff) - s).

Its root is Theorem 1's radius when a_eff = a (the second assumption of Theorem 2).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import mpmath
import numpy as np
from scipy import special

from .radius import mp_ndtri

__all__ = ["MarginBracket", "margin_bracket", "best_margin_over_subsets", "predicted_margin"]

#: HiGHS tolerances: far below the margins the tests look at.
_HIGHS = {"primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9}


@dataclass(frozen=True)
class MarginBracket:
    """The adversary's best margin lies in [lower, upper] (up to the LP solver's 1e-9)."""

    lower: float
    upper: float
    cells: int

    @property
    def width(self) -> float:
        return self.upper - self.lower


def _cells(shift: float, cells: int, half_width: float):
    """Cell edges on w, and each cell's exact masses at x and at x + delta."""
    lo, hi = min(0.0, shift) - half_width, max(0.0, shift) + half_width
    edges = np.concatenate([[-np.inf], np.linspace(lo, hi, cells - 1), [np.inf]])
    m0 = _mass(edges[:-1], edges[1:])
    m1 = _mass(edges[:-1] - shift, edges[1:] - shift)
    return edges, m0, m1


def _mass(lo, hi):
    right = lo >= 0
    out = np.where(right, special.ndtr(-lo) - special.ndtr(-hi), special.ndtr(hi) - special.ndtr(lo))
    return np.maximum(out, 0.0)


def margin_bracket(p_lower, p_upper, shift, *, labels=None, k=None, cells=1500,
                   half_width=8.0) -> MarginBracket:
    """Bounds on sup over classifiers honouring the bounds of min_{j in T} P(j) - P(l).

    Parameters
    ----------
    p_lower, p_upper : the bounds a and b_j (j = 0..c-2).
    shift : float
        s = ||delta|| / sigma >= 0.
    labels : sequence of int, optional
        The set T; default the ``k`` labels with the largest bounds.
    k : int, optional
        Needed when ``labels`` is not given.
    cells : int
        Number of cells: ``cells - 2`` equal cells on [min(0, s) - half_width,
        max(0, s) + half_width] and the two tails.
    """
    a = float(p_lower)
    b = np.asarray(p_upper, dtype=float)
    if labels is None:
        labels = np.argsort(-b, kind="stable")[:k]
    labels = [int(j) for j in labels]
    s = float(shift)
    edges, m0, m1 = _cells(s, cells, half_width)
    lower = _restriction(a, b, labels, m0, m1)
    upper = _relaxation(a, b, labels, s, edges, m0, m1)
    return MarginBracket(lower=lower, upper=upper, cells=cells)


def best_margin_over_subsets(p_lower, p_upper, k, shift, *, cells=1500, half_width=8.0):
    """{T: MarginBracket} for every k-subset T of the other labels (small c only)."""
    n = len(p_upper)
    return {
        subset: margin_bracket(p_lower, p_upper, shift, labels=subset, cells=cells,
                               half_width=half_width)
        for subset in itertools.combinations(range(n), k)
    }


def _common_rows(a, b, n_lab, n_cells, m0, n_var):
    """Rows shared by both LPs over variables f[i, j] (cell i, label j; l is j = n_lab - 1)."""
    from scipy import sparse  # imported on first use: scipy.sparse/optimize take ~0.2 s

    idx = np.arange(n_cells * n_lab).reshape(n_cells, n_lab)
    # each cell's soft labels sum to 1
    eq = sparse.csr_matrix(
        (np.ones(n_cells * n_lab), (np.repeat(np.arange(n_cells), n_lab), idx.ravel())),
        shape=(n_cells, n_var),
    )
    rows, cols, vals = [], [], []
    # -P_x(l) <= -a
    rows += [0] * n_cells
    cols += list(idx[:, -1])
    vals += list(-m0)
    # P_x(j) <= b_j
    for j in range(n_lab - 1):
        rows += [1 + j] * n_cells
        cols += list(idx[:, j])
        vals += list(m0)
    ub = sparse.csr_matrix((vals, (rows, cols)), shape=(n_lab, n_var))
    rhs = np.concatenate([[-a], b])
    return idx, eq, ub, rhs


def _restriction(a, b, labels, m0, m1) -> float:
    from scipy import optimize, sparse

    n_cells, n_lab = m0.size, b.size + 1
    n_var = n_cells * n_lab + 1
    idx, eq, ub, rhs = _common_rows(a, b, n_lab, n_cells, m0, n_var)
    rows, cols, vals = [], [], []
    for r, j in enumerate(labels):  # m - P1(j) + P1(l) <= 0
        rows += [r] * (2 * n_cells + 1)
        cols += list(idx[:, j]) + list(idx[:, -1]) + [n_var - 1]
        vals += list(-m1) + list(m1) + [1.0]
    margin_rows = sparse.csr_matrix((vals, (rows, cols)), shape=(len(labels), n_var))
    cost = np.zeros(n_var)
    cost[-1] = -1.0
    bounds = np.empty((n_var, 2))
    bounds[:-1] = (0.0, 1.0)
    bounds[-1] = (-np.inf, np.inf)
    res = optimize.linprog(
        cost, A_ub=sparse.vstack([ub, margin_rows]), b_ub=np.concatenate([rhs, np.zeros(len(labels))]),
        A_eq=eq, b_eq=np.ones(n_cells), bounds=bounds, method="highs", options=_HIGHS,
    )
    if res.status != 0:
        raise RuntimeError(f"restriction LP failed: {res.message}")
    f = np.clip(res.x[:-1].reshape(n_cells, n_lab), 0.0, 1.0)
    f /= f.sum(axis=1, keepdims=True)
    return _repaired_margin(f, a, b, labels, m0, m1)


def _repaired_margin(f, a, b, labels, m0, m1) -> float:
    """The margin of a classifier made exactly feasible by mixing in 'always l'.

    f' = (1 - e) f + e [l]: P_x(j) shrinks by the factor 1 - e, P_x(l) grows towards 1,
    and every margin becomes (1 - e) * margin - e.
    """
    p0, p1 = m0 @ f, m1 @ f
    e = 0.0
    for j in range(b.size):
        if p0[j] > b[j]:
            e = max(e, 1.0 - b[j] / p0[j])
    if p0[-1] < a:
        e = max(e, (a - p0[-1]) / (1.0 - p0[-1]))
    margin = min(p1[j] - p1[-1] for j in labels)
    return (1.0 - e) * margin - e


def _relaxation(a, b, labels, s, edges, m0, m1) -> float:
    from scipy import optimize, sparse

    n_cells, n_lab = m0.size, b.size + 1
    n_f = n_cells * n_lab
    n_var = 2 * n_f + 1  # f, y, m
    idx, eq, ub, rhs = _common_rows(a, b, n_lab, n_cells, m0, n_var)
    yidx = idx + n_f
    # each cell's x + delta mass is shared out exactly
    eq_y = sparse.csr_matrix(
        (np.ones(n_f), (np.repeat(np.arange(n_cells), n_lab), yidx.ravel())), shape=(n_cells, n_var)
    )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_m0 = np.log(m0)
        c_lo = np.where(np.isneginf(edges[:-1]), 0.0, np.exp(log_m0 + s * edges[:-1] - s * s / 2))
        c_hi = np.where(np.isposinf(edges[1:]), np.inf, np.exp(log_m0 + s * edges[1:] - s * s / 2))
    c_lo = np.where(m0 > 0, c_lo, 0.0)
    blocks = []
    fin = np.flatnonzero(np.isfinite(c_hi))  # y - c_hi f <= 0
    pos = np.flatnonzero(c_lo > 0)  # c_lo f - y <= 0
    for cells_, coef, sign in ((fin, c_hi, 1.0), (pos, c_lo, -1.0)):
        n_rows = cells_.size * n_lab
        row = np.arange(n_rows)
        blocks.append(sparse.csr_matrix(
            (np.concatenate([np.full(n_rows, sign), np.repeat(-sign * coef[cells_], n_lab)]),
             (np.concatenate([row, row]),
              np.concatenate([yidx[cells_].ravel(), idx[cells_].ravel()]))),
            shape=(n_rows, n_var),
        ))
    rows, cols, vals, r = [], [], [], 0
    for j in labels:  # m - Y(j) + Y(l) <= 0
        rows += [r] * (2 * n_cells + 1)
        cols += list(yidx[:, j]) + list(yidx[:, -1]) + [n_var - 1]
        vals += [-1.0] * n_cells + [1.0] * n_cells + [1.0]
        r += 1
    blocks.append(sparse.csr_matrix((vals, (rows, cols)), shape=(r, n_var)))
    extra = sparse.vstack(blocks)
    r = extra.shape[0]
    cost = np.zeros(n_var)
    cost[-1] = -1.0
    bounds = np.empty((n_var, 2))
    bounds[:n_f] = (0.0, 1.0)
    bounds[n_f:-1, 0] = 0.0
    bounds[n_f:-1, 1] = np.repeat(m1, n_lab)
    bounds[-1] = (-np.inf, np.inf)
    res = optimize.linprog(
        cost, A_ub=sparse.vstack([ub, extra]), b_ub=np.concatenate([rhs, np.zeros(r)]),
        A_eq=sparse.vstack([eq, eq_y]), b_eq=np.concatenate([np.ones(n_cells), m1]),
        bounds=bounds, method="highs", options=_HIGHS,
    )
    if res.status != 0:
        raise RuntimeError(f"relaxation LP failed: {res.message}")
    return float(-res.fun)


def predicted_margin(p_lower, p_upper, k, shift, *, dps=30):
    """Closed-form best margin for the k largest bounds (see the module docstring)."""
    with mpmath.workdps(dps + 10):
        a = mpmath.mpf(float(p_lower))
        b = [mpmath.mpf(float(x)) for x in p_upper]
        s = mpmath.mpf(shift)
        a_eff = max(a, 1 - mpmath.fsum(b))
        room = 1 - a_eff
        top = sorted(min(x, room) for x in sorted(b, reverse=True)[:k])
        q = mpmath.ncdf(mp_ndtri(a_eff, room) - s) if a_eff > 0 else mpmath.mpf(0)
        best, acc = mpmath.inf, mpmath.mpf(0)
        for t, x in enumerate(top, start=1):
            acc += x
            big_b = min(acc, room)
            g = mpmath.ncdf(mp_ndtri(big_b, 1 - big_b) + s) if big_b > 0 else mpmath.mpf(0)
            best = min(best, g / t)
        result = best - q
    with mpmath.workdps(dps):
        return +result
