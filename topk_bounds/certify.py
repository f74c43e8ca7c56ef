"""From Monte-Carlo counts to certified top-k radii and abstaining top-k predictions.

This is the user flow of Jia, Cao, Wang and Gong (ICLR 2020): counts of the base
classifier's predictions under Gaussian noise give probability bounds (SimuEM or BinoCP),
and the bounds give the radius of Theorem 1 (:func:`topk_bounds.topk_radius`).
Everything is vectorized over inputs: no Python loop runs per example.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import special

from . import _float as fl
from ._cp_float import BOOST_MIN, SMALL_X, _cdf_small, boost_rtol_g, chernoff_g
from .bounds import _pair_float, _upper_float
from .limits import LEVEL_MIN, N_MAX
from .radius import _check_k, _check_real, _check_sigma, radius_from_bounds

__all__ = ["certify", "certify_exact", "predict", "CertifyResult", "PredictResult"]

METHODS = ("simuem", "binocp", "ranked")


def _where(shape, flat_index: int) -> str:
    """``counts[i, j]`` (or ``counts[j]`` for 1-D input) for a flat index into ``shape``."""
    return "counts[" + ", ".join(str(int(i)) for i in np.unravel_index(flat_index, shape)) + "]"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.ravel())[0])


def _object_counts(arr: np.ndarray) -> np.ndarray:
    """An object array (Python ints too large for int64, mixed types) checked element by
    element and converted to int64; every value is compared before any is converted."""
    out = np.empty(arr.shape, dtype=np.int64)
    flat = out.reshape(-1)
    for idx, value in enumerate(arr.reshape(-1)):
        where = _where(arr.shape, idx)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise ValueError(f"counts must hold integers, got {where} = {value!r}")
        if not isinstance(value, numbers.Integral):
            f = float(value)
            if not math.isfinite(f):
                raise ValueError(f"counts must be finite, got {where} = {f!r} (row {_row(arr, idx)})")
            if f != math.floor(f):
                raise ValueError(f"{where} = {f!r} is not an integer (counts must hold integers)")
            value = int(f)
        value = int(value)
        if value < 0:
            raise ValueError(f"counts must be non-negative, got {where} = {value}")
        if value > N_MAX:
            raise ValueError(_too_large(where, value))
        flat[idx] = value
    return out


def _row(arr: np.ndarray, flat_index: int) -> int:
    return int(np.unravel_index(flat_index, arr.shape)[0]) if arr.ndim == 2 else 0


def _too_large(where: str, value) -> str:
    return (f"{where} = {value} exceeds limits.N_MAX = {N_MAX:,}, the largest number of "
            "samples supported (the bounds are validated up to it)")


def _check_counts(counts) -> tuple[np.ndarray, np.ndarray]:
    """Validated counts as an (N, c) int64 array, and their row totals n (int64).

    Every count and every row total is compared with ``limits.N_MAX`` before any
    arithmetic that could wrap (int64 sums, uint64 casts, float conversions).
    """
    try:
        arr = np.asarray(counts)
    except (ValueError, OverflowError):
        raise ValueError("counts must be a rectangular integer array (every row the same length)") from None
    if arr.ndim not in (1, 2):
        raise ValueError(f"counts must have shape (c,) or (N, c), got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "O":
        checked = _object_counts(arr)
    elif kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            i = _first(bad)
            raise ValueError(f"counts must be finite, got {_where(arr.shape, i)} = "
                             f"{float(arr.flat[i])!r} (row {_row(arr, i)})")
        bad = arr != np.floor(arr)
        if bad.any():
            i = _first(bad)
            raise ValueError(f"{_where(arr.shape, i)} = {float(arr.flat[i])!r} is not an integer "
                             "(counts must hold integers)")
        checked = arr
    elif kind in "iu":
        checked = arr
    else:
        raise ValueError(f"counts must hold integers, got dtype {arr.dtype}")
    # reductions first (no temporary masks of the whole array); masks only to name a culprit.
    # For 8-byte integers one pass tells whether to look: as uint64 a negative count
    # exceeds N_MAX too
    suspect = not (kind in "iu" and checked.dtype.itemsize == 8 and checked.size
                   and checked.view(np.uint64).max() <= N_MAX)
    if suspect and kind != "u" and checked.size and checked.min() < 0:
        i = _first(checked < 0)
        value = checked.flat[i]
        value = int(value) if kind != "f" else float(value)
        raise ValueError(f"counts must be non-negative, got {_where(arr.shape, i)} = {value!r}")
    if suspect and checked.size and checked.max() > N_MAX:
        i = _first(checked > N_MAX)
        value = checked.flat[i]
        raise ValueError(_too_large(_where(arr.shape, i), int(value) if kind != "f" else float(value)))
    checked = np.atleast_2d(checked).astype(np.int64, copy=False)
    if checked.shape[1] < 2:
        raise ValueError(f"counts must hold at least 2 labels per row, got shape {arr.shape}")
    if checked.shape[0] == 0:
        raise ValueError("counts must hold at least one row, got shape (0, c)")
    if checked.shape[1] * N_MAX >= 2**63:  # only then could an int64 row sum wrap
        rough = checked.sum(axis=1, dtype=np.float64)
        if np.any(rough > 2.0 * N_MAX):
            i = int(np.flatnonzero(rough > 2.0 * N_MAX)[0])
            raise ValueError(f"row {i} of counts sums to n = {rough[i]:.6g}, above limits.N_MAX = "
                             f"{N_MAX:,}, the largest number of samples supported")
    n = checked.sum(axis=1)
    if np.any(n > N_MAX):
        i = int(np.flatnonzero(n > N_MAX)[0])
        raise ValueError(f"row {i} of counts sums to n = {int(n[i]):,}, above limits.N_MAX = "
                         f"{N_MAX:,}, the largest number of samples supported")
    if np.any(n == 0):
        raise ValueError(f"every row of counts needs n > 0 samples, row {int(np.argmin(n))} sums to 0")
    return checked, n


def _check_labels(labels, n_rows: int, n_classes: int) -> np.ndarray:
    try:
        arr = np.asarray(labels)
    except (ValueError, OverflowError):
        raise ValueError("labels must be an int or a 1-D array of ints") from None
    if arr.dtype.kind == "f":  # integral floats (e.g. from np.loadtxt) are accepted, as for counts
        flat = arr.reshape(-1)
        bad = ~np.isfinite(flat) | (flat != np.floor(flat))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = f"labels[{i}]" if arr.ndim else "labels"
            raise ValueError(f"labels must be integers, got {where} = {float(flat[i])!r}")
        if flat.size and (flat.min() < 0 or flat.max() >= n_classes):
            i = int(np.flatnonzero((flat < 0) | (flat >= n_classes))[0])
            where = f"labels[{i}]" if arr.ndim else "labels"
            raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {where} = {float(flat[i])!r}")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        shown = repr(labels) if arr.size <= 10 else f"an array of dtype {arr.dtype}"
        raise ValueError(f"labels must be integers, got {shown}")
    arr = np.broadcast_to(arr, (n_rows,)) if arr.ndim == 0 else arr
    if arr.shape != (n_rows,):
        raise ValueError(f"labels must be an int or have shape ({n_rows},), got shape {arr.shape}")
    bad = (arr < 0) | (arr >= n_classes)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got labels[{i}] = {arr[i]}")
    return arr.astype(np.int64)


def _check_alpha(alpha) -> float:
    return _check_real("alpha", alpha, "a probability in (0, 1)", lambda a: 0.0 < a < 1.0)


def _check_delta(delta) -> float:
    # a bool is not a distance, although float(True) is 1.0 and float(False) 0.0
    return _check_real("delta", delta, "a total-variation distance in [0, 1)",
                       lambda d: not isinstance(delta, bool) and 0.0 <= d < 1.0)


def _check_method(method) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of 'simuem', 'binocp' or 'ranked', got {method!r}")
    return method


@dataclass(frozen=True, repr=False)
class CertifyResult:
    """Certified top-k radii for N inputs, with the probability bounds behind them.

    Attributes
    ----------
    radius : ndarray of float64, shape (N,)
        Signed radius R_l of each input's label (``<= 0``: not certified).
    certified : ndarray of bool, shape (N,)
        ``radius > 0``.
    p_lower : ndarray, shape (N,)
        Lower bound on the probability of each input's label (rounded down).
    p_lower_complement : ndarray, shape (N,)
        ``1 - p_lower`` computed directly (rounded up); this, not ``1 - p_lower``, is
        what the radius uses, so bounds close to 1 keep full precision.
    labels : ndarray of int, shape (N,)
    k, sigma, alpha, method, delta
        The arguments of :func:`certify` (every bound above already includes delta).
    """

    radius: np.ndarray
    labels: np.ndarray
    p_lower: np.ndarray
    p_lower_complement: np.ndarray
    k: int
    sigma: float
    alpha: float
    method: str
    delta: float
    _counts: np.ndarray = field(repr=False)
    _beta: float = field(repr=False)
    # computed once: a property recomputing radius > 0 made per-row access quadratic
    certified: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "certified", self.radius > 0)

    @property
    def p_upper(self) -> np.ndarray:
        """Upper bounds on every label's probability, shape (N, c), rounded up.

        SimuEM and ranked: the Clopper-Pearson upper bound of each count at the
        method's level (the column of the certified label holds its own upper bound,
        which the radius does not use). BinoCP: 1 - p_lower for every label. Computed on first access: the
        radius itself needs only the k largest.
        """
        cached = self.__dict__.get("_p_upper")
        if cached is None:
            if self.method == "binocp":
                cached = np.repeat(self.p_lower_complement[:, None], self._counts.shape[1], axis=1)
            else:
                n = self._counts.sum(axis=1, keepdims=True)
                cached = _widen_upper(_upper_float(self._counts, n, self._beta), self.delta)
            object.__setattr__(self, "_p_upper", cached)
        return cached

    def __len__(self) -> int:
        return self.radius.shape[0]

    def __repr__(self) -> str:
        n = len(self)
        cert = int(self.certified.sum())
        finite = self.radius[self.certified & np.isfinite(self.radius)]
        median = f"{np.median(finite):.4g}" if finite.size else "n/a"
        delta = f", delta={self.delta:g}" if self.delta else ""
        return (f"CertifyResult(N={n}, k={self.k}, sigma={self.sigma:g}, alpha={self.alpha:g}, "
                f"method={self.method!r}{delta}, certified={cert}/{n}, "
                f"median certified radius={median})")


def _widen_upper(upper: np.ndarray, delta: float) -> np.ndarray:
    """Upper bounds plus delta, rounded up and capped at 1 (unchanged for delta = 0)."""
    if not delta:
        return upper
    return np.minimum(fl.up(upper + delta), 1.0)


def _widen_lower(lower: np.ndarray, delta: float) -> np.ndarray:
    """Lower bounds minus delta, rounded down and floored at 0 (unchanged for delta = 0)."""
    if not delta:
        return lower
    return np.maximum(fl.down(lower - delta), 0.0)


def _bounds_covered(method: str, k: int, n_classes: int) -> int:
    """How many one-sided bounds must hold together: alpha is split evenly among them.

    SimuEM bounds all c labels. Ranked bounds the label and the k other labels with the
    largest *true* probabilities (a fixed set J), so k + 1 suffice: on that event the
    i-th largest upper bound over all others is at least the i-th largest true
    probability among them, and the radius only shrinks as those bounds grow. BinoCP
    uses a single bound.
    """
    if method == "simuem":
        return n_classes
    if method == "ranked":
        return min(n_classes, k + 1)
    return 1


def _check_level(alpha: float, method: str, k: int, n_classes: int) -> tuple[float, int]:
    """The level of each bound, alpha / (bounds covered), rounded down; and that number.

    Rejects levels below ``limits.LEVEL_MIN``, where the float bounds stop being safe.
    """
    covered = _bounds_covered(method, k, n_classes)
    level = alpha / covered
    if not level >= LEVEL_MIN:
        share = {"simuem": f"c = {covered}", "ranked": f"min(c, k + 1) = {covered}",
                 "binocp": "1"}[method]
        raise ValueError(
            f"alpha ({alpha!r}) split among {share} bounds gives a level of {level:.3g} per "
            f"bound, below limits.LEVEL_MIN = {LEVEL_MIN:g}, the smallest supported; "
            f"alpha must be >= {covered * LEVEL_MIN:.3g} here"
        )
    return float(fl.down(level)), covered


#: Rows at least this wide use the chunked key selection of :func:`_top_values`.
_WIDE = 256
#: Elements per chunk of that selection (2 MiB of int64: stays in cache).
_CHUNK_ELEMENTS = 2**18


def _top_values(counts: np.ndarray, m: int) -> np.ndarray:
    """The m largest values of each row, ascending (exact, ties kept), shape (N, m).

    Wide rows are selected in chunks that stay in cache, on distinct int64 keys
    count * c + column: np.partition degrades on the many equal small counts of wide
    rows (4 us per row at c = 1000 on the benchmark's counts, against 1.2 us here), and
    partitioning a fresh copy of the whole array costs a page fault per 4 KiB. The keys
    order as the counts do, so the values are those of a partition of the counts.
    """
    n_rows, n_classes = counts.shape
    kth = n_classes - m
    if n_classes < _WIDE or n_classes * (N_MAX + 1) >= 2**63:
        return np.sort(np.partition(counts, kth, axis=1)[:, kth:], axis=1)
    chunk = max(1, _CHUNK_ELEMENTS // n_classes)
    out = np.empty((n_rows, m), dtype=np.int64)
    buf = np.empty((min(chunk, n_rows), n_classes), dtype=np.int64)
    cols = np.arange(n_classes, dtype=np.int64)
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        keys = buf[: stop - start]
        np.multiply(counts[start:stop], n_classes, out=keys)
        keys += cols
        keys.partition(kth, axis=1)
        out[start:stop] = keys[:, kth:]
    out //= n_classes
    out.sort(axis=1)
    return out


def _top_other_counts(counts: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The k largest counts of each row, leaving out (one occurrence of) the label's count.

    The k + 1 largest values are selected; dropping the label's value if it is among them
    (else the smallest) leaves the k largest of the others. Only values matter, so ties
    need no care.
    """
    n_rows = counts.shape[0]
    top = _top_values(counts, k + 1)
    own = counts[np.arange(n_rows), labels][:, None]
    hit = top == own
    drop = np.where(hit.any(axis=1), hit.argmax(axis=1), 0)
    keep = np.ones(top.shape, dtype=bool)
    keep[np.arange(n_rows), drop] = False
    return top[keep].reshape(n_rows, k)


def certify(counts, labels, *, k: int, sigma: float, alpha: float, method: str = "simuem",
            delta: float = 0.0) -> CertifyResult:
    """Certify that each input's label stays in the smoothed classifier's top k.

    Parameters
    ----------
    counts : array_like of int, shape (c,) or (N, c)
        How often the base classifier predicted each of c labels for N inputs under n
        Gaussian samples each (n may differ between rows).
    labels : int or array_like of int, shape (N,)
        The label to certify for each input (usually the true label).
    k : int
        Size of the top-k set.
    sigma : float
        The noise level the counts were sampled with.
    alpha : float
        Total failure probability, in (0, 1).
    method : {"simuem", "binocp", "ranked"}
        ``"simuem"`` (default): simultaneous one-sided Clopper-Pearson bounds for all c
        labels at level alpha / c (Bonferroni). ``"binocp"``: one Clopper-Pearson lower
        bound at level alpha, and 1 - p_lower as the upper bound of every other label.
        ``"ranked"``: the bounds of ``"simuem"`` at level alpha / min(c, k + 1): only the
        label and the k most likely other labels need to be covered (see
        ``docs/theory.md``); never certifies less than ``"simuem"``.
    delta : float, optional
        Total-variation slack of the sampler, in [0, 1) (default 0: the samples follow
        the ideal Gaussian-smoothed distribution exactly). If each noisy sample's
        predicted label is drawn, independently, from a distribution within total-variation
        distance ``delta`` of the ideal one (for instance exact discrete noise whose CDF
        thresholds are stored with finite precision), every event's probability moves by
        at most ``delta``: the counts bound the sampled probabilities, and the bounds on
        the ideal ones are widened by delta, the lower bound to ``a - delta`` (rounded down,
        at least 0), every upper bound to ``b_j + delta`` (rounded up, at most 1) and
        1 - a to ``(1 - a) + delta`` (rounded up). ``delta = 0`` changes nothing, bit for
        bit. Works with every method.

    Returns
    -------
    CertifyResult
        With probability at least 1 - alpha over the sampling of the counts of one
        input, the label is among the smoothed classifier's top k at every x + delta
        with ``||delta||_2 < radius`` (Theorem 1 of [1]_); with ``delta > 0``, provided the
        sampler is within total-variation distance ``delta`` of the ideal one per sample.
        The radii never exceed the exact radii of the (exact) bounds: every float rounding
        is directed to the safe side.

    Notes
    -----
    Only the label's own count and the k largest other counts enter the radius: the
    upper bounds are monotone in the count, so the k largest bounds belong to them.

    References
    ----------
    .. [1] J. Jia, X. Cao, B. Wang, N. Z. Gong, "Certified Robustness for Top-k
       Predictions against Adversarial Perturbations via Randomized Smoothing", ICLR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.array([[9000, 600, 300, 100], [4000, 3900, 2000, 100]])
    >>> res = certify(counts, [0, 1], k=2, sigma=0.5, alpha=0.001)
    >>> res.certified.tolist()
    [True, True]
    >>> res.radius.round(4).tolist()
    [0.8316, 0.117]
    >>> certify(counts, [0, 1], k=1, sigma=0.5, alpha=0.001).certified.tolist()
    [True, False]
    """
    counts, n = _check_counts(counts)
    labels = _check_labels(labels, counts.shape[0], counts.shape[1])
    k = _check_k(k)
    sigma = _check_sigma(sigma)
    alpha = _check_alpha(alpha)
    method = _check_method(method)
    delta = _check_delta(delta)

    n_rows, n_classes = counts.shape
    rows = np.arange(n_rows)
    # the level of each bound, rounded down so it never exceeds alpha / (bounds covered)
    beta, _ = _check_level(alpha, method, k, n_classes)
    n_l = counts[rows, labels]
    top = _top_other_counts(counts, labels, k) if method != "binocp" and k < n_classes else None
    # one solve per distinct count: the label's lower bound a (rounded down) and its
    # complement q_a = 1 - lower(n_l) = upper(n - n_l) (rounded up); for each competitor
    # x, its upper bound b = 1 - lower(n - x) and lower(n - x) = 1 - b, which gives
    # Phi^{-1}(b) precisely for b near 1
    if top is None:
        a, q_a = _pair_float(n_l, n, beta)
    else:
        n_col = n[:, None]
        low, comp = _pair_float(np.concatenate([n_l, (n_col - top).ravel()]),
                                np.concatenate([n, np.repeat(n, k)]), beta)
        a, q_a = low[:n_rows], comp[:n_rows]
        complement, b_top = low[n_rows:].reshape(n_rows, k), comp[n_rows:].reshape(n_rows, k)
    # two valid bounds each: take the tighter
    with np.errstate(invalid="ignore"):
        z_a = np.maximum(-fl.ndtri_upper(q_a), fl.ndtri_lower(a))
    q_a = np.minimum(q_a, fl.up(1.0 - a))
    p_lower = np.maximum(a, np.maximum(fl.down(1.0 - q_a), 0.0))
    if delta:  # the sampler's slack: every bound on the ideal probabilities widens by delta
        a, p_lower = _widen_lower(a, delta), _widen_lower(p_lower, delta)
        q_a = _widen_upper(q_a, delta)
        with np.errstate(invalid="ignore"):
            z_a = np.maximum(-fl.ndtri_upper(q_a), fl.ndtri_lower(a))

    if k >= n_classes:
        radius = np.full(n_rows, np.inf)
    else:
        if method != "binocp":
            # Phi^{-1}(b) from the complement 1 - b = lower(n - x): precise for b near 1
            b_top, complement = _widen_upper(b_top, delta), _widen_lower(complement, delta)
            z_top = -fl.ndtri_lower(complement)
        else:
            b_top = np.repeat(q_a[:, None], k, axis=1)
            z_top = None
        radius = radius_from_bounds(z_a, q_a, b_top, sigma, z_top=z_top, a=a)
    return CertifyResult(radius=radius, labels=labels, p_lower=p_lower, p_lower_complement=q_a,
                         k=k, sigma=sigma, alpha=alpha, method=method, delta=delta,
                         _counts=counts, _beta=beta)


def _mp_level(alpha: float, covered: int, dps: int):
    """alpha / covered as an mpf, rounded down at ``dps + 10`` digits (exact when covered
    is a power of two): never rounded to a float, never above the exact quotient."""
    import mpmath

    prec = mpmath.libmp.dps_to_prec(dps + 10)
    with mpmath.workprec(prec):
        return mpmath.mpf(mpmath.libmp.mpf_div(mpmath.mpf(alpha)._mpf_, mpmath.mpf(covered)._mpf_,
                                               prec, mpmath.libmp.round_floor))


def certify_exact(counts, label: int, *, k: int, sigma: float, alpha: float,
                  method: str = "simuem", dps: int = 50, delta: float = 0.0):
    """The radius of one input from its exact bounds, at ``dps`` digits (the reference).

    Same arguments as :func:`certify` for a single row, computed with mpmath: the
    Clopper-Pearson bounds at ``dps + 10`` digits, at the level alpha / c (SimuEM) formed
    in mpmath and rounded down, never through a float; then
    :func:`topk_bounds.radius.mp_radius`, rounded down to ``dps`` digits (an integer
    >= 15). ``delta`` widens the exact bounds as in :func:`certify` (exactly, in
    mpmath). Takes about a second per row; the float radius of :func:`certify` never
    exceeds it.

    Examples
    --------
    >>> r = certify_exact([9000, 600, 300, 100], 0, k=2, sigma=0.5, alpha=0.001, dps=30)
    >>> fast = certify([9000, 600, 300, 100], 0, k=2, sigma=0.5, alpha=0.001).radius[0]
    >>> bool(fast <= r), bool(abs(float(r) - fast) < 1e-12)
    (True, True)
    """
    import mpmath

    from .bounds import clopper_pearson_lower_complement, clopper_pearson_upper
    from .radius import mp_radius

    counts, _ = _check_counts(counts)
    if counts.shape[0] != 1:
        raise ValueError(f"counts must be a single row of shape (c,), got shape {counts.shape}")
    counts = counts[0]
    label = int(_check_labels(label, 1, counts.size)[0])
    k, sigma, alpha = _check_k(k), _check_sigma(sigma), _check_alpha(alpha)
    method = _check_method(method)
    delta = _check_delta(delta)
    if isinstance(dps, bool) or not isinstance(dps, numbers.Integral) or dps < 15:
        raise ValueError(f"dps must be an integer >= 15, got {dps!r}")
    dps = int(dps)
    n, c = int(counts.sum()), counts.size
    _, covered = _check_level(alpha, method, k, c)
    beta = _mp_level(alpha, covered, dps + 10)
    with mpmath.workdps(dps + 10):
        qa = clopper_pearson_lower_complement(int(counts[label]), n, beta, dps=dps + 10)
        slack = mpmath.mpf(delta)  # exact: delta is a float
        qa = min(qa + slack, mpmath.mpf(1))
        a = 1 - qa
        others = sorted((int(x) for j, x in enumerate(counts) if j != label), reverse=True)
        if method != "binocp":
            b = [min(clopper_pearson_upper(x, n, beta, dps=dps + 10) + slack, mpmath.mpf(1))
                 for x in others[:k]]
        else:
            b = [qa] * (c - 1)
    return mp_radius(a, b, k, sigma, dps, p_lower_complement=qa)


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class PredictResult:
    """Top-k predictions of the smoothed classifier, or abstentions.

    Attributes
    ----------
    labels : ndarray of int, shape (N, k)
        The k labels with the largest counts, most frequent first (ties broken by the
        smaller label). Rows that abstained hold them too, for inspection.
    abstained : ndarray of bool, shape (N,)
        True where the k-th and (k+1)-th counts could not be told apart.
    pvalue : ndarray of float, shape (N,)
        One-sided binomial p-value of the k-th count against the (k+1)-th,
        P(Bin(n_(k) + n_(k+1), 1/2) >= n_(k)); 1 where both counts are 0.
    level : float
        The level each p-value is compared with: alpha / (k (c - k)), rounded down
        ((alpha - n delta) / (k (c - k)) with a sampler's ``delta``, n the largest row
        sum). A row answers only where its p-value, enlarged by its rounding error bound,
        is at most ``level``; the k (c - k) in the denominator is the union bound of the
        guarantee (see :func:`predict`).
    k, alpha, delta
        The arguments of :func:`predict`.
    """

    labels: np.ndarray
    abstained: np.ndarray
    pvalue: np.ndarray
    level: float
    k: int
    alpha: float
    delta: float = 0.0

    def __repr__(self) -> str:
        n = len(self.abstained)
        delta = f", delta={self.delta:g}" if self.delta else ""
        return (f"PredictResult(N={n}, k={self.k}, alpha={self.alpha:g}{delta}, "
                f"abstained={int(self.abstained.sum())}/{n})")


def predict_level(alpha: float, k: int, n_classes: int) -> float:
    """The one-sided level that makes :func:`predict` wrong with probability <= alpha.

    alpha / (k (c - k)), rounded down (the largest float not above it); rejected below
    ``limits.LEVEL_MIN``.
    """
    pairs = k * (n_classes - k)
    level = alpha / pairs
    if not level >= LEVEL_MIN:
        raise ValueError(
            f"alpha ({alpha!r}) split among k (c - k) = {pairs} pairs gives a level of "
            f"{level:.3g}, below limits.LEVEL_MIN = {LEVEL_MIN:g}, the smallest supported; "
            f"alpha must be >= {pairs * LEVEL_MIN:.3g} here"
        )
    if Fraction(level) * pairs > Fraction(alpha):  # rounded up: take the float below
        level = float(fl.down(level))
    return level


def coupling_alpha(alpha: float, n: int, delta: float) -> float:
    """``alpha - n delta``, rounded down: the level left to a test on ``n`` samples from a
    sampler within total-variation distance ``delta`` per sample of the ideal one.

    The ``n`` samples can be coupled with ``n`` ideal ones so that they differ with
    probability at most ``n delta``, so any event of the counts has a probability within
    ``n delta`` of its ideal probability. ValueError if nothing is left.
    """
    exact = Fraction(alpha) - n * Fraction(delta)
    if exact <= 0:
        raise ValueError(
            f"delta ({delta!r}) times the largest number of samples in a row (n = {n}) is "
            f"{float(n * Fraction(delta)):.3g}, not below alpha ({alpha!r}): delta must be "
            f"below alpha / n = {alpha / n:.3g} here")
    left = float(exact)
    if Fraction(left) > exact:
        left = math.nextafter(left, 0.0)
    return left


def _boundary_test(counts: np.ndarray, k: int):
    """The k labels with the largest counts, the p-value of the boundary pair, and an
    upper bound on that p-value's exact value (for the decision)."""
    # stable descending order: larger count first, ties by the smaller label
    order = np.argsort(-counts, axis=1, kind="stable")
    top = order[:, :k]
    pair = np.take_along_axis(counts, order[:, k - 1:k + 1], axis=1)
    nk, nk1 = pair[:, 0], pair[:, 1]
    m = nk + nk1
    pos = m > 0  # then nk >= 1, since nk >= nk1
    pvalue = np.ones(nk.shape)
    upper = np.ones(nk.shape)
    if pos.any():
        x, y = nk[pos].astype(float), nk1[pos].astype(float)
        # P(Bin(m, 1/2) >= x) = I_{1/2}(x, y + 1), regularized incomplete beta: Boost's
        # betainc, or for y <= SMALL_X the exact sum P(Bin(m, 1/2) <= y) (betainc can
        # return 0 for tiny values when y is small; so its values below BOOST_MIN prove
        # nothing, and there the Chernoff bound exp(-m KL(x/m || 1/2)) serves)
        pv = special.betainc(x, y + 1.0, 0.5)
        with np.errstate(invalid="ignore"):  # 0 * inf where betainc underflowed: replaced below
            up_pv = fl.up(pv * (1.0 + boost_rtol_g(x, pv)))
        small = y <= SMALL_X
        if small.any():
            ys, ms = y[small], (x + y)[small]
            value, rtol, _, _ = _cdf_small(ys, ms, np.full(ys.shape, 0.5))
            pv[small] = value
            up_pv[small] = fl.up(value * (1.0 + rtol))
        tiny = ~small & (pv < BOOST_MIN)
        if tiny.any():
            up_pv[tiny] = chernoff_g(x[tiny], (x + y)[tiny], np.full(int(tiny.sum()), 0.5))
        pvalue[pos] = pv
        upper[pos] = np.minimum(up_pv, 1.0)
    return top, pvalue, upper


def predict(counts, *, k: int, alpha: float, delta: float = 0.0) -> PredictResult:
    """The smoothed classifier's top-k labels, or an abstention (Algorithm 1 of [1]_).

    Parameters
    ----------
    counts : array_like of int, shape (c,) or (N, c)
        Counts of the base classifier's predictions under noise.
    k : int
        Size of the returned set, ``1 <= k < c``.
    alpha : float
        Failure probability, in (0, 1).
    delta : float, optional
        Total-variation distance per sample of the sampler from the ideal one, in
        [0, 1) (the ``delta`` of a count file sampled with discrete noise, see
        :func:`certify`). The test then runs at ``alpha - n delta`` (``n`` the largest
        row sum, rounded down; :func:`coupling_alpha`), and ``n delta`` must be below
        alpha. ``delta = 0`` changes nothing.

    Returns
    -------
    PredictResult
        For each input, with probability at least 1 - alpha over the sampling, either
        it abstains or ``set(labels[i])`` is a top-k set of the smoothed classifier: a
        set S of k labels with min_{i in S} p_i >= max_{j not in S} p_j. Where the
        probabilities tie at the boundary several sets qualify, and each of them is a
        correct answer. With ``delta > 0``, provided the sampler is within
        total-variation distance ``delta`` of the ideal one per sample.

    Notes
    -----
    The k-th largest count n_(k) is compared with the (k+1)-th, n_(k+1), by a
    one-sided binomial test conditional on their sum m: pi = P(Bin(m, 1/2) >= n_(k)).
    It answers when pi <= alpha / (k (c - k)) (``PredictResult.level``), with pi's
    float rounding bounded on the safe side.

    Proof of the guarantee. Fix one top-k set T (ties broken arbitrarily). If the
    answer S is not a top-k set, then S != T, so some i in S \\ T and j in T \\ S exist,
    and p_i <= max_{l not in T} p_l <= min_{l in T} p_l <= p_j. Since S holds the k
    largest counts, n_i >= n_(k) and n_j <= n_(k+1). The p-value pi(x, y) =
    P(Bin(x + y, 1/2) >= x) decreases in x and increases in y, so pi(n_i, n_j) <=
    pi(n_(k), n_(k+1)) <= level. Conditional on n_i + n_j = m > 0, n_i ~ Bin(m, theta)
    with theta = p_i / (p_i + p_j) <= 1/2, so pi(n_i, n_j) is super-uniform:
    P(pi(n_i, n_j) <= level) <= level. A wrong answer therefore needs one of the
    k (c - k) pairs (i outside T, j inside T) to reach the level, and by the union bound
    it happens with probability at most k (c - k) level <= alpha. (At an exact tie
    with c = 2 each of the two answers is a top-k set; the proof, applied to each,
    bounds the probability of answering at all by 2 alpha.)

    With ``delta > 0`` the counts are drawn from a sampler whose distribution of one
    sample is within total-variation distance delta of the ideal one, so the n samples of
    a row can be coupled with n ideal samples that differ from them with probability at
    most n delta (a union over the samples). The event "a wrong answer" therefore has
    probability at most (alpha - n delta) + n delta = alpha.

    For k = 1 Hung and Fithian (2019) prove that the single pair needs no correction;
    their argument does not cover sets, and this function uses the same provable level
    for every k. ``tests/test_certify.py`` measures the error rate by simulation.

    References
    ----------
    .. [1] J. Jia, X. Cao, B. Wang, N. Z. Gong, ICLR 2020, Algorithm 1.
    .. [2] K. Hung, W. Fithian, "Rank verification for exponential families",
       Annals of Statistics 47 (2019).

    Examples
    --------
    >>> res = predict([[500, 300, 20, 180], [400, 300, 290, 10]], k=2, alpha=0.001)
    >>> res.labels.tolist(), res.abstained.tolist()
    ([[0, 1], [0, 1]], [False, True])
    >>> res.level  # alpha / (k (c - k)), rounded down (here exact)
    0.00025

    Counts of a discrete-noise sampler within delta = 1e-9 of the ideal one per sample
    leave alpha - 1000 delta to the test:

    >>> predict([[500, 300, 20, 180]], k=2, alpha=0.001, delta=1e-9).level
    0.00024975
    """
    counts, totals = _check_counts(counts)
    k = _check_k(k)
    alpha = _check_alpha(alpha)
    delta = _check_delta(delta)
    n_classes = counts.shape[1]
    if k >= n_classes:
        raise ValueError(f"k must be smaller than the number of labels c = {n_classes}, got k = {k}")
    spent = alpha
    if delta and totals.size:
        spent = coupling_alpha(alpha, int(totals.max()), delta)
    level = predict_level(spent, k, n_classes)
    top, pvalue, upper = _boundary_test(counts, k)
    return PredictResult(labels=top, abstained=~(upper <= level), pvalue=pvalue,
                         level=level, k=k, alpha=alpha, delta=delta)
